"""``GET /containers/{id}/attach/ws``: attach over a websocket (RFC 6455).

As dockerd does it: the output is never multiplexed; each chunk of stdout or
stderr goes out as one frame, binary from API 1.28 on and text before; text
and binary frames from the client are the container's stdin, and the
client's close frame closes stdin.  When the output ends the server sends a
close frame (1000) and hangs up.  No Origin check is made.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import struct
from typing import Any

from . import versions

log = logging.getLogger(__name__)

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_MAX_FRAME = 32 << 20


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.strip().encode() + _GUID).digest()).decode()


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """A final, unmasked server frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack(">BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack(">BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
    return head + payload


class FrameError(Exception):
    pass


class FrameDecoder:
    """Incremental decoder of client frames: ``feed`` bytes, get (opcode, payload) for
    complete messages (fragments reassembled; control frames returned as they come)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self._frag_op: int | None = None
        self._frag = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out: list[tuple[int, bytes]] = []
        while True:
            frame = self._one()
            if frame is None:
                return out
            fin, opcode, payload = frame
            if opcode >= 0x8:
                out.append((opcode, payload))
            elif opcode == OP_CONT:
                if self._frag_op is None:
                    raise FrameError("continuation frame without a start")
                self._frag += payload
                if fin:
                    out.append((self._frag_op, bytes(self._frag)))
                    self._frag_op, self._frag = None, bytearray()
            elif fin:
                out.append((opcode, payload))
            else:
                self._frag_op, self._frag = opcode, bytearray(payload)

    def _one(self) -> tuple[bool, int, bytes] | None:
        b = self.buf
        if len(b) < 2:
            return None
        fin, opcode = bool(b[0] & 0x80), b[0] & 0x0F
        masked, n = bool(b[1] & 0x80), b[1] & 0x7F
        pos = 2
        if n == 126:
            if len(b) < 4:
                return None
            n = struct.unpack(">H", b[2:4])[0]
            pos = 4
        elif n == 127:
            if len(b) < 10:
                return None
            n = struct.unpack(">Q", b[2:10])[0]
            pos = 10
        if n > _MAX_FRAME:
            raise FrameError("frame too large")
        mask = b""
        if masked:
            if len(b) < pos + 4:
                return None
            mask = bytes(b[pos:pos + 4])
            pos += 4
        if len(b) < pos + n:
            return None
        payload = bytes(b[pos:pos + n])
        del b[:pos + n]
        if masked:
            payload = bytes(x ^ mask[i & 3] for i, x in enumerate(payload))
        return fin, opcode, payload


def is_websocket_request(headers: dict[str, str]) -> bool:
    connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    return ("upgrade" in connection and headers.get("upgrade", "").strip().lower() == "websocket"
            and bool(headers.get("sec-websocket-key", "").strip()))


def _flag(query: dict[str, list[str]], name: str) -> bool:
    values = query.get(name)
    return values is not None and bool(values) and values[-1].strip().lower() not in ("", "0", "no", "false", "none")


async def serve(engine: Any, req: Any, conn: Any, ref: str, version: str) -> None:
    svc = engine.containers
    c = svc.get(ref)  # 404 as an ordinary response, before the handshake
    if not is_websocket_request(req.headers) or req.headers.get("sec-websocket-version", "").strip() != "13":
        await conn.send_response(400, [("Content-Type", "text/plain; charset=utf-8")], b"not websocket protocol")
        return
    q = req.query
    want_stdin, want_stdout, want_stderr = _flag(q, "stdin"), _flag(q, "stdout"), _flag(q, "stderr")
    opcode = OP_BINARY if versions.at_least(version, "1.28") else OP_TEXT
    att = None
    if _flag(q, "stream"):
        att = await svc.attach(c.id, stdin=want_stdin, stdout=want_stdout, stderr=want_stderr)
    try:
        await conn.start_websocket(accept_key(req.headers["sec-websocket-key"]))
        if _flag(q, "logs"):
            async for entry in engine.read_logs(c, since_ns=None, until_ns=None, tail=None, follow=False,
                                                stopped=None):
                if (entry.stream == "stdout" and want_stdout) or (entry.stream == "stderr" and want_stderr):
                    await conn.write(encode_frame(opcode, entry.data))
        if att is not None:
            await _pump(conn, att, opcode)
        await conn.write(encode_frame(OP_CLOSE, struct.pack(">H", 1000)))
        await conn.close_write()
    finally:
        if att is not None:
            svc.forget_attach(att)
            await att.close()
        await conn.close()


async def _pump(conn: Any, att: Any, opcode: int) -> None:
    decoder = FrameDecoder()

    async def stdin_pump() -> None:
        stdin_open = True
        while True:
            data = await conn.read()
            if not data:
                if stdin_open:
                    await att.close_stdin()
                return
            try:
                frames = decoder.feed(data)
            except FrameError:
                log.info("bad websocket frame from an attach client; closing its stdin")
                frames = [(OP_CLOSE, b"")]
            for op, payload in frames:
                if op in (OP_TEXT, OP_BINARY) and stdin_open:
                    await att.write(payload)
                elif op == OP_PING:
                    await conn.write(encode_frame(OP_PONG, payload))
                elif op == OP_CLOSE and stdin_open:
                    stdin_open = False
                    await att.close_stdin()

    async def stdout_pump() -> None:
        while True:
            frame = await att.read()
            if frame is None:
                return
            _, data = frame
            if data:
                await conn.write(encode_frame(opcode, data))

    out_task = asyncio.ensure_future(stdout_pump())
    in_task = asyncio.ensure_future(stdin_pump())
    hangup = asyncio.ensure_future(conn.closed_by_peer.wait())
    try:
        done, _ = await asyncio.wait({out_task, hangup}, return_when=asyncio.FIRST_COMPLETED)
        if out_task in done:
            out_task.result()
    finally:
        for task in (in_task, hangup, out_task):
            if not task.done():
                task.cancel()
        await asyncio.gather(in_task, hangup, out_task, return_exceptions=True)
