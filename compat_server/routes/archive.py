"""`docker cp`: HEAD/GET/PUT /containers/{id}/archive."""
from __future__ import annotations

import base64
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from engine.containers.archive import DirectDownload, SocketBody
from engine.errors import EngineError

from ..errors import BadRequest
from ..http.rawbody import EXTENSION
from ..responses import qbool

log = logging.getLogger(__name__)


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


class _DirectTar(Response):
    """The tar written onto the connection by the helper itself: we send the head, it the body,
    we the last chunk (or, if it failed half-way, close the connection: the client sees a short
    archive, as when dockerd's copy fails mid-stream)."""

    def __init__(self, download: DirectDownload, raw: Any, headers: dict[str, str]) -> None:
        super().__init__(status_code=200, headers=headers, media_type="application/x-tar")
        # no length: chunked coding (or until close for an HTTP/1.0 client)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.download = download
        self.raw = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b"", "more_body": True})   # the head, now
            try:
                await self.download.send()
            except EngineError as err:
                log.warning("docker cp: %s", err.message)
                self.raw.abort()
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self.download.aclose()


def _raw(request: Request) -> Any:
    return (request.scope.get("extensions") or {}).get(EXTENSION)


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
        raw = _raw(request)
        engine.containers.get(ref)    # no such container: answered before the body is taken
        taken = await raw.take_body() if raw is not None else None
        body: Any = request.stream()
        if taken is not None:   # the helper reads the body off the connection itself
            body = SocketBody(raw.fileno(), taken.prefix, taken.chunked, taken.length)
        try:
            await engine.archive.put(ref, path, body, no_overwrite_dir_non_dir=no_overwrite,
                                     copy_uid_gid=qbool(request, "copyUIDGID"))
        finally:
            if taken is not None:
                raw.body_done()
        return Response(status_code=200)
    path = _path(request)
    if request.method == "HEAD":
        stat = await engine.archive.stat(ref, path)
        return Response(status_code=200, headers={"X-Docker-Container-Path-Stat": _stat_header(stat)})
    raw = _raw(request)
    if raw is not None:   # the helper writes the tar onto the connection itself
        stat, download = await engine.archive.get(ref, path, client_fd=raw.fileno(), chunked=raw.response_chunked)
        assert isinstance(download, DirectDownload)
        return _DirectTar(download, raw, {"X-Docker-Container-Path-Stat": _stat_header(stat)})
    stat, stream = await engine.archive.get(ref, path)
    return _ClosingStream(stream, media_type="application/x-tar",
                          headers={"X-Docker-Container-Path-Stat": _stat_header(stat)})


routes = [
    Route("/containers/{id}/archive", archive, methods=["GET", "HEAD", "PUT"]),
]
