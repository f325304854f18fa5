"""Image routes: import, load, save, list, inspect, history, tag, delete."""
from __future__ import annotations

import asyncio
import fcntl
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from engine import timeutil
from engine.errors import EngineError, NotImplementedYet
from engine.images import reference

from .. import versions
from ..bodystream import BodyStream
from ..errors import BadRequest, message_for
from ..responses import api_version, docker_json, dumps, qbool, qfilters

_END = object()
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Python 3.10+ has the name on Linux only)


def engine_of(request: Request) -> Any:
    return request.app.state.engine


def _labels(engine: Any, image_id: str) -> dict[str, str]:
    try:
        image = engine.images.get(image_id)
    except EngineError:
        return {}
    return {str(k): str(v) for k, v in ((image.config.get("config") or {}).get("Labels") or {}).items()}


def _all_labels(engine: Any) -> dict[str, dict[str, str]]:
    """Every image's labels by ID, taken before a delete (delete events outlive the image)."""
    return {img.id: _labels(engine, img.id) for img in engine.images.list()}


def image_event(engine: Any, action: str, image_id: str, name: str | None = None,
                labels: dict[str, str] | None = None) -> None:
    """dockerd's image events: actor = image ID, attributes = the image's labels + name."""
    attrs = dict(_labels(engine, image_id) if labels is None else labels)
    attrs["name"] = name or image_id
    engine.events.publish_action("image", action, image_id, attrs)


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


def _in_own_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Run ``fn`` on a thread of its own: a load lasts as long as its upload, and must not hold
    one of the few shared pool threads the rest of the daemon (and its own pump) rely on."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as err:  # noqa: BLE001 - delivered to the awaiting coroutine
            loop.call_soon_threadsafe(settle, None, err)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=target, name="pydockerd-image-load", daemon=True).start()
    return fut


