"""``POST /build`` (the classic builder), ``POST /build/prune``, and ``/session`` / ``/grpc``.

The route decodes the query and headers into ``BuildOptions``, spools the
context, lets the build service prepare it (errors there get a status) and
then streams the build's JSON messages as they happen.  With ``q`` the
messages are held back: success sends only the image ID, a failure sends
everything held plus the error (as dockerd does).
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import os
import posixpath
import queue
import tempfile
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from engine import gojson
from engine.build.backend import decode_registry_config
from engine.build.builder import BuildOptions, StepError
from engine.errors import EngineError, InvalidParameter, NotFound
from engine.images import reference
from engine.types import HostConfig, Resources

from .. import gotypes
from ..backends import BuildBackend
from ..errors import BadRequest, message_for
from ..responses import docker_json, dumps, qbool

_END = object()
_BATCH = 256 << 10


# the Go types dockerd decodes the JSON query arguments into
_QUERY_TYPES: dict[str, gojson.GoType] = {
    "buildargs": gojson.Map(gojson.STRING, "map[string]*string"),
    "labels": gojson.STRING_MAP,
    "cachefrom": gojson.STRINGS,
    "ulimits": gojson.Slice(gotypes.ULIMIT, "[]*units.Ulimit"),
}


def _json_query(request: Request, name: str, what: str) -> Any:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = gojson.loads(raw)
        if name in _QUERY_TYPES:
            gojson.check(value, _QUERY_TYPES[name])
        return value
    except (gojson.JSONSyntaxError, gojson.GoTypeError) as err:
        raise BadRequest(f"error reading {what}: {err.message}") from None


def _int_or_zero(request: Request, name: str) -> int:
    """dockerd's Int64ValueOrZero: a number, or 0 for anything else."""
    try:
        return int(request.query_params.get(name) or 0)
    except ValueError:
        return 0


_KNOWN_OS = {"aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux", "nacl",
             "netbsd", "openbsd", "plan9", "solaris", "windows", "zos"}
_KNOWN_ARCH = {"386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64", "mips", "mipsle", "mips64",
               "mips64le", "mips64p32", "mips64p32le", "ppc", "ppc64", "ppc64le", "riscv", "riscv64", "s390", "s390x",
               "sparc", "sparc64", "wasm", "x86_64", "x86-64", "aarch64", "armhf", "armel", "i386"}


def _check_platform(platform: str) -> None:
    """containerd's platform specifier check (dockerd's words)."""
    if not platform:
        return
    from engine.registry.pull import parse_platform
    parse_platform(platform)   # raises for a malformed specifier
    if "/" not in platform and platform.lower() not in _KNOWN_OS | _KNOWN_ARCH:
        raise BadRequest(f'"{platform}": unknown operating system or architecture: invalid argument')


def _check_unsupported(request: Request) -> None:
    """What dockerd refuses before building, in its words."""
    q = request.query_params
    if qbool(request, "squash"):
        raise BadRequest("squash is only supported with experimental mode")
    isolation = q.get("isolation") or ""
    if isolation not in ("", "default"):
        raise BadRequest(f'Unsupported isolation: "{isolation}"')
    if q.getlist("securityopt"):
        raise BadRequest("The daemon on this platform does not support setting security options on build")
    version = q.get("version") or ""
    if version == "2":
        # The session-based BuildKit protocol is not served here (Builder-Version: 1).
        raise BadRequest("buildkit is only supported with experimental mode")
    if version not in ("", "1"):
        raise EngineError(f'invalid version "{version}"')


