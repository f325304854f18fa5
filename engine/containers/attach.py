"""Attach sessions that may begin before the container starts.

`docker run` attaches before it starts the container, and its stdin (and even
the stdin half-close) may arrive before the container exists as a process.
A ``ContainerAttach`` buffers that stdin and is bound to the shim's attach
session between the runtime's create and start, so no output is lost.
"""
from __future__ import annotations

import asyncio
from typing import Any, Protocol

STDOUT = 1
STDERR = 2


class ShimAttachSession(Protocol):
    async def read(self) -> tuple[int, bytes] | None: ...
    async def write(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...
    async def close(self) -> None: ...


class ContainerAttach:
    def __init__(self, container_id: str, *, stdin: bool, stdout: bool, stderr: bool, tty: bool) -> None:
        self.container_id = container_id
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.tty = tty
        self._session: ShimAttachSession | None = None
        self._bound = asyncio.Event()
        self._pending_stdin: list[bytes] = []
        self._stdin_closed = False
        self._closed = False
        self._ended = asyncio.Event()   # set when there will be no more output

    @property
    def bound(self) -> bool:
        return self._session is not None

    async def bind(self, session: ShimAttachSession) -> None:
        """Connect to the running container's streams and flush buffered stdin."""
        if self._closed:
            await session.close()
            return
        self._session = session
        for chunk in self._pending_stdin:
            await session.write(chunk)
        self._pending_stdin.clear()
        if self._stdin_closed:
            await session.close_stdin()
        self._bound.set()

    def end(self) -> None:
        """The container will not run for this attach (removed, or failed to start)."""
        self._ended.set()
        self._bound.set()

    async def read(self) -> tuple[int, bytes] | None:
        """Next output frame (stream, data), or None once the container's output has ended."""
        if self._session is None:
            await self._bound.wait()
            if self._session is None:
                return None
        while True:
            frame = await self._session.read()
            if frame is None:
                return None
            stream, _data = frame
            if (stream == STDOUT and self.stdout) or (stream == STDERR and self.stderr):
                return frame

    async def write(self, data: bytes) -> None:
        if not self.stdin or self._stdin_closed:
            return
        if self._session is None:
            self._pending_stdin.append(data)
        else:
            await self._session.write(data)

    async def close_stdin(self) -> None:
        if self._stdin_closed:
            return
        self._stdin_closed = True
        if self._session is not None and self.stdin:
            await self._session.close_stdin()

    async def close(self) -> None:
        self._closed = True
        self._bound.set()
        if self._session is not None:
            await self._session.close()

    def describe(self) -> dict[str, Any]:
        return {"stdin": self.stdin, "stdout": self.stdout, "stderr": self.stderr, "bound": self.bound}
