"""Container routes (attach is served by the hijack handler in compat_server.hijack)."""
from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import AsyncIterator
from urllib.parse import quote_plus

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from engine import timeutil
from engine.errors import EngineError, InvalidParameter, NotFound

from .. import convert, listing, netcodec
from ..backends import ContainersBackend
from ..errors import BadRequest
from ..responses import api_version, docker_json, dumps, json_body, no_content, qbool, qfilters, qint


def engine_of(request: Request) -> ContainersBackend:
    backend: ContainersBackend = request.app.state.engine
    return backend


def mux_frame(stream: int, data: bytes) -> bytes:
    """dockerd's multiplexed stream framing: stream byte, 3 zero bytes, big-endian length."""
    return struct.pack(">BxxxL", stream, len(data)) + data


async def create(request: Request) -> Response:
    engine = engine_of(request)
    body = await json_body(request)
    config, host_config = convert.decode_create(body, api_version(request))
    name = request.query_params.get("name") or None
    c, warnings = await engine.containers.create(config, host_config, name=name)
    if host_config.network_mode == "host" and host_config.port_map:
        warnings = [*(warnings or []), "Published ports are discarded when using host network mode"]
    return docker_json({"Id": c.id, "Warnings": warnings}, status=201)


async def list_containers(request: Request) -> Response:
    raw_limit = request.query_params.get("limit", "")
    limit = -1
    if raw_limit:
        if not re.fullmatch(r"[+-]?[0-9]+", raw_limit):
            raise EngineError(f'strconv.Atoi: parsing "{raw_limit}": invalid syntax')  # dockerd: a 500
        limit = int(raw_limit)
    size = qbool(request, "size")
    summaries = await listing.list_containers(engine_of(request), show_all=qbool(request, "all"), limit=limit,
                                              size=size, filters=qfilters(request), version=api_version(request))
    if size:
        return docker_json(summaries)
    cache = getattr(request.app.state, "summary_json", None)
    if cache is None:
        cache = request.app.state.summary_json = listing.EncodedSummaries()
    return Response(cache.encode(summaries), media_type="application/json")


async def inspect(request: Request) -> Response:
    engine = engine_of(request)
    c = engine.containers.get(request.path_params["id"])
    engine.execs.collect()  # ExecIDs: only execs that have not exited, of the current run
    sizes = await engine.container_size(c) if qbool(request, "size") else None
    out = convert.encode_inspect(c, engine.graph_driver(c), api_version(request), sizes,
                                 engine.volume_mounts.mounts_of(c))
    netcodec.fill_inspect(out, c, engine.networks, api_version(request))
    return docker_json(out)


async def start(request: Request) -> Response:
    engine = engine_of(request)
    if request.query_params.get("detachKeys") is not None:
        pass  # accepted; detach keys only matter to attach streams
    await engine.containers.start(request.path_params["id"])
    return no_content()


def _timeout(request: Request) -> int | None:
    raw = request.query_params.get("t")
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f'strconv.Atoi: parsing "{raw}": invalid syntax') from None


async def stop(request: Request) -> Response:
    engine = engine_of(request)
    await engine.containers.stop(request.path_params["id"], _timeout(request), request.query_params.get("signal"))
    return no_content()


async def restart(request: Request) -> Response:
    engine = engine_of(request)
    await engine.containers.restart(request.path_params["id"], _timeout(request), request.query_params.get("signal"))
    return no_content()


async def kill(request: Request) -> Response:
    engine = engine_of(request)
    await engine.containers.kill(request.path_params["id"], request.query_params.get("signal") or None)
    return no_content()


async def remove(request: Request) -> Response:
    engine = engine_of(request)
    if qbool(request, "link"):
        await _remove_link(engine, request.path_params["id"])
        return no_content()
    await engine.containers.remove(
        request.path_params["id"], force=qbool(request, "force"), volumes=qbool(request, "v")
    )
    return no_content()


async def _remove_link(engine: ContainersBackend, ref: str) -> None:
    """``docker rm --link /parent/alias``: the parent's link goes, the linked container stays."""
    parent_name, _, alias = ref.strip("/").rpartition("/")
    if not parent_name:
        engine.containers.get(ref)    # an unknown name is a 404 first
        raise InvalidParameter("Conflict, cannot remove the default link name of the container")
    try:
        parent = engine.containers.get(parent_name)
    except NotFound:
        raise NotFound(f"No such container: {ref.strip('/')}") from None
    if not await asyncio.to_thread(engine.networks.remove_link, parent, alias):
        raise NotFound(f"No such container: {ref.strip('/')}")


