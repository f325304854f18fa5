"""stats, update, pause and unpause of a container."""
from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from engine.types import RestartPolicy

from .. import gotypes, resources_codec, unsupported
from ..backends import ResourcesBackend
from ..errors import BadRequest
from ..responses import docker_json, dumps, json_body, no_content, qbool


def _engine(request: Request) -> ResourcesBackend:
    backend: ResourcesBackend = request.app.state.engine
    return backend


async def pause(request: Request) -> Response:
    await _engine(request).containers.pause(request.path_params["id"])
    return no_content()


async def unpause(request: Request) -> Response:
    await _engine(request).containers.unpause(request.path_params["id"])
    return no_content()


async def update(request: Request) -> Response:
    body = await json_body(request, go_type=gotypes.UPDATE_CONFIG) or {}
    unsupported.check_update(body)
    patch = resources_codec.decode_update(body)
    policy = None
    rp = body.get("RestartPolicy")
    if isinstance(rp, dict) and rp.get("Name"):
        policy = RestartPolicy(name=str(rp["Name"]), maximum_retry_count=int(rp.get("MaximumRetryCount") or 0))
    warnings = await _engine(request).containers.update(request.path_params["id"], patch, policy)
    return docker_json({"Warnings": warnings or None})


async def stats(request: Request) -> Response:
    q = request.query_params
    stream = qbool(request, "stream") if "stream" in q else True
    one_shot = qbool(request, "one-shot")
    if one_shot and stream:
        raise BadRequest("cannot have stream=true and one-shot=true")
    docs = _engine(request).containers.stats(request.path_params["id"], stream=stream, one_shot=one_shot)
    first = await anext(docs, None)  # errors (no such container) become a status code

    async def body() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield dumps(first)
            async for doc in docs:
                yield dumps(doc)
        finally:
            await docs.aclose()

    return StreamingResponse(body(), media_type="application/json")


routes = [
    Route("/containers/{id}/pause", pause, methods=["POST"]),
    Route("/containers/{id}/unpause", unpause, methods=["POST"]),
    Route("/containers/{id}/update", update, methods=["POST"]),
    Route("/containers/{id}/stats", stats, methods=["GET"]),
]
