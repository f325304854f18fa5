"""One connection to a container's shim (asyncio side): frames, replies, and the
attach and exec streams that ride on a connection of their own.

The wire format is ``engine.runtime.protocol``; the requests are listed in
``engine.runtime.shim``.
"""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from engine.errors import EngineError, Unavailable
from engine.runtime import protocol as P
from engine.runtime.api import ExitStatus
from engine.runtime.shimstate import EXIT_FILE, SOCKET_NAME


def exit_status_of(d: dict[str, Any]) -> ExitStatus:
    return ExitStatus(
        exit_code=int(d.get("exit_code", 255)),
        finished_at=str(d.get("finished_at", "")),
        oom_killed=bool(d.get("oom_killed", False)),
        error=str(d.get("error") or ""),
    )


async def open_shim_socket(bundle: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    path = str(bundle / SOCKET_NAME)
    if len(path.encode()) < 100:
        return await asyncio.open_unix_connection(path)
    # sun_path holds 108 bytes: go through a directory fd for long bundle paths
    dirfd = os.open(bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return await asyncio.open_unix_connection(f"/proc/self/fd/{dirfd}/{SOCKET_NAME}")
    finally:
        os.close(dirfd)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    try:
        head = await reader.readexactly(P.HEADER.size)
        kind, length = P.HEADER.unpack(head)
        if length > P.MAX_FRAME:
            raise P.FrameError(f"frame too large: {length}")
        return kind, await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class ShimConn:
    """One socket to the shim with request/reply matching."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.next_id = 0

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request_inline(self, op: str, **kw: Any) -> dict[str, Any]:
        """Send a request and read frames until its reply (no reader task yet)."""
        self.next_id += 1
        rid = self.next_id
        await self.send(P.ctrl({"op": op, "id": rid, **kw}))
        while True:
            fr = await read_frame(self.reader)
            if fr is None:
                raise Unavailable("connection to the container's shim closed")
            kind, payload = fr
            if kind == P.CTRL:
                msg: dict[str, Any] = json.loads(payload)
                if msg.get("id") == rid:
                    if not msg.get("ok"):
                        raise EngineError(msg.get("error", f"shim {op} failed"))
                    return msg

    def close(self) -> None:
        try:
            self.writer.close()
        except RuntimeError:  # loop already closed
            pass


class AttachSession:
    """A container's streams as seen by one attach: frames in, stdin out."""

    def __init__(self, conn: ShimConn) -> None:
        self._conn = conn
        self._ended = False

    async def read(self) -> tuple[int, bytes] | None:
        """(1=stdout or 2=stderr, data); None once all output was delivered."""
        while not self._ended:
            fr = await read_frame(self._conn.reader)
            if fr is None:
                self._ended = True
                break
            kind, payload = fr
            if kind in (P.STDOUT, P.STDERR):
                return kind, payload
            if kind == P.CTRL and json.loads(payload).get("event") == "exit":
                self._ended = True
        return None

    async def write(self, data: bytes) -> None:
        if data:
            await self._conn.send(P.frame(P.STDIN, data))

    async def close_stdin(self) -> None:
        self._conn.next_id += 1
        await self._conn.send(P.ctrl({"op": "close_stdin", "id": self._conn.next_id}))

    async def close(self) -> None:
        self._conn.close()


class ExecSession(AttachSession):
    """A process started in the running container: its streams, signals and exit.

    Read output with ``read()`` until it returns None, then ``wait()``; or call
    ``wait()`` directly to discard the output (detached exec)."""

    def __init__(self, conn: ShimConn, pid: int) -> None:
        super().__init__(conn)
        self.pid = pid
        self._status: ExitStatus | None = None

    async def read(self) -> tuple[int, bytes] | None:
        while not self._ended:
            fr = await read_frame(self._conn.reader)
            if fr is None:
                self._ended = True
                break
            kind, payload = fr
            if kind in (P.STDOUT, P.STDERR):
                return kind, payload
            if kind == P.CTRL:
                msg = json.loads(payload)
                if msg.get("event") == "exit":
                    self._status = exit_status_of(msg)
                    self._ended = True
        return None

    async def wait(self) -> ExitStatus:
        while await self.read() is not None:
            pass
        if self._status is None:
            raise Unavailable("connection to the container's shim closed before the exec exited")
        return self._status

    async def resize(self, height: int, width: int) -> None:
        self._conn.next_id += 1
        await self._conn.send(P.ctrl({"op": "resize", "id": self._conn.next_id, "height": int(height),
                                      "width": int(width)}))

    async def kill(self, sig: int) -> None:
        self._conn.next_id += 1
        await self._conn.send(P.ctrl({"op": "kill", "id": self._conn.next_id, "signal": int(sig)}))


def read_exit_status(bundle: Path) -> ExitStatus | None:
    try:
        with open(Path(bundle) / EXIT_FILE, "rb") as f:
            return exit_status_of(json.load(f))
    except (FileNotFoundError, ValueError):
        return None
