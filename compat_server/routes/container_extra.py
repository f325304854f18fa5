"""Container routes beyond the lifecycle: top, changes (diff), export, commit."""
from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from engine.containers.commit import CommitOptions

from .. import gotypes
from ..backends import ContainerContentsBackend
from ..responses import api_version, docker_json, json_body, qbool


def backend_of(request: Request) -> ContainerContentsBackend:
    backend: ContainerContentsBackend = request.app.state.engine.container_contents
    return backend


async def top(request: Request) -> Response:
    result = await backend_of(request).top(request.path_params["id"], request.query_params.get("ps_args"))
    return docker_json({"Processes": [list(p) for p in result.processes], "Titles": list(result.titles)})


async def changes(request: Request) -> Response:
    found = await backend_of(request).changes(request.path_params["id"])
    return docker_json([{"Path": ch.path, "Kind": ch.kind} for ch in found] or None)


async def export(request: Request) -> Response:
    stream = backend_of(request).export(request.path_params["id"])

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
    q = request.query_params
    # dockerd's order: the body (Content-Type, JSON) first, then the reference, then the container.
    body = await json_body(request, go_type=gotypes.create_request(api_version(request)))
    opts = CommitOptions(
        repo=q.get("repo") or "", tag=q.get("tag") or "", author=q.get("author") or "",
        comment=q.get("comment") or "",
        pause=qbool(request, "pause", True) if q.get("pause") not in (None, "") else True,
        changes=tuple(q.getlist("changes")), config=body,
    )
    image_id = await backend_of(request).commit(q.get("container") or "", opts)
    return docker_json({"Id": image_id}, status=201)


routes = [
    Route("/containers/{id}/top", top, methods=["GET"]),
    Route("/containers/{id}/changes", changes, methods=["GET"]),
    Route("/containers/{id}/export", export, methods=["GET"]),
    Route("/commit", commit, methods=["POST"]),
]