def _options(request: Request) -> BuildOptions:
    q = request.query_params
    tags: list[str] = []
    for t in q.getlist("t"):
        if not t:
            continue
        try:
            ref = reference.parse_normalized(t)
        except InvalidParameter as err:
            raise EngineError(err.message) from None
        if ref.digest is not None:
            raise EngineError("build tag cannot contain a digest")
        tags.append(str(ref.with_default_tag()))
    build_args = _json_query(request, "buildargs", "build args") or {}
    labels = _json_query(request, "labels", "labels") or {}
    cache_from = _json_query(request, "cachefrom", "cache from") or []
    ulimits = _json_query(request, "ulimits", "ulimit settings") or []
    _check_unsupported(request)
    _check_platform(q.get("platform") or "")
    # Repeated, or one comma-joined value: both reach dockerd as a list of host:ip entries.
    extra_hosts = [h for v in q.getlist("extrahosts") for h in v.split(",") if h]
    resources = Resources(
        memory=_int_or_zero(request, "memory"),
        memory_swap=_int_or_zero(request, "memswap"),
        cpu_shares=_int_or_zero(request, "cpushares"),
        cpu_period=_int_or_zero(request, "cpuperiod"),
        cpu_quota=_int_or_zero(request, "cpuquota"),
        cpuset_cpus=q.get("cpusetcpus") or "",
        cpuset_mems=q.get("cpusetmems") or "",
        ulimits=tuple((str(u.get("Name")), int(u.get("Soft") or 0), int(u.get("Hard") or 0))
                      for u in ulimits if isinstance(u, dict)),
    )
    raw_shm = q.get("shmsize") or ""
    try:
        shm = int(raw_shm) if raw_shm else 0
    except ValueError:
        raise EngineError(f'strconv.ParseInt: parsing "{raw_shm}": invalid syntax') from None
    # The step containers' cgroups go below it (cleaned as Go's filepath.Join does: never above the root).
    cgroup_parent = posixpath.normpath("/" + (q.get("cgroupparent") or "")).strip("/")
    host_config = HostConfig(resources=resources, shm_size=shm, cgroup_parent=cgroup_parent)
    return BuildOptions(
        dockerfile=q.get("dockerfile") or "",
        tags=tags,
        quiet=qbool(request, "q"),
        no_cache=qbool(request, "nocache"),
        remove=qbool(request, "rm", True) if "rm" in q else True,
        force_remove=qbool(request, "forcerm"),
        pull=qbool(request, "pull"),
        build_args={str(k): (None if v is None else str(v)) for k, v in build_args.items()},
        labels={str(k): str(v) for k, v in (labels or {}).items()},
        target=q.get("target") or "",
        network_mode=q.get("networkmode") or "",
        platform=q.get("platform") or "",
        extra_hosts=extra_hosts,
        cache_from=[str(c) for c in cache_from if c],
        host_config=host_config,
        registry_auth=decode_registry_config(request.headers.get("X-Registry-Config")),
    )


