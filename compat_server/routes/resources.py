"""stats, update, pause and unpause of a container."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from engine.types import RestartPolicy

from .. import gotypes, resources_codec
from ..errors import BadRequest
from ..responses import docker_json, dumps, json_body, no_content, qbool


def _engine(request: Request) -> Any:
    return request.app.state.engine


async def pause(request: Request) -> Response:
    await _engine(request).containers.pause(request.path_params["id"])
    return no_content()


async def unpause(request: Request) -> Response:
    await _engine(request).containers.unpause(request.path_params["id"])
    return no_content()


async def update(request: Request) -> Response:
    body = await json_body(request, go_type=gotypes.UPDATE_CONFIG) or {}
    patch = resources_codec.decode_update(body)
    policy = None
    rp = body.get("RestartPolicy")
    if isinstance(rp, dict) and rp.get("Name"):
        policy = RestartPolicy(name=str(rp["Name"]), maximum_retry_count=int(rp.get("MaximumRetryCount") or 0))
        _check_policy(policy)
    warnings = await _engine(request).containers.update(request.path_params["id"], patch, policy)
    return docker_json({"Warnings": warnings or None})


def _check_policy(p: RestartPolicy) -> None:
    if p.name not in ("no", "always", "unless-stopped", "on-failure"):
        raise BadRequest(f"invalid restart policy: unknown policy '{p.name}'; use one of 'no', 'always', "
                         "'on-failure', or 'unless-stopped'")
    if p.maximum_retry_count and p.name != "on-failure":
        raise BadRequest("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    if p.maximum_retry_count < 0:
        raise BadRequest("invalid restart policy: maximum retry count must be a positive integer")


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