async def wait(request: Request) -> Response:
    engine = engine_of(request)
    condition = request.query_params.get("condition", "")
    fut = await engine.containers.wait_future(request.path_params["id"], condition)

    async def body() -> AsyncIterator[bytes]:
        # An empty first chunk flushes the head: that tells the client its wait
        # is registered before it goes on to start the container.
        yield b""
        try:
            c = await fut
        except asyncio.CancelledError:
            engine.containers.cancel_wait(fut)
            raise
        # dockerd always sends Error (null unless the container holds a start
        # error); a "removed" wait reports no error.
        err = c.state.error if condition != "removed" else ""
        yield dumps({"Error": {"Message": err} if err else None, "StatusCode": c.state.exit_code})

    return StreamingResponse(body(), media_type="application/json")


async def logs(request: Request) -> Response:
    engine = engine_of(request)
    c = engine.containers.get(request.path_params["id"])
    stdout = qbool(request, "stdout")
    stderr = qbool(request, "stderr")
    if not (stdout or stderr):
        raise BadRequest("Bad parameters: you must choose at least one stream")
    follow = qbool(request, "follow")
    timestamps = qbool(request, "timestamps")
    details = qbool(request, "details")
    tail_raw = request.query_params.get("tail", "all")
    tail: int | None = None
    if tail_raw not in ("", "all"):
        try:
            tail = int(tail_raw)
        except ValueError:
            tail = None
        if tail is not None and tail < 0:
            tail = None
    try:
        since = request.query_params.get("since")
        until = request.query_params.get("until")
        since_ns = timeutil.parse_timestamp_arg(since) if since and since != "0" else None
        until_ns = timeutil.parse_timestamp_arg(until) if until and until != "0" else None
    except ValueError as err:
        raise BadRequest(f"invalid value for since/until: {err}") from err
    tty = c.config.tty
    stopped = engine.containers.logs_stopped_event(c)
    # before the head: a driver that keeps no logs is dockerd's 501, not an empty stream
    entries = engine.read_logs(c, since_ns=since_ns, until_ns=until_ns, tail=tail, follow=follow, stopped=stopped)

    async def body() -> AsyncIterator[bytes]:
        yield b""  # head now, so a follower sees the stream open at once
        async for entry in entries:
            if entry.stream == "stdout" and not stdout:
                continue
            if entry.stream == "stderr" and not stderr:
                continue
            data = entry.data
            if details:
                # dockerd: sorted key=QueryEscape(value) pairs and a space, even when there are none.
                attrs = getattr(entry, "attrs", None) or {}
                data = (",".join(f"{k}={quote_plus(v)}" for k, v in sorted(attrs.items())) + " ").encode() + data
            if timestamps:
                data = _log_timestamp(entry.time_ns).encode() + b" " + data
            if tty:
                yield data
            else:
                yield mux_frame(1 if entry.stream == "stdout" else 2, data)

    media = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    if not versions_at_least(request, "1.42"):
        media = "application/vnd.docker.raw-stream"
    return StreamingResponse(body(), media_type=media)


def versions_at_least(request: Request, v: str) -> bool:
    from .. import versions

    return versions.at_least(api_version(request), v)


def _log_timestamp(ns: int) -> str:
    # dockerd pads the fraction to 9 digits in log timestamps (RFC3339NanoFixed).
    secs, frac = divmod(ns, 1_000_000_000)
    import time as _time

    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs)) + f".{frac:09d}Z"


async def rename(request: Request) -> Response:
    engine = engine_of(request)
    name = request.query_params.get("name")
    if not name:
        raise BadRequest("Invalid container name (), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    await engine.containers.rename(request.path_params["id"], name)
    return no_content()


async def resize(request: Request) -> Response:
    engine = engine_of(request)
    h = qint(request, "h", 0) or 0
    w = qint(request, "w", 0) or 0
    await engine.containers.resize(request.path_params["id"], h, w)
    return Response(status_code=200)


routes = [
    Route("/containers/create", create, methods=["POST"]),
    Route("/containers/json", list_containers, methods=["GET"]),
    Route("/containers/{id}/json", inspect, methods=["GET"]),
    Route("/containers/{id}/start", start, methods=["POST"]),
    Route("/containers/{id}/stop", stop, methods=["POST"]),
    Route("/containers/{id}/restart", restart, methods=["POST"]),
    Route("/containers/{id}/kill", kill, methods=["POST"]),
    Route("/containers/{id}/wait", wait, methods=["POST"]),
    Route("/containers/{id}/logs", logs, methods=["GET"]),
    Route("/containers/{id}/rename", rename, methods=["POST"]),
    Route("/containers/{id}/resize", resize, methods=["POST"]),
    # {id:path}: a link name (DELETE /containers/parent/alias?link=1) holds a slash
    Route("/containers/{id:path}", remove, methods=["DELETE"]),
]
