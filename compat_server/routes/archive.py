"""`docker cp`: HEAD/GET/PUT /containers/{id}/archive."""
from __future__ import annotations

import base64
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..errors import BadRequest
from ..responses import qbool


class _ClosingStream(StreamingResponse):
    """Closes its body iterator however the response ends (a client that stops reading early
    included): the iterator holds the container's lock and a helper process."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def _stat_header(stat: Any) -> str:
    data = {"name": stat.name, "size": stat.size, "mode": stat.mode, "mtime": stat.mtime,
            "linkTarget": stat.link_target}
    return base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _path(request: Request) -> str:
    path = request.query_params.get("path", "")
    if not path:
        raise BadRequest("bad parameter: path cannot be empty")
    return path


async def archive(request: Request) -> Response:
    engine: Any = request.app.state.engine
    ref = request.path_params["id"]
    if request.method == "PUT":
        path = _path(request)
        no_overwrite = ("noOverwriteDirNonDir" in request.query_params) and qbool(request, "noOverwriteDirNonDir")
        await engine.archive.put(ref, path, request.stream(), no_overwrite_dir_non_dir=no_overwrite,
                                 copy_uid_gid=qbool(request, "copyUIDGID"))
        return Response(status_code=200)
    path = _path(request)
    if request.method == "HEAD":
        stat = await engine.archive.stat(ref, path)
        return Response(status_code=200, headers={"X-Docker-Container-Path-Stat": _stat_header(stat)})
    stat, stream = await engine.archive.get(ref, path)
    return _ClosingStream(stream, media_type="application/x-tar",
                             headers={"X-Docker-Container-Path-Stat": _stat_header(stat)})


routes = [
    Route("/containers/{id}/archive", archive, methods=["GET", "HEAD", "PUT"]),
]
