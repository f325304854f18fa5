"""BodyStream: a request body handed from the event loop to a worker thread chunk by chunk."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from compat_server.bodystream import BodyStream


class FakeRequest:
    def __init__(self, chunks: list[bytes], fail: BaseException | None = None) -> None:
        self.chunks = chunks
        self.fail = fail
        self.consumed = 0

    async def stream(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            self.consumed += 1
            yield c
            await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail


def _read_all(body: BodyStream, n: int) -> bytes:
    out = bytearray()
    while True:
        data = body.read(n)
        if not data:
            return bytes(out)
        out += data


@pytest.mark.parametrize("n", [1, 7, 65536, -1])
def test_reads_everything_in_order(n: int) -> None:
    chunks = [bytes([i % 256]) * (i * 7 + 1) for i in range(300)]  # more chunks than the queue holds

    async def main() -> bytes:
        body = BodyStream()
        pump = asyncio.ensure_future(body.pump(FakeRequest(chunks)))  # type: ignore[arg-type]
        data = await asyncio.to_thread(_read_all, body, n)
        await pump
        return data
    assert asyncio.run(main()) == b"".join(chunks)


def test_client_gone_is_an_eof_error_for_the_reader() -> None:
    async def main() -> None:
        body = BodyStream()
        pump = asyncio.ensure_future(body.pump(FakeRequest([b"abc"], OSError("gone"))))  # type: ignore[arg-type]
        with pytest.raises(EOFError, match="request body ended early"):
            await asyncio.to_thread(_read_all, body, 10)
        await pump
    asyncio.run(main())


def test_closed_reader_lets_the_pump_drain_the_body() -> None:
    chunks = [b"x" * 1000] * 2000  # far more than the queue's bound

    async def main() -> int:
        body = BodyStream()
        req = FakeRequest(chunks)
        pump = asyncio.ensure_future(body.pump(req))  # type: ignore[arg-type]
        assert await asyncio.to_thread(body.read, 10) == b"x" * 10
        body.close()
        await asyncio.wait_for(pump, 20)
        return req.consumed
    assert asyncio.run(main()) == len(chunks)


def test_pump_needs_no_pool_thread_when_the_queue_is_full() -> None:
    """With every pool thread busy (here: the only one, waiting for the reader to finish), a
    full queue must not make the pump wait for a pool thread: that was a deadlock."""
    import concurrent.futures
    import threading
    chunks = [b"y" * 4096] * 2000  # several times the queue's bound
    finished = threading.Event()

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=1))
        body = BodyStream()
        blocker = loop.run_in_executor(None, finished.wait, 30)  # holds the only pool thread
        result: list[bytes] = []

        def reader() -> None:
            result.append(_read_all(body, 65536))
            finished.set()
        t = threading.Thread(target=reader)
        t.start()
        await asyncio.wait_for(body.pump(FakeRequest(chunks)), 20)  # type: ignore[arg-type]
        assert await blocker is True
        t.join(10)
        return result[0]
    assert asyncio.run(main()) == b"".join(chunks)