async def _progress_stream(
    work: Callable[[Callable[[dict[str, Any]], None]], Any],
    finish: Callable[[Any], list[dict[str, Any]]],
    *,
    always_stream: bool = False,
    own_thread: bool = False,
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
            if own_thread:
                return await _in_own_thread(work, progress)
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
                    image_id: str = engine.images.import_tar(f, repo_tag=repo_tag, changes=changes, message=message)
                    return image_id

            image_id = await asyncio.to_thread(work, lambda m: None)
        finally:
            os.unlink(path)
        if repo_tag:
            familiar = reference.parse_normalized(repo_tag).with_default_tag().familiar()
            await asyncio.to_thread(image_event, engine, "tag", image_id, familiar)
        await asyncio.to_thread(image_event, engine, "import", image_id)
        return docker_json({"status": image_id})
    if q.get("fromImage"):
        from .distribution import pull
        return await pull(request)
    raise BadRequest("either fromSrc or fromImage must be set")


async def load(request: Request) -> Response:
    engine = engine_of(request)
    quiet = qbool(request, "quiet", default=True)  # dockerd's default; the CLI always sends quiet=0|1
    # The archive is parsed while it arrives (no spooling of the whole body first).
    body = BodyStream()
    pump = asyncio.ensure_future(body.pump(request))

    def work(progress: Callable[[dict[str, Any]], None]) -> list[str]:
        try:
            loaded: list[str] = engine.images.load(body, progress=progress, quiet=quiet)
        finally:
            body.close()
        # One "load" event per image, named by its ID; published here, in the worker thread,
        # because the lookups block.
        seen: set[str] = set()
        for name in loaded:
            try:
                image_id = engine.images.get(name).id
            except EngineError:
                continue
            if image_id not in seen:
                seen.add(image_id)
                image_event(engine, "load", image_id)
        return loaded

    def finish(loaded: list[str]) -> list[dict[str, Any]]:
        return []

    # dockerd answers 200 and reports a bad archive inside the stream.
    response = await _progress_stream(work, finish, always_stream=True, own_thread=True)
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
    engine = engine_of(request)
    version = api_version(request)
    flt = qfilters(request)
    shared = versions.at_least(version, "1.42") and qbool(request, "shared-size")
    counts = None
    if versions.at_least(version, "1.51"):
        # API 1.51+ fills in Containers for every image.
        def counts(image_id: str) -> int:
            return len(engine.containers.users_of_image(image_id))
    rows = await asyncio.to_thread(engine.images.list_filtered, flt, all_=qbool(request, "all"),
                                   shared_size=shared, containers=counts)
    out = [image_summary(r.image, version, r.containers, repo_tags=r.repo_tags, repo_digests=r.repo_digests,
                         shared_size=r.shared_size) for r in rows]
    return docker_json(out)


async def prune(request: Request) -> Response:
    engine = engine_of(request)
    flt = qfilters(request)
    labels = await asyncio.to_thread(_all_labels, engine)
    report = await asyncio.to_thread(engine.images.prune, flt, engine.containers.users_of_image)
    _publish_delete_events(engine, list(report.deleted), labels)
    engine.events.publish_action("image", "prune", "", {"reclaimed": str(report.space_reclaimed)})
    return docker_json({"ImagesDeleted": list(report.deleted) or None, "SpaceReclaimed": report.space_reclaimed})


def _publish_delete_events(engine: Any, items: list[dict[str, str]], labels: dict[str, dict[str, str]]) -> None:
    """untag events name the image (not the tag); delete events follow; layer records have no event."""
    untagged = 0
    for item in items:
        if "Untagged" in item:
            untagged += 1
        elif "Deleted" in item and item["Deleted"] in labels:
            image_id = item["Deleted"]
            for _ in range(untagged):
                engine.events.publish_action("image", "untag", image_id, {**labels[image_id], "name": image_id})
            untagged = 0
            engine.events.publish_action("image", "delete", image_id, {"name": image_id})


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
    if sum(1 for h in raw_hist if not h.get("empty_layer")) > len(layer_sizes):
        raise EngineError("too many non-empty layers in History section")
    for _i, h in enumerate(raw_hist):
        empty = bool(h.get("empty_layer"))
        size = 0
        if not empty and layer_idx < len(layer_sizes):
            size = layer_sizes[layer_idx]
            layer_idx += 1
        created = h.get("created") or ""
        try:
            # Go's zero time.Time.Unix() when the entry has no date
            created_unix = timeutil.parse_ns(created) // 1_000_000_000 if created else -62135596800
        except ValueError:
            created_unix = -62135596800
        out.append({
            "Id": "<missing>",
            "Created": created_unix,
            "CreatedBy": h.get("created_by", ""),
            "Tags": None,
            "Size": size,
            "Comment": h.get("comment", ""),
        })
    out.reverse()
    # dockerd names one entry per image of the parent chain, newest first; the rest are <missing>.
    current: Any = image
    for entry in out:
        entry["Id"] = current.id
        entry["Tags"] = list(current.repo_tags) or None
        if not current.parent:
            break
        try:
            current = await asyncio.to_thread(engine.images.get, current.parent)
        except EngineError:
            break
    return docker_json(out)


async def tag(request: Request) -> Response:
    engine = engine_of(request)
    repo = request.query_params.get("repo") or ""
    tag_ = request.query_params.get("tag") or ""
    if not repo:
        raise BadRequest("repository name must have at least one component")
    image_id, full = await asyncio.to_thread(engine.images.tag, request.path_params["name"], repo, tag_)
    await asyncio.to_thread(image_event, engine, "tag", image_id, full)
    return Response(status_code=201)


async def delete(request: Request) -> Response:
    engine = engine_of(request)
    name = request.path_params["name"]
    before = await asyncio.to_thread(engine.images.get, name)
    labels = await asyncio.to_thread(_all_labels, engine)
    result = await asyncio.to_thread(
        engine.images.remove,
        name,
        force=qbool(request, "force"),
        noprune=qbool(request, "noprune"),
        users=engine.containers.users_of_image,
    )
    if not any(item.get("Deleted") == before.id for item in result):
        for item in result:
            if "Untagged" in item:
                engine.events.publish_action("image", "untag", before.id, {**labels[before.id], "name": before.id})
    else:
        _publish_delete_events(engine, result, labels)
    return docker_json(result)


async def save(request: Request) -> Response:
    engine = engine_of(request)
    if "name" in request.path_params:
        names = [request.path_params["name"]]
    else:
        names = request.query_params.getlist("names")
    image_ids = await asyncio.to_thread(engine.images.images_to_save, names)
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
                engine.images.save(names, f)
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

    for image_id in image_ids:
        await asyncio.to_thread(image_event, engine, "save", image_id)
    return StreamingResponse(body(), media_type="application/x-tar")


async def search(request: Request) -> Response:
    from .distribution import search as registry_search
    return await registry_search(request)


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

