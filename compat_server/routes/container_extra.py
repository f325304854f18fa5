"""Container routes beyond the lifecycle: top, changes (diff), export, commit."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from engine.containers.commit import CommitOptions, Committer
from engine.containers.export import export_container
from engine.containers.top import run_top
from engine.errors import InvalidParameter
from engine.images.store import ImageStore

from .. import gotypes
from ..responses import api_version, docker_json, json_body, qbool


def engine_of(request: Request) -> Any:
    return request.app.state.engine


def committer(engine: Any) -> Committer:
    return Committer(engine.containers, engine.images, engine.snapshotter, engine.events)


async def top(request: Request) -> Response:
    engine = engine_of(request)
    c = engine.containers.get(request.path_params["id"])
    pids: list[int] = []
    handle = engine.containers.runtime_handle(c) if c.state.running else None
    if handle is not None:
        pids = await handle.pids()
    result = await run_top(c.id, c.state.running, pids, request.query_params.get("ps_args"))
    return docker_json({"Processes": [list(p) for p in result.processes], "Titles": list(result.titles)})


async def changes(request: Request) -> Response:
    engine = engine_of(request)
    c = engine.containers.get(request.path_params["id"])
    found = await asyncio.to_thread(lambda: committer(engine).rw_layer(c).changes())
    return docker_json([{"Path": ch.path, "Kind": ch.kind} for ch in found] or None)


async def export(request: Request) -> Response:
    engine = engine_of(request)
    c = engine.containers.get(request.path_params["id"])
    stream = export_container(engine.containers, engine.containers.images, c, engine.config.bundles_root)
    engine.events.publish_action("container", "export", c.id, {"image": c.config.image, "name": c.name,
                                                               **c.config.labels})

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b""
            async for chunk in stream:
                yield chunk
        finally:
            # A client that hangs up mid-way must not leave the snapshot mounted.
            await stream.aclose()

    return StreamingResponse(body(), media_type="application/octet-stream")


async def commit(request: Request) -> Response:
    engine = engine_of(request)
    q = request.query_params
    repo, tag = q.get("repo") or "", q.get("tag") or ""
    # dockerd's order: the body (Content-Type, JSON) first, then the reference.
    body = await json_body(request, go_type=gotypes.create_request(api_version(request)))
    ref = ImageStore.parse_tag(repo, tag) if repo else None
    name = q.get("container") or ""
    if not name:
        raise InvalidParameter('invalid name or ID supplied: ""')
    opts = CommitOptions(
        repo=repo, tag=tag, author=q.get("author") or "", comment=q.get("comment") or "",
        pause=qbool(request, "pause", True) if q.get("pause") not in (None, "") else True,
        changes=tuple(q.getlist("changes")), config=body,
    )
    image_id = await committer(engine).commit(name, ref, opts)
    return docker_json({"Id": image_id}, status=201)


routes = [
    Route("/containers/{id}/top", top, methods=["GET"]),
    Route("/containers/{id}/changes", changes, methods=["GET"]),
    Route("/containers/{id}/export", export, methods=["GET"]),
    Route("/commit", commit, methods=["POST"]),
]
