"""progress_stream: an early failure is an error status, a later one goes into the stream as
dockerd's errorDetail message; finish() closes a successful stream."""
from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from compat_server.errors import engine_error_handler
from compat_server.progress import Progress, progress_stream
from engine.errors import EngineError, NotFound


def _app(work: Any, **kw: Any) -> Starlette:
    async def handler(request: Request) -> Response:
        return await progress_stream(work, **kw)

    return Starlette(routes=[Route("/", handler, methods=["POST"])],
                     exception_handlers={EngineError: engine_error_handler})


def _post(app: Starlette) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d") as client:
            return await client.post("/")

    return asyncio.run(asyncio.wait_for(go(), 20))


def _messages(resp: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in resp.text.splitlines() if line.strip()]


def test_failure_before_any_message_is_an_error_status() -> None:
    def work(progress: Progress) -> None:
        raise NotFound("No such image: x")

    resp = _post(_app(work))
    assert resp.status_code == 404
    assert resp.json() == {"message": "No such image: x"}


def test_failure_after_a_message_goes_into_the_stream() -> None:
    def work(progress: Progress) -> None:
        progress({"status": "Pulling"})
        raise EngineError("unexpected EOF")

    resp = _post(_app(work))
    assert resp.status_code == 200
    assert _messages(resp) == [{"status": "Pulling"},
                               {"errorDetail": {"message": "unexpected EOF"}, "error": "unexpected EOF"}]


def test_success_streams_messages_then_finish() -> None:
    def work(progress: Progress) -> int:
        progress({"status": "one"})
        progress({"status": "two"})
        return 3

    resp = _post(_app(work, finish=lambda n: [{"status": f"done {n}"}]))
    assert _messages(resp) == [{"status": "one"}, {"status": "two"}, {"status": "done 3"}]


def test_quiet_success_is_a_plain_answer_and_own_thread_runs_elsewhere() -> None:
    threads: list[str] = []

    def work(progress: Progress) -> str:
        threads.append(threading.current_thread().name)
        return "ok"

    resp = _post(_app(work, finish=lambda r: [{"status": r}], own_thread=True))
    assert resp.status_code == 200 and _messages(resp) == [{"status": "ok"}]
    assert threads == ["pydockerd-progress-job"]


def test_always_stream_answers_200_even_when_the_work_fails_at_once() -> None:
    def work(progress: Progress) -> None:
        raise EngineError("bad archive")

    resp = _post(_app(work, always_stream=True))
    assert resp.status_code == 200
    assert _messages(resp) == [{"errorDetail": {"message": "bad archive"}, "error": "bad archive"}]