class _BodyPipe(io.RawIOBase):
    """The request body as a blocking file for the unpacking thread, fed chunk by chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
        self._buf = memoryview(b"")
        self._eof = False
        self.abandoned = False   # the reader stopped: the feeder drops what comes

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf and not self._eof:
            item = self.chunks.get()
            if item is None:
                self._eof = True
            else:
                self._buf = memoryview(item)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self.abandoned = True
        with contextlib.suppress(queue.Empty):
            while True:
                self.chunks.get_nowait()
        super().close()


async def _pump(request: Request, pipe: _BodyPipe) -> None:
    def put_blocking(item: bytes | None) -> None:
        while not pipe.abandoned:
            try:
                pipe.chunks.put(item, timeout=0.2)
                return
            except queue.Full:
                continue   # the reader may have given up meanwhile: look again

    async def put(item: bytes | None) -> None:
        try:
            pipe.chunks.put_nowait(item)
        except queue.Full:
            await asyncio.to_thread(put_blocking, item)   # the unpacking thread is behind

    # The client's chunks (32 KiB from the CLI) are handed over in batches: fewer wake-ups of the
    # unpacking thread, which competes with this loop for the GIL.
    batch = bytearray()
    try:
        async for chunk in request.stream():
            if chunk and not pipe.abandoned:
                batch += chunk
                if len(batch) >= _BATCH:
                    await put(bytes(batch))
                    batch.clear()
    finally:
        if not pipe.abandoned:
            if batch:
                await put(bytes(batch))
            await put(None)


async def _fetch_url(url: str, dest_dir: Path) -> tuple[Path, float | None]:
    """ADD <url>: the body in a scratch file, and the Last-Modified time (the file's mtime)."""
    import httpx
    target = dest_dir / "download"
    async with httpx.AsyncClient(follow_redirects=True, timeout=60) as client, \
            client.stream("GET", url) as resp:
        if resp.status_code >= 400:
            raise StepError(f"failed to GET {url} with status {resp.status_code} {resp.reason_phrase}: "
                            f"{(await resp.aread()).decode('utf-8', 'replace')}")
        f = await asyncio.to_thread(open, target, "wb")
        try:
            async for chunk in resp.aiter_bytes():
                await asyncio.to_thread(f.write, chunk)
        finally:
            f.close()
        mtime = None
        lm = resp.headers.get("last-modified")
        if lm:
            with contextlib.suppress(Exception):
                mtime = parsedate_to_datetime(lm).timestamp()
    return target, mtime


async def _remote_context(url: str, tmp_dir: str, dockerfile_name: str) -> str:
    """``remote``: a git repository (its checkout), or a URL to a context tarball (any compression)
    or to a plain Dockerfile."""
    import httpx

    from engine.build import git
    if git.is_git_url(url):
        return str(await git.context_tar(url, Path(tmp_dir)))
    if not git.is_url(url):
        raise EngineError(f"remoteURL ({url}) could not be recognized as URL")
    fd, path = tempfile.mkstemp(prefix="context-", dir=tmp_dir)
    os.close(fd)
    try:
        async with httpx.AsyncClient(follow_redirects=True, timeout=120) as client, \
                client.stream("GET", url) as resp:
            if resp.status_code >= 400:
                body = (await resp.aread()).decode("utf-8", "replace")
                msg = (f"error downloading remote context {url}: failed to GET {url} with status "
                       f"{resp.status_code} {resp.reason_phrase}: {body}")
                raise NotFound(msg) if resp.status_code == 404 else EngineError(msg)
            f = await asyncio.to_thread(open, path, "wb")
            try:
                async for chunk in resp.aiter_bytes():
                    await asyncio.to_thread(f.write, chunk)
            finally:
                f.close()
        if not await asyncio.to_thread(_looks_like_archive, path):
            await asyncio.to_thread(_wrap_dockerfile, path, dockerfile_name)
    except BaseException:
        os.unlink(path)
        raise
    return path


def _looks_like_archive(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    return (head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00"
            or (len(head) >= 262 and head[257:262] == b"ustar"))


def _wrap_dockerfile(path: str, name: str) -> None:
    """A downloaded Dockerfile becomes a context holding only it."""
    import io
    import tarfile
    with open(path, "rb") as f:
        data = f.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mode = 0o600
        t.addfile(ti, io.BytesIO(data))
    with open(path, "wb") as f:
        f.write(buf.getvalue())


async def build(request: Request) -> Response:
    engine: BuildBackend = request.app.state.engine
    opts = _options(request)
    remote = request.query_params.get("remote") or ""
    if remote:
        await request.body()
        path = await _remote_context(remote, str(engine.config.tmp_root), opts.dockerfile or "Dockerfile")
        try:
            with open(path, "rb") as f:  # noqa: ASYNC230 - opening is instant; reading happens in a thread
                prepared = await engine.builds.prepare(opts, f)
        finally:
            os.unlink(path)
    else:
        # The context is unpacked while it arrives (no spool file in between).
        pipe = _BodyPipe()
        pump = asyncio.ensure_future(_pump(request, pipe))
        try:
            prepared = await engine.builds.prepare(opts, io.BufferedReader(pipe, 1 << 20))
        finally:
            pipe.close()
            await pump

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def emit(msg: dict[str, Any]) -> None:
        queue.put_nowait(msg)

    async def run() -> Any:
        try:
            return await engine.builds.run(prepared, emit, fetch_url=_fetch_url)
        finally:
            await asyncio.to_thread(prepared.cleanup)
            queue.put_nowait(_END)

    task = loop.create_task(run())

    async def watch_client() -> None:
        # dockerd cancels the build's context when the client goes: so do we, even mid-RUN.
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                task.cancel()
                return

    watcher = loop.create_task(watch_client())
    task.add_done_callback(lambda _: watcher.cancel())

    async def body() -> AsyncIterator[bytes]:
        held: list[bytes] = []
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                line = dumps(item)
                if opts.quiet:
                    held.append(line)
                else:
                    yield line
            try:
                image = await task
            except Exception as err:  # noqa: BLE001
                msg = message_for(err)
                detail: dict[str, Any] = {"message": msg}
                if isinstance(err, StepError) and err.code:
                    detail = {"code": err.code, "message": msg}
                for line in held:
                    yield line
                yield dumps({"errorDetail": detail, "error": msg})
                return
            if opts.quiet:
                yield dumps({"stream": image.id + "\n"})
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    return StreamingResponse(body(), media_type="application/json")


async def prune(request: Request) -> Response:
    from ..responses import qfilters
    flt = qfilters(request)
    for key in flt:
        # dockerd accepts "label" (and the old "unused-for") too, e.g. from `docker system prune --filter`
        if key not in ("until", "unused-for", "label", "id", "parent", "type", "description", "inuse", "shared",
                       "private"):
            raise BadRequest(f"failed to prune build cache: Invalid filter '{key}'")
    for value in flt.get("until", []) + flt.get("unused-for", []):
        from engine.images.changes import parse_duration
        try:
            parse_duration(value)
        except InvalidParameter as err:
            raise EngineError(f"failed to prune build cache: \"until\" filter expects a duration (e.g., '24h'): "
                              f"{err.message}") from None
    # The classic builder keeps no cache of its own: its cache is the images (pruned by image prune).
    return docker_json({"CachesDeleted": None, "SpaceReclaimed": 0})


async def session(request: Request) -> Response:
    if request.headers.get("upgrade", "").lower() != "h2c":
        return docker_json({"message": "no upgrade proto in request"}, status=400)
    return docker_json({"message": "BuildKit is not supported by this daemon"}, status=501)


async def grpc(request: Request) -> Response:
    return docker_json({"message": "page not found"}, status=404)


routes = [
    Route("/build", build, methods=["POST"]),
    Route("/build/prune", prune, methods=["POST"]),
    Route("/session", session, methods=["POST"]),
    Route("/grpc", grpc, methods=["POST"]),
]
