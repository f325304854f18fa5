"""One reader task per connection, buffering what the client sends.

Reading continuously (with a bounded buffer) lets us notice a client that
goes away while a response streams, without cancelling reads half-way (a
cancelled TLS read could lose bytes).  The h11 driver and the hijacked
connection both take their input from here.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from .stream import RECV_SIZE, Stream

log = logging.getLogger(__name__)

HIGH_WATER = 256 * 1024


class Inbox:
    def __init__(self, stream: Stream, high_water: int = HIGH_WATER) -> None:
        self._stream = stream
        self._high_water = high_water
        self._buf = bytearray()
        self._data = asyncio.Event()  # set while _buf holds bytes or the input ended
        self._room = asyncio.Event()  # set while _buf is below the high-water mark
        self._room.set()
        self.eof = asyncio.Event()  # the client stopped sending (half-close, hang-up or reset)
        self.reset = False  # the connection was reset rather than closed cleanly
        self._task: asyncio.Task[None] | None = None
        self._pausing = False

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    @property
    def can_pause(self) -> bool:
        return hasattr(self._stream, "wait_readable")

    async def _recv(self) -> bytes:
        if not self.can_pause:
            return await self._stream.recv(RECV_SIZE)
        stream: Any = self._stream
        while True:   # cancel-safe: bytes are taken off the socket only when it is readable
            data = stream.recv_nowait(RECV_SIZE)
            if data is not None:
                return bytes(data)
            await stream.wait_readable()

    async def _run(self) -> None:
        try:
            while True:
                await self._room.wait()
                data = await self._recv()
                if not data:
                    break
                self._buf += data
                self._data.set()
                if len(self._buf) >= self._high_water:
                    self._room.clear()
        except (ConnectionError, OSError) as err:
            log.debug("connection read failed: %s", err)
            self.reset = True
        finally:
            if not self._pausing:    # (a pause is not the end of the input)
                self.eof.set()
                self._data.set()

    async def pause(self) -> bytes:
        """Stop reading the socket (someone else reads it now) and return what was buffered."""
        if not self.can_pause:
            raise RuntimeError("this stream cannot hand its input over")
        task, self._task = self._task, None
        if task is not None and not task.done():
            self._pausing = True
            task.cancel()
            try:
                await asyncio.gather(task, return_exceptions=True)
            finally:
                self._pausing = False
        return self.take_buffered()

    def resume(self) -> None:
        """Read the socket again after a pause."""
        if self._task is None and not self.eof.is_set():
            self.start()

    def take_buffered(self) -> bytes:
        """Everything buffered so far (possibly b"" even before EOF)."""
        data = bytes(self._buf)
        self._buf.clear()
        if not self.eof.is_set():
            self._data.clear()
        self._room.set()
        return data

    async def read(self) -> bytes:
        """Buffered bytes, waiting for some if none; b"" once the input ended and all was read."""
        while not self._buf:
            if self.eof.is_set():
                return b""
            self._data.clear()
            await self._data.wait()
        return self.take_buffered()

    @property
    def idle(self) -> bool:
        return not self._buf

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
