"""Image routes: import, load, save, list, inspect, history, tag, delete."""
from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any, AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from engine import timeutil
from engine.errors import EngineError, NotFound, NotImplementedYet

from .. import versions
from ..errors import BadRequest, message_for
from ..responses import api_version, docker_json, dumps, qbool, qfilters

_END = object()


def engine_of(request: Request) -> Any:
    return request.app.state.engine


async def _spool_body(request: Request, tmp_dir: str) -> str:
    """Write the request body to a file under the data root; returns its path."""
    fd, path = tempfile.mkstemp(prefix="upload-", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                if chunk:
                    await asyncio.to_thread(f.write, chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path


async def _progress_stream(
    work: Callable[[Callable[[dict[str, Any]], None]], Any],
    finish: Callable[[Any], list[dict[str, Any]]],
    *,
    always_stream: bool = False,
) -> Response:
    """Run blocking ``work(progress)`` in a thread and stream its JSON messages.

    Until the first message the HTTP status is still open, so an early failure
    becomes a proper error status; later failures go into the stream as
    dockerd's ``{"errorDetail": ..., "error": ...}`` message.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def progress(msg: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, msg)

    async def run() -> Any:
        try:
            return await asyncio.to_thread(work, progress)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    task = asyncio.ensure_future(run())
    first = None if always_stream else await queue.get()
    if first is _END:
        result = await task  # raises -> error status
        messages = finish(result)
        return Response(b"".join(dumps(m) for m in messages), media_type="application/json")

    async def body() -> AsyncIterator[bytes]:
        yield dumps(first) if first is not None else b""
        while True:
            item = await queue.get()
            if item is _END:
                break
            yield dumps(item)
        try:
            result = await task
        except Exception as err:  # noqa: BLE001
            msg = message_for(err)
            yield dumps({"errorDetail": {"message": msg}, "error": msg})
            return
        for m in finish(result):
            yield dumps(m)

    return StreamingResponse(body(), media_type="application/json")


async def create(request: Request) -> Response:
    engine = engine_of(request)
    q = request.query_params
    if q.get("fromSrc"):
        if q["fromSrc"] != "-":
            raise NotImplementedYet("importing from a URL is not implemented yet; use fromSrc=-")
        repo = q.get("repo") or ""
        tag = q.get("tag") or ""
        repo_tag = None
        if repo:
            repo_tag = f"{repo}:{tag}" if tag else repo
        changes = q.getlist("changes")
        message = q.get("message") or ""
        path = await _spool_body(request, str(engine.config.tmp_root))
        try:
            def work(progress: Callable[[dict[str, Any]], None]) -> str:
                with open(path, "rb") as f:
                    return engine.images.import_tar(f, repo_tag=repo_tag, changes=changes, message=message)

            image_id = await asyncio.to_thread(work, lambda m: None)
        finally:
            os.unlink(path)
        if repo_tag:
            await _image_event(engine, image_id, repo_tag, "tag")
        await _image_event(engine, image_id, image_id, "import")
        return docker_json({"status": image_id})
    if q.get("fromImage"):
        raise NotImplementedYet(
            f"pulling images is not implemented yet in pydockerd: cannot pull {q['fromImage']}; "
            "use docker load or docker import"
        )
    raise BadRequest("either fromSrc or fromImage must be set")


async def load(request: Request) -> Response:
    engine = engine_of(request)
    quiet = qbool(request, "quiet")
    path = await _spool_body(request, str(engine.config.tmp_root))

    def work(progress: Callable[[dict[str, Any]], None]) -> list[str]:
        try:
            with open(path, "rb") as f:
                loaded = engine.images.load(f, progress=progress, quiet=quiet)
        finally:
            os.unlink(path)
        # dockerd: one "load" event per image, named by its ID (we are in a worker thread).
        seen: list[str] = []
        for name in loaded:
            try:
                image_id = engine.images.get(name).id
            except Exception:  # noqa: BLE001
                continue
            if image_id not in seen:
                seen.append(image_id)
                _publish_image_event(engine, image_id, image_id, "load")
        return loaded

    def finish(loaded: list[str]) -> list[dict[str, Any]]:
        return []

    # dockerd answers 200 and reports a bad archive inside the stream.
    return await _progress_stream(work, finish, always_stream=True)


def _created_unix(image: Any) -> int:
    try:
        return timeutil.parse_ns(image.created) // 1_000_000_000
    except (ValueError, TypeError):
        return 0


def image_summary(image: Any, version: str, containers: int) -> dict[str, Any]:
    cfg = image.config.get("config") or {}
    out: dict[str, Any] = {
        "Containers": containers,
        "Created": _created_unix(image),
        "Id": image.id,
        "Labels": cfg.get("Labels") or None,
        "ParentId": getattr(image, "parent", "") or "",
        "RepoDigests": list(image.repo_digests),
        "RepoTags": list(image.repo_tags),
        "SharedSize": -1,
        "Size": image.size,
    }
    if not versions.at_least(version, "1.44"):
        out["VirtualSize"] = image.size
    return out


async def list_images(request: Request) -> Response:
    engine = engine_of(request)
    version = api_version(request)
    flt = qfilters(request)
    images = await asyncio.to_thread(engine.images.list)
    predicate = engine.image_filter(flt)
    out = [image_summary(img, version, -1) for img in images if predicate(img)]
    out.sort(key=lambda x: x["Created"], reverse=True)
    return docker_json(out)


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
    engine = engine_of(request)
    version = api_version(request)
    image = await asyncio.to_thread(engine.images.get, request.path_params["name"])
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
    out["GraphDriver"] = engine.image_graph_driver(image)
    out["RootFS"] = {"Type": "layers", "Layers": list((raw.get("rootfs") or {}).get("diff_ids") or [])}
    out["Metadata"] = {"LastTagTime": getattr(image, "last_tag_time", "") or timeutil.ZERO_TIME}
    return docker_json(out)


async def history(request: Request) -> Response:
    engine = engine_of(request)
    image = await asyncio.to_thread(engine.images.get, request.path_params["name"])
    raw_hist = list(image.config.get("history") or [])
    out = []
    layer_sizes = list(getattr(image, "layer_sizes", []) or [])
    layer_idx = 0
    for i, h in enumerate(raw_hist):
        empty = bool(h.get("empty_layer"))
        size = 0
        if not empty and layer_idx < len(layer_sizes):
            size = layer_sizes[layer_idx]
            layer_idx += 1
        created = h.get("created") or ""
        try:
            created_unix = timeutil.parse_ns(created) // 1_000_000_000 if created else 0
        except ValueError:
            created_unix = 0
        out.append({
            "Id": "<missing>",
            "Created": created_unix,
            "CreatedBy": h.get("created_by", ""),
            "Tags": None,
            "Size": size,
            "Comment": h.get("comment", ""),
        })
    out.reverse()
    # Like dockerd: rows take the IDs (and tags) of the image and then its local
    # parent chain (commits and builds record a parent), newest first.
    hist_img: Any = image
    for row in out:
        row["Id"] = hist_img.id
        row["Tags"] = list(hist_img.repo_tags) or None
        if not hist_img.parent:
            break
        try:
            hist_img = await asyncio.to_thread(engine.images.get, hist_img.parent)
        except NotFound:
            break
    return docker_json(out)


async def tag(request: Request) -> Response:
    engine = engine_of(request)
    repo = request.query_params.get("repo") or ""
    tag_ = request.query_params.get("tag") or ""
    if not repo:
        raise BadRequest("repository name must have at least one component")
    image_id, full = await asyncio.to_thread(engine.images.tag, request.path_params["name"], repo, tag_)
    await _image_event(engine, image_id, full, "tag")
    return Response(status_code=201)


async def delete(request: Request) -> Response:
    engine = engine_of(request)
    name = request.path_params["name"]
    try:
        image_id = (await asyncio.to_thread(engine.images.get, name)).id
    except Exception:  # noqa: BLE001 - remove() reports it in dockerd's words
        image_id = ""
    result = await asyncio.to_thread(
        engine.images.remove,
        name,
        force=qbool(request, "force"),
        noprune=qbool(request, "noprune"),
        users=engine.containers.users_of_image,
    )
    for item in result:
        # dockerd names both by the image ID, not by the removed reference.
        if "Untagged" in item:
            _publish_image_event(engine, image_id or item["Untagged"], image_id or item["Untagged"], "untag")
        if "Deleted" in item:
            engine.events.publish_action("image", "delete", item["Deleted"], {"name": item["Deleted"]})
    return docker_json(result)


async def save(request: Request) -> Response:
    engine = engine_of(request)
    if "name" in request.path_params:
        names = [request.path_params["name"]]
    else:
        names = request.query_params.getlist("names")
    if not names:
        raise BadRequest("no images specified")
    image_ids = []
    for n in names:
        image_ids.append((await asyncio.to_thread(engine.images.get, n)).id)
    fd, path = tempfile.mkstemp(prefix="save-", dir=str(engine.config.tmp_root))
    os.close(fd)
    try:
        def work() -> None:
            with open(path, "wb") as f:
                engine.images.save(names, f)

        await asyncio.to_thread(work)
    except BaseException:
        os.unlink(path)
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            with open(path, "rb") as f:
                while True:
                    chunk = await asyncio.to_thread(f.read, 1 << 20)
                    if not chunk:
                        break
                    yield chunk
        finally:
            os.unlink(path)

    for image_id in dict.fromkeys(image_ids):
        await _image_event(engine, image_id, image_id, "save")
    return StreamingResponse(body(), media_type="application/x-tar")


async def search(request: Request) -> Response:
    raise EngineError(
        'Error response from daemon: Get "https://index.docker.io/v1/search": dial tcp: lookup index.docker.io: '
        "no such host"
    )


routes = [
    Route("/images/create", create, methods=["POST"]),
    Route("/images/load", load, methods=["POST"]),
    Route("/images/json", list_images, methods=["GET"]),
    Route("/images/get", save, methods=["GET"]),
    Route("/images/search", search, methods=["GET"]),
    Route("/images/{name:path}/json", inspect, methods=["GET"]),
    Route("/images/{name:path}/history", history, methods=["GET"]),
    Route("/images/{name:path}/tag", tag, methods=["POST"]),
    Route("/images/{name:path}/get", save, methods=["GET"]),
    Route("/images/{name:path}", delete, methods=["DELETE"]),
]



def _publish_image_event(engine: Any, image_id: str, name: str, action: str) -> None:
    """dockerd's image events: the actor is the image ID, the image's labels are attributes
    (while it exists), then `name`.  Blocking (image lookup): call off the event loop."""
    attrs: dict[str, str] = {}
    try:
        attrs.update(engine.images.get(image_id).container_config.get("Labels") or {})
    except Exception:  # noqa: BLE001 - gone already (delete): no labels
        pass
    attrs["name"] = name
    engine.events.publish_action("image", action, image_id, attrs)


async def _image_event(engine: Any, image_id: str, name: str, action: str) -> None:
    await asyncio.to_thread(_publish_image_event, engine, image_id, name, action)
