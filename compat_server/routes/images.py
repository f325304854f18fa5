"""Image routes: import, load, save, list, inspect, history, tag, delete."""
from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from engine import timeutil
from engine.errors import NotImplementedYet

from .. import versions
from ..backends import ImagesBackend
from ..bodystream import BodyStream
from ..errors import BadRequest
from ..progress import Progress, progress_stream
from ..responses import api_version, docker_json, qbool, qfilters
from . import distribution

_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Python 3.10+ has the name on Linux only)


def backend_of(request: Request) -> ImagesBackend:
    backend: ImagesBackend = request.app.state.engine.image_service
    return backend


async def create(request: Request) -> Response:
    q = request.query_params
    if q.get("fromSrc"):
        if q["fromSrc"] != "-":
            raise NotImplementedYet("importing from a URL is not implemented yet; use fromSrc=-")
        repo = q.get("repo") or ""
        tag = q.get("tag") or ""
        repo_tag = None
        if repo:
            repo_tag = f"{repo}:{tag}" if tag else repo
        image_id = await backend_of(request).import_upload(
            request.stream(), repo_tag=repo_tag, changes=q.getlist("changes"), message=q.get("message") or "")
        return docker_json({"status": image_id})
    if q.get("fromImage"):
        return await distribution.pull(request)
    raise BadRequest("either fromSrc or fromImage must be set")


async def load(request: Request) -> Response:
    images = backend_of(request)
    quiet = qbool(request, "quiet", default=True)  # dockerd's default; the CLI always sends quiet=0|1
    # The archive is parsed while it arrives (no spooling of the whole body first).
    body = BodyStream()
    pump = asyncio.ensure_future(body.pump(request))

    def work(progress: Progress) -> list[str]:
        try:
            return images.load(body, progress=progress, quiet=quiet)
        finally:
            body.close()

    # dockerd answers 200 and reports a bad archive inside the stream.
    response = await progress_stream(work, always_stream=True, own_thread=True)
    # The whole body is read before the response starts: Starlette's streaming response
    # listens on the same receive channel for a disconnect and would swallow body chunks.
    # The worker parses concurrently; its messages wait in the response's queue.
    await pump
    return response


def _created_unix(image: Any) -> int:
    try:
        return timeutil.parse_ns(image.created) // 1_000_000_000
    except (ValueError, TypeError):
        return 0


def image_summary(image: Any, version: str, containers: int, *, repo_tags: Any = None,
                  repo_digests: Any = None, shared_size: int = -1) -> dict[str, Any]:
    cfg = image.config.get("config") or {}
    tags = list(image.repo_tags if repo_tags is None else repo_tags)
    digests = list(image.repo_digests if repo_digests is None else repo_digests)
    if not versions.at_least(version, "1.43"):
        # Before API 1.43 dockerd filled in placeholders for untagged images, and null for no digests.
        if not tags and not digests:
            tags, digests = ["<none>:<none>"], ["<none>@<none>"]
    out: dict[str, Any] = {
        "Containers": containers,
        "Created": _created_unix(image),
        "Id": image.id,
        "Labels": cfg.get("Labels") or None,
        "ParentId": getattr(image, "parent", "") or "",
        "RepoDigests": digests if digests or versions.at_least(version, "1.43") else None,
        "RepoTags": tags if tags or versions.at_least(version, "1.43") else None,
        "SharedSize": shared_size,
        "Size": image.size,
    }
    if not versions.at_least(version, "1.44"):
        out["VirtualSize"] = image.size
    return out


async def list_images(request: Request) -> Response:
    version = api_version(request)
    flt = qfilters(request)
    shared = versions.at_least(version, "1.42") and qbool(request, "shared-size")
    # API 1.51+ fills in Containers for every image.
    rows = await asyncio.to_thread(backend_of(request).list_filtered, flt, all_=qbool(request, "all"),
                                   shared_size=shared, count_containers=versions.at_least(version, "1.51"))
    out = [image_summary(r.image, version, r.containers, repo_tags=r.repo_tags, repo_digests=r.repo_digests,
                         shared_size=r.shared_size) for r in rows]
    return docker_json(out)


async def prune(request: Request) -> Response:
    report = await asyncio.to_thread(backend_of(request).prune, qfilters(request))
    return docker_json({"ImagesDeleted": list(report.deleted) or None, "SpaceReclaimed": report.space_reclaimed})


def _image_config_for_api(cfg: dict[str, Any], version: str) -> dict[str, Any]:
    if versions.at_least(version, "1.52"):
        return {k: v for k, v in cfg.items() if v not in (None, "", [], {})}
    base: dict[str, Any] = {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
        "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
        "OnBuild": None, "Labels": None,
    }
    base.update(cfg)
    return base


