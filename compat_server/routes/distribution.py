"""Registry routes: pull (``POST /images/create?fromImage``), push, ``POST /auth``,
``GET /distribution/{name}/json``."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.errors import EngineError
from engine.registry import auth as registry_auth
from engine.registry.service import parse_pull_reference
from engine.registry.service import search as registry_search

from ..errors import BadRequest
from ..responses import docker_json, qfilters
from .images import _progress_stream, engine_of


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


def _cancellable(progress: Callable[[dict[str, Any]], None],
                 cancelled: threading.Event) -> Callable[[dict[str, Any]], None]:
    def emit(msg: dict[str, Any]) -> None:
        if cancelled.is_set():
            raise EngineError("context canceled")
        progress(msg)
    return emit


async def pull(request: Request) -> Response:
    """The ``fromImage`` branch of ``POST /images/create``."""
    engine = engine_of(request)
    q = request.query_params
    ref = parse_pull_reference(q.get("fromImage") or "", q.get("tag") or "")
    auth = registry_auth.decode_header(request.headers.get("X-Registry-Auth"))
    platform = q.get("platform") or ""
    await request.body()  # the body (none) is read: what comes next from the client is its leaving
    cancelled = _cancel_on_disconnect(request)

    def work(progress: Callable[[dict[str, Any]], None]) -> list[str]:
        pulled: list[str] = engine.registry.pull(ref, auth, _cancellable(progress, cancelled), platform)
        return pulled

    def finish(pulled: list[str]) -> list[dict[str, Any]]:
        for name in pulled:
            # dockerd: the actor is the reference pulled, the name attribute its repository.
            repo = name.split("@", 1)[0]
            if ":" in repo.rsplit("/", 1)[-1]:
                repo = repo.rsplit(":", 1)[0]
            engine.events.publish_action("image", "pull", name, {"name": repo})
        return []

    return await _progress_stream(work, finish)


async def push(request: Request) -> Response:
    engine = engine_of(request)
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

    def work(progress: Callable[[dict[str, Any]], None]) -> None:
        engine.registry.push(name, tag, creds, _cancellable(progress, cancelled))

    def finish(_: None) -> list[dict[str, Any]]:
        shown = f"{name}:{tag}" if tag else name
        engine.events.publish_action("image", "push", shown, {"name": name})
        return []

    return await _progress_stream(work, finish)


async def login(request: Request) -> Response:
    engine = engine_of(request)
    auth = registry_auth.decode_body(await request.body())
    identity = await asyncio.to_thread(engine.registry.login, auth)
    return docker_json({"IdentityToken": identity, "Status": "Login Succeeded"})


async def inspect_distribution(request: Request) -> Response:
    engine = engine_of(request)
    auth = registry_auth.decode_header(request.headers.get("X-Registry-Auth"))
    name = request.path_params["name"]
    return docker_json(await asyncio.to_thread(engine.registry.inspect_distribution, name, auth))


async def search(request: Request) -> Response:
    engine = engine_of(request)
    q = request.query_params
    term = q.get("term") or ""
    raw_limit = q.get("limit") or ""
    try:
        limit = int(raw_limit) if raw_limit else 25
    except ValueError:
        raise BadRequest(f'strconv.Atoi: parsing "{raw_limit}": invalid syntax') from None
    flt = qfilters(request)
    results = await asyncio.to_thread(registry_search, engine.registry.config, term, limit)
    out = []
    for r in results:
        if "is-official" in flt and str(bool(r.get("is_official"))).lower() not in flt["is-official"]:
            continue
        if "is-automated" in flt and str(bool(r.get("is_automated"))).lower() not in flt["is-automated"]:
            continue
        if "stars" in flt and any(int(r.get("star_count") or 0) < int(v) for v in flt["stars"]):
            continue
        out.append({"star_count": r.get("star_count", 0), "is_official": bool(r.get("is_official")),
                    "name": r.get("name", ""), "is_automated": bool(r.get("is_automated")),
                    "description": r.get("description", "")})
    return docker_json(out)


routes = [
    Route("/auth", login, methods=["POST"]),
    Route("/images/{name:path}/push", push, methods=["POST"]),
    Route("/distribution/{name:path}/json", inspect_distribution, methods=["GET"]),
]
