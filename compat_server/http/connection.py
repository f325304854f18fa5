"""One client connection: HTTP/1.1 with keep-alive via h11, driving an ASGI app,
or handing the connection to the hijack handler for attach / exec start.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

import h11

from .hijack import HIJACK_PATH, HijackConn, HijackHandler, HijackRequest, is_hijack_route
from .inbox import Inbox
from .rawbody import EXTENSION, RawAccess
from .stream import Stream
from .wire import has_content_framing, header_value, is_chunked, json_error, plain_error, reason_phrase

log = logging.getLogger(__name__)

# The same shapes as starlette.types, so a Starlette app type-checks as an ASGIApp.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_HEAD = 1 << 20  # like Go's http.DefaultMaxHeaderBytes; X-Registry-Config can be large
MAX_HIJACK_BODY = 1 << 20
MAX_DISCARD = 1 << 20  # request body left unread by the app that we skip to keep the connection
LINGER = 2.0  # seconds we keep reading after our last response before closing (avoids RST)


class _RequestFailed(Exception):
    """The client sent something we cannot parse; answer with ``status`` and close."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Connection:
    def __init__(self, stream: Stream, app: ASGIApp, hijack_handler: HijackHandler,
                 hijack_path: re.Pattern[str] = HIJACK_PATH) -> None:
        self.stream = stream
        self.hijack_path = hijack_path
        self.app = app
        self.hijack_handler = hijack_handler
        self.inbox = Inbox(stream)
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.idle = True  # between requests with nothing received: safe to close at shutdown
        self.closing = False  # the server is shutting down: no further requests on this connection
        self._hijacked = False

    # -- reading ---------------------------------------------------------------------------------

    async def next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.inbox.read()
            self.h11.receive_data(data)

    # -- the connection loop -----------------------------------------------------------------------

    async def serve(self) -> None:
        self.inbox.start()
        try:
            await self._serve_requests()
        except asyncio.CancelledError:
            self.stream.close()  # shutting down: no lingering
            await self.inbox.aclose()
            raise
        except Exception:  # a bug here must cost one connection, not the server
            log.exception("HTTP connection failed")
            self.stream.close()
            await self.inbox.aclose()
            return
        if not self._hijacked:
            await self._linger_and_close()
        else:
            self.stream.close()
        await self.inbox.aclose()

    async def _serve_requests(self) -> None:
        while not self.closing:
            self.idle = self.inbox.idle and self.h11.trailing_data[0] == b""
            try:
                event = await self.next_event()
            except h11.RemoteProtocolError as err:
                self.idle = False
                await self._write_raw(plain_error(err.error_status_hint))
                return
            self.idle = False
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed (or anything unexpected between requests)
            method = event.method.decode("ascii", "replace")
            raw_target = bytes(event.target)
            raw_path, _, query_string = raw_target.partition(b"?")
            path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
            if is_hijack_route(method, path, self.hijack_path):
                self._hijacked = True
                await self._hijack(event, method, path, query_string)
                return
            keep_alive = await self._run_asgi(event, method, path, raw_path, query_string)
            if not keep_alive or self.closing:
                return
            try:
                self.h11.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _write_raw(self, data: bytes) -> bool:
        try:
            await self.stream.sendall(data)
            return True
        except (ConnectionError, OSError):
            return False

    async def _linger_and_close(self) -> None:
        """Half-close, then read until the client closes (briefly) so unread input cannot turn
        our last response into a connection reset."""
        try:
            await self.stream.shutdown_write()
            if not self.inbox.eof.is_set():
                loop = asyncio.get_running_loop()
                deadline = loop.time() + LINGER
                while not self.inbox.eof.is_set():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self.inbox.take_buffered()
                    try:
                        await asyncio.wait_for(self.inbox.read(), remaining)
                    except TimeoutError:
                        break
        except (ConnectionError, OSError):
            pass
        finally:
            self.stream.close()

    # -- hijacked requests ---------------------------------------------------------------------------

    async def _hijack(self, req: h11.Request, method: str, path: str, query_string: bytes) -> None:
        headers = list(req.headers)
        body = bytearray()
        try:
            if self.h11.they_are_waiting_for_100_continue:
                await self.stream.sendall(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))
            while True:
                event = await self.next_event()
                if isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_HIJACK_BODY:
                        raise _RequestFailed(413)
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return  # the client went away before its body was complete
        except h11.RemoteProtocolError as err:
            if self.inbox.eof.is_set():
                return  # the client hung up mid-body
            if any(k.lower() == b"transfer-encoding" and b"chunked" in v.lower() for k, v in headers):
                await self._write_raw(json_error(400, "invalid byte in chunk length"))  # as the REST routes
            else:
                await self._write_raw(plain_error(err.error_status_hint))
            return
        except _RequestFailed as err:
            await self._write_raw(plain_error(err.status))
            return
        except (ConnectionError, OSError):
            return
        connection_tokens = {t.strip().lower() for t in (header_value(headers, b"connection") or "").split(",")}
        upgrade_tokens = {t.strip().lower() for t in (header_value(headers, b"upgrade") or "").split(",")}
        hreq = HijackRequest(
            method=method,
            path=path,
            query=parse_qs(query_string.decode("latin-1"), keep_blank_values=True),
            headers={k.decode("latin-1"): header_value(headers, k) or "" for k, _ in headers},
            body=bytes(body),
            upgrade="upgrade" in connection_tokens and "tcp" in upgrade_tokens,
            peer=self.stream.peer.as_extension(),
            upgrade_protocol=(header_value(headers, b"upgrade") or "").strip().lower(),
        )
        # Whatever the client sent after its request (stdin before the container starts) is kept.
        buffered = self.h11.trailing_data[0] + self.inbox.take_buffered()
        conn = HijackConn(self.stream, self.inbox, buffered)
        try:
            await self.hijack_handler(hreq, conn)
        except asyncio.CancelledError:
            raise
        except Exception:  # one failing request must not take the server down
            log.exception("hijack handler failed for %s %s", method, path)
            if not conn.responded:
                try:
                    await conn.send_response(500, [("Content-Type", "application/json")],
                                             b'{"message":"internal server error"}\n')
                except Exception:  # noqa: BLE001
                    pass
        finally:
            await conn.close()

    # -- ASGI ------------------------------------------------------------------------------------

    async def _run_asgi(self, req: h11.Request, method: str, path: str, raw_path: bytes,
                        query_string: bytes) -> bool:
        """Run the app for one request; True when the connection can serve another one."""
        peer = self.stream.peer
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": req.http_version.decode("ascii"),
            "method": method,
            "scheme": peer.scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": query_string,
            "root_path": "",
            "headers": [(bytes(k), bytes(v)) for k, v in req.headers],
            "client": peer.client,
            "server": peer.server,
            "extensions": {"pydockerd": peer.as_extension()},
            BODY_ERROR: {},  # filled in when the body cannot be read (shared by scope copies)
        }
        cycle = _Cycle(self, method, scope)
        raw = RawAccess(self, cycle) if self.inbox.can_pause else None
        if raw is not None:
            scope["extensions"][EXTENSION] = raw
        try:
            await self.app(scope, cycle.receive, cycle.send)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ASGI app failed on %s %s", method, path)
            if not cycle.head_sent:
                await cycle.send_internal_error()
            return False
        finally:
            cycle.done.set()
            if raw is not None:
                raw.body_done()
        if cycle.body_taken:
            return False  # the rest of the input went to someone else: the connection ends here
        if not cycle.complete:
            if not cycle.head_sent:
                log.error("ASGI app returned without a response on %s %s", method, path)
                await cycle.send_internal_error()
            return False
        if cycle.broken or cycle.expect_unanswered or self.h11.our_state is not h11.DONE:
            return False
        return await self._discard_request_body()

    async def _discard_request_body(self) -> bool:
        skipped = 0
        while self.h11.their_state is h11.SEND_BODY:
            try:
                event = await self.next_event()
            except h11.RemoteProtocolError:
                return False
            if isinstance(event, h11.Data):
                skipped += len(event.data)
                if skipped > MAX_DISCARD:
                    return False
            elif not isinstance(event, h11.EndOfMessage):
                return False
        return self.h11.their_state is h11.DONE


