"""Hijacked requests (attach, exec start): the request as parsed, and the raw connection.

The handler supplied by the integrator decides what to answer: an ordinary
error response, a ``101 UPGRADED`` raw stream, or a ``200 OK`` stream without
a length.  See docs in /work/shared/design/HIJACK.md for what clients need.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from .inbox import Inbox
from .stream import Stream

HIJACK_PATH = re.compile(r"^(/v[0-9.]+)?/(containers/[^/]+/attach|exec/[^/]+/start)$")
# GET routes that take over the connection: attach over a websocket.
WEBSOCKET_PATH = re.compile(r"^(/v[0-9.]+)?/containers/[^/]+/attach/ws$")

# How long start_upgrade/start_stream wait for the client to take the response
# head before any stream byte goes out (docker-py loses stream bytes that reach
# its socket together with the head).  Over unix sockets "taken" is exact (the
# kernel reports unread bytes); over TCP we can only wait for the ACK.
DRAIN_LIMIT_UNIX = 1.0
DRAIN_LIMIT_TCP = 0.05


def is_hijack_route(method: str, path: str, pattern: re.Pattern[str] = HIJACK_PATH) -> bool:
    if method == "GET" and WEBSOCKET_PATH.match(path) is not None:
        return True
    return method == "POST" and pattern.match(path) is not None


@dataclass(frozen=True)
class HijackRequest:
    method: str
    path: str  # percent-decoded, without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lowercase names; repeated headers joined with ", "
    body: bytes
    upgrade: bool  # "Connection: Upgrade" and "Upgrade: tcp" were both sent
    peer: dict[str, Any] = field(default_factory=dict)  # {"peer_creds": ..., "tls_client_cert": ...}
    upgrade_protocol: str = ""  # the Upgrade header, lowercased ("tcp", "h2c" for BuildKit's /session)


def _head(status: int, reason: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class HijackConn:
    """The client connection behind a hijack route; used by exactly one handler."""

    def __init__(self, stream: Stream, inbox: Inbox, buffered: bytes) -> None:
        self._stream = stream
        self._inbox = inbox
        self._pending = buffered  # bytes that came in right after the request (stdin before start)
        self._responded = False
        self._closed = False
        self.closed_by_peer = asyncio.Event()
        self._watch = asyncio.ensure_future(self._watch_reset())

    async def _watch_reset(self) -> None:
        await self._inbox.eof.wait()
        if self._inbox.reset:
            self.closed_by_peer.set()

    @property
    def responded(self) -> bool:
        """Whether a response (ordinary or 101/200 upgrade) has gone out on this connection."""
        return self._responded

    def _claim_response(self) -> None:
        if self._responded:
            raise RuntimeError("a response was already sent on this hijacked connection")
        self._responded = True

    async def send_response(self, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        """An ordinary response (errors): with Content-Length; the connection is closed after it."""
        self._claim_response()
        names = {name.lower() for name, _ in headers}
        extra = [("Content-Length", str(len(body)))] if "content-length" not in names else []
        if "connection" not in names:
            extra.append(("Connection", "close"))
        await self._write_quietly(_head(status, _reason(status), list(headers) + extra) + body)
        await self.close()

    async def start_upgrade(self, content_type: str, protocol: str = "tcp") -> None:
        """Send the ``101 UPGRADED`` head alone and wait until the client took it."""
        self._claim_response()
        headers = [("Content-Type", content_type), ("Connection", "Upgrade"), ("Upgrade", protocol)]
        await self._write_quietly(_head(101, "UPGRADED", headers))
        await self._drain()

    async def start_websocket(self, accept: str) -> None:
        """The ``101 Switching Protocols`` head of a websocket handshake (RFC 6455)."""
        self._claim_response()
        headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)]
        await self._write_quietly(_head(101, "Switching Protocols", headers))
        await self._drain()

    async def start_stream(self, content_type: str) -> None:
        """Non-upgrade answer: ``200 OK`` and a raw stream delimited by the end of the connection."""
        self._claim_response()
        await self._write_quietly(_head(200, "OK", [("Content-Type", content_type)]))
        await self._drain()

    async def read(self) -> bytes:
        """Client bytes after the request, including any that came with it; b"" = stdin closed."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        data = await self._inbox.read()
        if not data and self._inbox.reset:
            self.closed_by_peer.set()
        return data

    async def write(self, data: bytes) -> None:
        """Send stream bytes.  Never raises: once the client is gone the data is dropped and
        ``closed_by_peer`` is set, which is the handler's signal to stop."""
        if data:
            await self._write_quietly(data)

    async def close_write(self) -> None:
        """Our half-close after the last byte (SHUT_WR, or close_notify over TLS)."""
        if not self._closed:
            await self._stream.shutdown_write()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._watch.cancel()
        self._stream.close()

    async def _write_quietly(self, data: bytes) -> None:
        if self._closed or self.closed_by_peer.is_set():
            return
        try:
            await self._stream.sendall(data)
        except (ConnectionError, OSError):
            self.closed_by_peer.set()

    async def _drain(self) -> None:
        limit = DRAIN_LIMIT_UNIX if self._stream.peer.client is None else DRAIN_LIMIT_TCP
        deadline = time.monotonic() + limit
        delay = 0.0005
        while self._stream.unsent_bytes() > 0 and time.monotonic() < deadline:
            if self.closed_by_peer.is_set() or self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.01)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


HijackHandler = Callable[[HijackRequest, HijackConn], Awaitable[None]]
