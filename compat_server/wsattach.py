"""``GET /containers/{id}/attach/ws``: attach over a websocket (RFC 6455, framed by wsproto).

As dockerd does it: the output is never multiplexed; each chunk of stdout or
stderr goes out as one frame, binary from API 1.28 on and text before (text frames
must be UTF-8: bytes that are not arrive as U+FFFD); text
and binary frames from the client are the container's stdin, and the
client's close frame closes stdin.  When the output ends the server sends a
close frame (1000) and hangs up.  No Origin check is made.
"""
from __future__ import annotations

import asyncio
import codecs
import logging
from typing import TYPE_CHECKING

from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode, ParseFailed
from wsproto.utilities import generate_accept_token

from . import versions
from .backends import HijackBackend
from .detach import Detaching, detach_keys
from .http.hijack import HijackConn, HijackRequest

if TYPE_CHECKING:
    from engine.containers.attach import ContainerAttach

log = logging.getLogger(__name__)

STDIN, STDIN_EOF, REPLY = "stdin", "stdin-eof", "reply"


def accept_key(key: str) -> str:
    return generate_accept_token(key.strip().encode()).decode()


class AttachSocket:
    """The server end of one attach websocket, sans-IO, on wsproto's frame layer.

    wsproto parses the client's frames (masking, fragments, UTF-8 of text, control-frame rules)
    and writes ours. The connection's life is dockerd's, not wsproto.Connection's state machine:
    a client's close frame only closes the container's stdin, output keeps flowing, and our own
    close frame (1000) goes out when the output ends.
    """

    def __init__(self, binary: bool) -> None:
        self._proto = FrameProtocol(client=False, extensions=[])
        self._binary = binary
        # Text frames must hold valid UTF-8: a character split across two output chunks is carried over.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stdin_open = True
        self._broken = False  # the client sent something that is not websocket: ignore the rest

    def output(self, data: bytes) -> bytes:
        """One chunk of stdout/stderr as one frame (binary from API 1.28, text before)."""
        if self._binary:
            return bytes(self._proto.send_data(data, fin=True))
        text = self._utf8.decode(data)
        return bytes(self._proto.send_data(text, fin=True)) if text else b""

    def close(self) -> bytes:
        """The end of the output: what is left of a text character, then a normal close frame."""
        rest = b""
        if not self._binary:
            tail = self._utf8.decode(b"", final=True)
            rest = bytes(self._proto.send_data(tail, fin=True)) if tail else b""
        return rest + bytes(self._proto.close(CloseReason.NORMAL_CLOSURE))

    def receive(self, data: bytes) -> list[tuple[str, bytes]]:
        """Bytes from the client -> (STDIN, data), (STDIN_EOF, b"") and (REPLY, frame to send)."""
        out: list[tuple[str, bytes]] = []
        if self._broken:
            return out
        self._proto.receive_bytes(data)
        try:
            for frame in self._proto.received_frames():
                payload = frame.payload
                if frame.opcode is Opcode.CLOSE:
                    self._end_stdin(out)
                    continue
                if isinstance(payload, tuple):
                    continue  # only a close frame carries (code, reason)
                chunk = payload.encode() if isinstance(payload, str) else bytes(payload)
                if frame.opcode is Opcode.PING:
                    out.append((REPLY, bytes(self._proto.pong(chunk))))
                elif frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION):
                    if chunk and self.stdin_open:
                        out.append((STDIN, chunk))
        except ParseFailed as err:
            # Like a client that hangs up: its stdin ends; the output still goes out until it ends.
            log.info("bad websocket frame from an attach client (%s); closing its stdin", err)
            self._broken = True
            self._end_stdin(out)
        return out

    def _end_stdin(self, out: list[tuple[str, bytes]]) -> None:
        if self.stdin_open:
            self.stdin_open = False
            out.append((STDIN_EOF, b""))


def is_websocket_request(headers: dict[str, str]) -> bool:
    connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    return ("upgrade" in connection and headers.get("upgrade", "").strip().lower() == "websocket"
            and bool(headers.get("sec-websocket-key", "").strip()))


def _flag(query: dict[str, list[str]], name: str) -> bool:
    values = query.get(name)
    return values is not None and bool(values) and values[-1].strip().lower() not in ("", "0", "no", "false", "none")


async def serve(engine: HijackBackend, req: HijackRequest, conn: HijackConn, ref: str, version: str) -> None:
    svc = engine.containers
    c = svc.get(ref)  # 404 as an ordinary response, before the handshake
    if not is_websocket_request(req.headers) or req.headers.get("sec-websocket-version", "").strip() != "13":
        await conn.send_response(400, [("Content-Type", "text/plain; charset=utf-8")], b"not websocket protocol")
        return
    q = req.query
    want_stdin, want_stdout, want_stderr = _flag(q, "stdin"), _flag(q, "stdout"), _flag(q, "stderr")
    ws = AttachSocket(binary=versions.at_least(version, "1.28"))
    keys = detach_keys(q)
    att = None
    if _flag(q, "stream"):
        att = await svc.attach(c.id, stdin=want_stdin, stdout=want_stdout, stderr=want_stderr)
    try:
        await conn.start_websocket(accept_key(req.headers["sec-websocket-key"]))
        if _flag(q, "logs"):
            async for entry in engine.read_logs(c, since_ns=None, until_ns=None, tail=None, follow=False,
                                                stopped=None):
                if (entry.stream == "stdout" and want_stdout) or (entry.stream == "stderr" and want_stderr):
                    await conn.write(ws.output(entry.data))
        if att is not None:
            # a terminal's stdin is watched for the detach keys, as on a hijacked attach
            watched = Detaching(att, keys) if c.config.tty and att.stdin else None
            await _pump(conn, watched or att, ws, stop=watched.detached if watched else None)
            if watched is not None and watched.detached.is_set():
                svc.note_detached(att)
        await conn.write(ws.close())
        await conn.close_write()
    finally:
        if att is not None:
            svc.forget_attach(att)
            await att.close()
        await conn.close()


async def _pump(conn: HijackConn, att: ContainerAttach | Detaching, ws: AttachSocket,
                stop: asyncio.Event | None = None) -> None:
    async def stdin_pump() -> None:
        while True:
            data = await conn.read()
            if not data:
                if ws.stdin_open:
                    ws.stdin_open = False
                    await att.close_stdin()
                return
            for kind, payload in ws.receive(data):
                if kind == STDIN:
                    await att.write(payload)
                elif kind == REPLY:
                    await conn.write(payload)
                elif kind == STDIN_EOF:
                    await att.close_stdin()

    async def stdout_pump() -> None:
        while True:
            frame = await att.read()
            if frame is None:
                return
            _, data = frame
            if data:
                await conn.write(ws.output(data))

    out_task = asyncio.ensure_future(stdout_pump())
    in_task = asyncio.ensure_future(stdin_pump())
    hangup = asyncio.ensure_future(conn.closed_by_peer.wait())
    stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        done, _ = await asyncio.wait({out_task, hangup} | ({stopped} if stopped else set()),
                                     return_when=asyncio.FIRST_COMPLETED)
        if out_task in done:
            out_task.result()
    finally:
        tasks = [t for t in (in_task, hangup, out_task, stopped) if t is not None]
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