class _Cycle:
    """The receive/send pair of one request."""

    def __init__(self, conn: Connection, method: str, scope: dict[str, Any]) -> None:
        self.conn = conn
        self.scope = scope
        self.h11 = conn.h11
        self.head_request = method == "HEAD"
        self.body_started = False  # the app asked for the body
        self.body_taken = False  # ... or took it off the socket itself (rawbody.py)
        self.body_done = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.started = False
        self.head_sent = False
        self.complete = False
        self.broken = False
        self.expect_unanswered = False
        self.done = asyncio.Event()

    async def send_continue(self) -> None:
        if self.h11.they_are_waiting_for_100_continue and not self.head_sent:
            await self._write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))

    async def receive(self) -> Message:
        if not self.body_done and not self.broken:
            self.body_started = True
            try:
                await self.send_continue()
                event = await self.conn.next_event()
            except h11.RemoteProtocolError as err:
                if self.conn.inbox.eof.is_set():
                    event = None  # the client hung up mid-body: below
                else:
                    # A body the client framed wrongly (a bad chunk size...): the app sees the body
                    # end, and learns why from the scope, to answer 400 as dockerd does.
                    log.debug("bad request body: %s", err)
                    self.body_done = True
                    self.scope[BODY_ERROR]["message"] = (
                        "invalid byte in chunk length" if is_chunked(self.scope) else str(err))
                    return {"type": "http.disconnect"}
            if isinstance(event, h11.Data):
                return {"type": "http.request", "body": bytes(event.data), "more_body": True}
            if isinstance(event, h11.EndOfMessage):
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            self.body_done = True  # connection closed / broken mid-body
            self.broken = True
            return {"type": "http.disconnect"}
        # The body is read: the next message is the client leaving (or the response being over).
        waiters = [asyncio.ensure_future(self.conn.inbox.eof.wait()), asyncio.ensure_future(self.done.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            self.status = int(message["status"])
            self.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            return
        if kind != "http.response.body":
            return  # unknown extensions are ignored
        if not self.started:
            raise RuntimeError("http.response.body before http.response.start")
        if self.complete:
            return
        body = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        out = bytearray()
        try:
            if not self.head_sent:
                headers = self.headers
                no_body_status = self.status in (204, 304) or self.status < 200
                if not more and not no_body_status and not has_content_framing(headers):
                    headers = headers + [(b"content-length", str(len(body)).encode())]
                if self.body_taken:
                    headers = headers + [(b"connection", b"close")]
                self.expect_unanswered = self.h11.they_are_waiting_for_100_continue
                out += self.h11.send(h11.Response(status_code=self.status, headers=headers,
                                                  reason=reason_phrase(self.status)))
                self.head_sent = True
            if body and not self.head_request and self.status not in (204, 304):
                out += self.h11.send(h11.Data(data=body))
            if not more:
                out += self.h11.send(h11.EndOfMessage())
                self.complete = True
        except h11.LocalProtocolError as err:
            # e.g. more body than the declared Content-Length: the response is unusable.
            log.error("invalid ASGI response: %s", err)
            self.broken = True
            self.complete = True
            raise RuntimeError(f"invalid response: {err}") from err
        if out:
            await self._write(bytes(out))

    async def _write(self, data: bytes) -> None:
        if self.broken:
            return  # the client is gone: ASGI lets us drop the rest silently
        try:
            await self.conn.stream.sendall(data)
        except (ConnectionError, OSError):
            self.broken = True
            self.done.set()  # wakes a receive() waiting for http.disconnect

    async def send_internal_error(self) -> None:
        body = b'{"message":"internal server error"}\n'
        try:
            out = self.h11.send(h11.Response(status_code=500, headers=[
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"connection", b"close")], reason=b"Internal Server Error"))
            out += self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return
        self.head_sent = True
        await self._write(out)


BODY_ERROR = "pydockerd.body_error"  # scope key: why a request body could not be read
