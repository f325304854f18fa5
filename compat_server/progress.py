"""Streams the JSON progress messages of a long blocking job (load, pull, push) as dockerd does.

Until the first message the HTTP status is still open, so an early failure becomes a proper error
status; a later failure goes into the stream as dockerd's ``{"errorDetail": ..., "error": ...}``.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from starlette.responses import Response, StreamingResponse

from .errors import message_for
from .responses import dumps

T = TypeVar("T")
Progress = Callable[[dict[str, Any]], None]
_END = object()


def in_own_thread(fn: Callable[[Progress], T], progress: Progress) -> asyncio.Future[T]:
    """Run ``fn`` on a thread of its own: a load lasts as long as its upload, and must not hold
    one of the few shared pool threads the rest of the daemon (and its own pump) rely on."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    def target() -> None:
        try:
            result = fn(progress)
        except BaseException as err:  # noqa: BLE001 - delivered to the awaiting coroutine
            loop.call_soon_threadsafe(settle, None, err)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=target, name="pydockerd-progress-job", daemon=True).start()
    return fut


async def progress_stream(
    work: Callable[[Progress], T],
    finish: Callable[[T], list[dict[str, Any]]] | None = None,
    *,
    always_stream: bool = False,
    own_thread: bool = False,
) -> Response:
    """Run blocking ``work(progress)`` in a thread and stream its JSON messages; ``finish(result)``
    gives the messages that close a successful stream.  ``always_stream`` starts the 200 response
    at once (dockerd reports a bad archive to ``load`` inside the stream)."""
    done: Callable[[T], list[dict[str, Any]]] = finish or (lambda _result: [])
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def progress(msg: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, msg)

    async def run() -> T:
        try:
            if own_thread:
                return await in_own_thread(work, progress)
            return await asyncio.to_thread(work, progress)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    task = asyncio.ensure_future(run())
    first = None if always_stream else await queue.get()
    if first is _END:
        result = await task  # raises -> error status
        messages = done(result)
        return Response(b"".join(dumps(m) for m in messages), media_type="application/json")

    async def body() -> AsyncIterator[bytes]:
        yield dumps(first) if first is not None else b""
        while True:
            item = await queue.get()
            if item is _END:
                break
            yield dumps(item)
        try:
            result = await task
        except Exception as err:  # noqa: BLE001
            msg = message_for(err)
            yield dumps({"errorDetail": {"message": msg}, "error": msg})
            return
        for m in done(result):
            yield dumps(m)

    return StreamingResponse(body(), media_type="application/json")


