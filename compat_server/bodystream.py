"""A request body as a blocking file-like object for worker threads.

``docker load`` bodies are hundreds of megabytes: instead of spooling them to
disk first, the event loop pumps the body's chunks into a bounded queue and a
worker thread parses them as they arrive.  ``read`` returns whatever the next
chunk holds (at most ``n`` bytes), like a socket; EOF is b"".
"""
from __future__ import annotations

import asyncio
import queue
from typing import Any

from starlette.requests import Request

_EOF = object()
_MAX_CHUNKS = 256          # about 16 MB in flight with the driver's 64 kB reads


class BodyStream:
    def __init__(self) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=_MAX_CHUNKS)
        self._head: bytes | memoryview = b""
        self._done = False
        self.closed = False
        # The pump waits for room on the event loop, never in a worker thread: with a full
        # thread pool a blocked put could otherwise wait for a thread its own reader holds.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room: asyncio.Event | None = None
        self._pump_waiting = False

    # -- the event loop side -----------------------------------------------------
    async def pump(self, request: Request) -> None:
        """Feed the body into the queue; a dropped client becomes an error for the reader."""
        self._loop = asyncio.get_running_loop()
        self._room = asyncio.Event()
        try:
            async for chunk in request.stream():
                if self.closed:
                    continue  # the reader gave up: drain the body so the connection stays usable
                if chunk:
                    await self._put(chunk)
        except Exception as err:  # noqa: BLE001 - handed to the reading thread
            await self._put(err)
            return
        await self._put(_EOF)

    async def _put(self, item: Any) -> None:
        assert self._room is not None
        while not self.closed:
            self._room.clear()
            self._pump_waiting = True
            try:
                self._q.put_nowait(item)
                return
            except queue.Full:
                await self._room.wait()
            finally:
                self._pump_waiting = False

    def _made_room(self) -> None:
        if self._pump_waiting and self._loop is not None and self._room is not None:
            self._loop.call_soon_threadsafe(self._room.set)

    # -- the worker thread side --------------------------------------------------
    def read(self, n: int = -1) -> bytes:
        if self._head:
            # a memoryview: small reads from a big chunk do not copy its rest each time
            head = memoryview(self._head)
            if n < 0 or n >= len(head):
                out, self._head = bytes(head), b""
            else:
                out, self._head = bytes(head[:n]), head[n:]
            return out
        if self._done:
            return b""
        item = self._q.get()
        self._made_room()
        if item is _EOF:
            self._done = True
            return b""
        if isinstance(item, BaseException):
            self._done = True
            raise EOFError(f"request body ended early: {item}")
        chunk: bytes = item
        if 0 <= n < len(chunk):
            self._head = memoryview(chunk)[n:]
            return chunk[:n]
        return chunk

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """The reader is finished (or failed): stop queueing, let the pump drain the rest."""
        self.closed = True
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        if self._loop is not None and self._room is not None:
            self._loop.call_soon_threadsafe(self._room.set)
