"""The starlette application: routes served bare and under /v{major}.{minor}/."""
from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.errors import EngineError

from . import versions
from .errors import BadRequest, engine_error_handler, error_body
from .http.connection import BODY_ERROR
from .routes import archive as archive_routes
from .routes import build as build_routes
from .routes import container_extra, containers, distribution, images, plugins, system
from .routes import disk_usage as disk_usage_routes
from .routes import exec as exec_routes
from .routes import networks as network_routes
from .routes import prune as prune_routes
from .routes import resources as resource_routes
from .routes import volumes as volume_routes

log = logging.getLogger(__name__)


class VersionMiddleware:
    """Strips the /vX.Y prefix, checks the range, and records the request's API version."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        m = versions.PREFIX.match(path)
        version = versions.DEFAULT_API_VERSION
        if m:
            version = m.group(1)
            problem = versions.check(version)
            if problem:
                await _send_json(send, 400, error_body(problem))
                return
            scope = dict(scope)
            scope["path"] = m.group(2)
            raw = scope.get("raw_path")
            if raw:
                scope["raw_path"] = raw[len(m.group(0)) - len(m.group(2)):]
        scope["api_version"] = version
        await self.app(scope, receive, send)


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        return Response(error_body("page not found"), status_code=404, media_type="application/json")
    return Response(error_body(str(exc.detail)), status_code=exc.status_code, media_type="application/json")


async def body_not_read(request: Request, exc: Exception) -> Response:
    """The request body ended early: badly framed (dockerd: 400 with Go's words), or the client left."""
    problem = (request.scope.get(BODY_ERROR) or {}).get("message")
    if problem:
        return Response(error_body(str(problem)), status_code=400, media_type="application/json")
    log.debug("client went away before its request body was read: %s %s", request.method, request.url.path)
    return Response(status_code=400)  # nobody is there to read it


async def swarm_unavailable(request: Request) -> Response:
    return Response(
        error_body("This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" "
                   "to connect this node to swarm and try again."),
        status_code=503,
        media_type="application/json",
    )


def _swarm_routes() -> list[Route]:
    paths = ["/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs"]
    out = []
    for p in paths:
        out.append(Route(p, swarm_unavailable, methods=["GET", "POST"]))
        out.append(Route(p + "/{rest:path}", swarm_unavailable, methods=["GET", "POST", "DELETE"]))
    return out


def build_app(engine: Any) -> ASGIApp:
    # One module per line: helpers add theirs without touching the others.
    routes = [
        *system.routes,
        *prune_routes.routes,
        *archive_routes.routes,
        *containers.routes,
        *container_extra.routes,
        *resource_routes.routes,
        *exec_routes.routes,
        *images.routes,
        *network_routes.routes,
        *distribution.routes,
        *plugins.routes,
        *volume_routes.routes,
        *disk_usage_routes.routes,
        *build_routes.routes,
        *_swarm_routes(),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            EngineError: engine_error_handler,
            BadRequest: engine_error_handler,
            HTTPException: http_exception,
            ClientDisconnect: body_not_read,
        },
    )
    app.state.engine = engine
    app.state.default_version = versions.DEFAULT_API_VERSION
    return VersionMiddleware(app)