async def inspect(request: Request) -> Response:
    images = backend_of(request)
    version = api_version(request)
    image = await asyncio.to_thread(images.get, request.path_params["name"])
    raw = image.config
    out: dict[str, Any] = {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests),
        "Parent": getattr(image, "parent", "") or "",
        "Comment": raw.get("comment", "") or "",
        "Created": raw.get("created") or image.created,
    }
    if not versions.at_least(version, "1.45"):
        out["Container"] = raw.get("container", "")
        out["ContainerConfig"] = _image_config_for_api(raw.get("container_config") or {}, version)
    out.update({
        "DockerVersion": raw.get("docker_version", "") or "",
        "Author": raw.get("author", "") or "",
        "Config": _image_config_for_api(raw.get("config") or {}, version),
        "Architecture": raw.get("architecture", ""),
        "Os": raw.get("os", ""),
        "Size": image.size,
    })
    if raw.get("variant"):
        out["Variant"] = raw["variant"]
    if not versions.at_least(version, "1.44"):
        out["VirtualSize"] = image.size
    out["GraphDriver"] = images.graph_driver(image)
    out["RootFS"] = {"Type": "layers", "Layers": list((raw.get("rootfs") or {}).get("diff_ids") or [])}
    out["Metadata"] = {"LastTagTime": getattr(image, "last_tag_time", "") or timeutil.ZERO_TIME}
    return docker_json(out)


async def history(request: Request) -> Response:
    entries = await asyncio.to_thread(backend_of(request).history, request.path_params["name"])
    return docker_json([{"Id": e.id, "Created": e.created_unix, "CreatedBy": e.created_by, "Tags": list(e.tags) or None,
                         "Size": e.size, "Comment": e.comment} for e in entries])


async def tag(request: Request) -> Response:
    repo = request.query_params.get("repo") or ""
    tag_ = request.query_params.get("tag") or ""
    if not repo:
        raise BadRequest("repository name must have at least one component")
    await asyncio.to_thread(backend_of(request).tag, request.path_params["name"], repo, tag_)
    return Response(status_code=201)


async def delete(request: Request) -> Response:
    result = await asyncio.to_thread(backend_of(request).remove, request.path_params["name"],
                                     force=qbool(request, "force"), noprune=qbool(request, "noprune"))
    return docker_json(result)


async def save(request: Request) -> Response:
    images = backend_of(request)
    if "name" in request.path_params:
        names = [request.path_params["name"]]
    else:
        names = request.query_params.getlist("names")
    image_ids = await asyncio.to_thread(images.images_to_save, names)
    # The archive is streamed as it is written, through a pipe (no copy of the image on disk).
    read_fd, write_fd = os.pipe()
    try:
        fcntl.fcntl(write_fd, _F_SETPIPE_SZ, 1 << 20)
    except OSError:
        pass  # the default pipe size works too, with more wake-ups
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with open(write_fd, "wb", buffering=1 << 20) as f:
                images.save(names, f)
        except BaseException as err:  # noqa: BLE001 - reported by the reading side
            failure.append(err)

    writer = asyncio.ensure_future(asyncio.to_thread(work))

    async def read_chunk() -> bytes:
        return await asyncio.to_thread(os.read, read_fd, 1 << 20)

    try:
        first = await read_chunk()
        if not first:
            await writer
            if failure:
                raise failure[0]  # nothing sent yet: a proper error status
    except BaseException:
        os.close(read_fd)
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            chunk = first
            while chunk:
                yield chunk
                chunk = await read_chunk()
            await writer
            if failure:
                # Half an archive went out: end the connection without the last chunk so the
                # client sees the failure (dockerd aborts the stream the same way).
                raise failure[0]
        finally:
            os.close(read_fd)  # a client that went away makes the writer fail with EPIPE

    await asyncio.to_thread(images.saved, image_ids)
    return StreamingResponse(body(), media_type="application/x-tar")


async def search(request: Request) -> Response:
    return await distribution.search(request)


routes = [
    Route("/images/create", create, methods=["POST"]),
    Route("/images/load", load, methods=["POST"]),
    Route("/images/prune", prune, methods=["POST"]),
    Route("/images/json", list_images, methods=["GET"]),
    Route("/images/get", save, methods=["GET"]),
    Route("/images/search", search, methods=["GET"]),
    Route("/images/{name:path}/json", inspect, methods=["GET"]),
    Route("/images/{name:path}/history", history, methods=["GET"]),
    Route("/images/{name:path}/tag", tag, methods=["POST"]),
    Route("/images/{name:path}/get", save, methods=["GET"]),
    Route("/images/{name:path}", delete, methods=["DELETE"]),
]

