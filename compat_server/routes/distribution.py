"""Registry routes: pull (``POST /images/create?fromImage``), push, ``POST /auth``,
``GET /distribution/{name}/json``."""
from __future__ import annotations

import asyncio
import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.errors import EngineError
from engine.registry import auth as registry_auth
from engine.registry.service import parse_pull_reference

from ..backends import DistributionBackend
from ..errors import BadRequest
from ..progress import Progress, progress_stream
from ..responses import docker_json, qfilters


def backend_of(request: Request) -> DistributionBackend:
    backend: DistributionBackend = request.app.state.engine.registry
    return backend


def _cancel_on_disconnect(request: Request) -> threading.Event:
    """An event set when the client goes away, like the request context dockerd cancels.

    Progress callbacks check it, so a pull or push in its worker threads stops at the next
    progress report instead of running on for nobody.
    """
    cancelled = threading.Event()

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                cancelled.set()
                return

    task = asyncio.ensure_future(watch())
    _watchers.add(task)
    task.add_done_callback(_watchers.discard)
    return cancelled


_watchers: set[asyncio.Future[None]] = set()


def _cancellable(progress: Progress, cancelled: threading.Event) -> Progress:
    def emit(msg: dict[str, Any]) -> None:
        if cancelled.is_set():
            raise EngineError("context canceled")
        progress(msg)
    return emit


async def pull(request: Request) -> Response:
    """The ``fromImage`` branch of ``POST /images/create``."""
    registry = backend_of(request)
    q = request.query_params
    ref = parse_pull_reference(q.get("fromImage") or "", q.get("tag") or "")
    auth = registry_auth.decode_header(request.headers.get("X-Registry-Auth"))
    platform = q.get("platform") or ""
    await request.body()  # the body (none) is read: what comes next from the client is its leaving
    cancelled = _cancel_on_disconnect(request)

    def work(progress: Progress) -> list[str]:
        return registry.pull(ref, auth, _cancellable(progress, cancelled), platform)

    return await progress_stream(work)


async def push(request: Request) -> Response:
    registry = backend_of(request)
    name = request.path_params["name"]
    tag = request.query_params.get("tag") or ""
    header = request.headers.get("X-Registry-Auth")
    auth: registry_auth.AuthConfig | None
    if header:
        auth = registry_auth.decode_header(header)
    else:
        # The old clients' form: credentials in the body; nothing at all is refused.
        body = await request.body()
        try:
            auth = registry_auth.decode_body(body) if body.strip() else None
        except EngineError:
            auth = None
        if auth is None:
            raise BadRequest("Bad parameters and missing X-Registry-Auth: EOF")
    creds: registry_auth.AuthConfig = auth

    await request.body()
    cancelled = _cancel_on_disconnect(request)

    def work(progress: Progress) -> None:
        registry.push(name, tag, creds, _cancellable(progress, cancelled))

    return await progress_stream(work)


async def login(request: Request) -> Response:
    auth = registry_auth.decode_body(await request.body())
    identity = await asyncio.to_thread(backend_of(request).login, auth)
    return docker_json({"IdentityToken": identity, "Status": "Login Succeeded"})


async def inspect_distribution(request: Request) -> Response:
    auth = registry_auth.decode_header(request.headers.get("X-Registry-Auth"))
    name = request.path_params["name"]
    return docker_json(await asyncio.to_thread(backend_of(request).inspect_distribution, name, auth))


async def search(request: Request) -> Response:
    q = request.query_params
    term = q.get("term") or ""
    raw_limit = q.get("limit") or ""
    try:
        limit = int(raw_limit) if raw_limit else 25
    except ValueError:
        raise BadRequest(f'strconv.Atoi: parsing "{raw_limit}": invalid syntax') from None
    results = await asyncio.to_thread(backend_of(request).search, term, limit, qfilters(request))
    return docker_json([{"star_count": r.star_count, "is_official": r.is_official, "name": r.name,
                         "is_automated": r.is_automated, "description": r.description} for r in results])


routes = [
    Route("/auth", login, methods=["POST"]),
    Route("/images/{name:path}/push", push, methods=["POST"]),
    Route("/distribution/{name:path}/json", inspect_distribution, methods=["GET"]),
]
