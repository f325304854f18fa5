"""`docker cp`: stat, read (tar out) and extract (tar in) paths of a container, running or not.

The work happens in a helper process inside the container's root (archive_helper.py), so
symlinks and ``..`` resolve within the container's filesystem, and the container's
volumes, binds and tmpfs are what the paths reach.  The container's lifecycle lock is held
for the whole operation, as dockerd locks the container: it cannot start, stop or go away
in the middle.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import EngineError, InvalidParameter, NotFound, SystemError_
from ..types import Container
from .archive_forks import ForkServer, HelperRun

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PathStat:
    name: str
    size: int
    mode: int            # Go's os.FileMode bits
    mtime: str           # RFC 3339 with nanoseconds
    link_target: str


@dataclass(frozen=True)
class SocketBody:
    """A request body the helper reads off the client's connection itself (archive_io.py):
    ``prefix`` is what had already been received, then ``fd``, framed by HTTP/1.1's chunked
    coding or ``length`` bytes long.  The caller keeps (and closes) ``fd``."""

    fd: int
    prefix: bytes
    chunked: bool
    length: int = 0


class DirectDownload:
    """A tar the helper writes onto the client's connection itself: ``send`` once the response
    head is out (``chunked``: in chunked coding), then ``aclose``."""

    def __init__(self, proc: HelperRun, finish: Callable[[], Any]) -> None:
        self._proc = proc
        self._finish = finish
        self._closed = False

    async def send(self) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(b"g")
        await self._proc.stdin.drain()
        line = await self._proc.stdout.readline()
        answer: dict[str, Any] = json.loads(line) if line.strip() else {"message": "the helper ended early"}
        if not answer.get("done"):
            raise SystemError_(f"archive stream ended early: {answer.get('message')}")

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            _reap(self._proc)
            await self._finish()


class ContainerArchive:
    def __init__(self, containers: Any, mounts_of: Callable[[Container], list[Any]],
                 rootfs_mounts: Callable[[str], list[Any]], python: str, bundles_root: Any, events: Any,
                 volumes: Any = None) -> None:
        self._containers = containers
        self._volumes = volumes          # VolumeService: mounts a stopped container's volumes for the copy
        self._events = events
        self._mounts_of = mounts_of
        self._rootfs_mounts = rootfs_mounts
        self._python = python
        self._bundles = bundles_root
        self._forks = ForkServer(python)

    def _emit(self, c: Container, action: str) -> None:
        attrs = {"image": c.config.image, "name": c.name, **c.config.labels}
        self._events.publish_action("container", action, c.id, attrs)

    def _spec(self, c: Container, op: str, path: str, **extra: Any) -> dict[str, Any]:
        mounts = [{"destination": m.destination, "source": _source(m), "rw": m.rw}
                  for m in self._mounts_of(c) if m.type in ("volume", "bind")]
        spec: dict[str, Any] = {"op": op, "path": path, "mounts": mounts,
                                "readonly_rootfs": c.host_config.readonly_rootfs, "user": c.config.user, **extra}
        if c.state.running and c.state.pid:
            spec["pid"] = c.state.pid
        else:
            spec["rootfs"] = str(self._bundles / c.id / "rootfs")
            spec["layers"] = [{"type": m.type, "source": m.source, "options": list(m.options)}
                              for m in self._rootfs_mounts(c.id)]
        return spec

    async def _mount_volumes(self, c: Container) -> list[Any]:
        """A stopped container's volumes are mounted for the operation (a `local` volume with a
        device gets it mounted, so the copy reaches the device), with the mount/unmount events
        dockerd sends; a running container's helper joins its mount namespace instead."""
        if self._volumes is None or (c.state.running and c.state.pid):
            return []
        done: list[Any] = []
        try:
            for m in self._mounts_of(c):
                if m.type == "volume" and m.name:
                    await self._volumes.mount(m.name, _ARCHIVE_REF + c.id, container=c.id, destination=m.destination,
                                              rw=m.rw, propagation=m.propagation)
                    done.append(m)
        except BaseException:
            await self._unmount_volumes(c, done)
            raise
        return done

    async def _unmount_volumes(self, c: Container, points: list[Any]) -> None:
        for m in reversed(points):
            try:
                await self._volumes.unmount(m.name, _ARCHIVE_REF + c.id, container=c.id)
            except Exception:
                log.warning("unmounting volume %s after docker cp", m.name, exc_info=True)

    @asynccontextmanager
    async def _session(self, c: Container) -> AsyncIterator[None]:
        """The container locked, its volumes mounted; undone even when the request is cancelled."""
        lock = self._containers.lifecycle_lock(c)
        await lock.acquire()
        try:
            points = await self._mount_volumes(c)
        except BaseException:
            lock.release()
            raise
        try:
            yield
        finally:
            await _uncancellable(self._end(c, points, lock))

    async def _end(self, c: Container, points: list[Any], lock: asyncio.Lock) -> None:
        try:
            await self._unmount_volumes(c, points)
        finally:
            lock.release()

    async def _spawn(self, spec: dict[str, Any], stdin: bool, client_fd: int | None = None) -> HelperRun:
        return await self._forks.run(spec, stdin, client_fd)

    def close(self) -> None:
        self._forks.close()

    @staticmethod
    def _raise(head: dict[str, Any], c_ref: str, path: str) -> None:
        kind, message = head.get("error"), head.get("message") or ""
        if kind == "notfound":
            raise NotFound(f"Could not find the file {path} in container {c_ref}")
        if kind in ("invalid", "badbody"):
            raise InvalidParameter(message)
        raise SystemError_(message or "docker cp failed")

    async def _head(self, proc: HelperRun) -> dict[str, Any]:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line:
            await proc.wait()
            raise EngineError("docker cp helper failed without an answer (see the daemon's log)")
        head: dict[str, Any] = json.loads(line)
        return head

    @staticmethod
    def _stat(data: dict[str, Any]) -> PathStat:
        return PathStat(data["name"], data["size"], data["mode"], data["mtime"], data["linkTarget"])

    async def stat(self, ref: str, path: str) -> PathStat:
        c = self._containers.get(ref)
        async with self._session(c):
            proc = await self._spawn(self._spec(c, "stat", path), stdin=False)
            try:
                head = await self._head(proc)
                await proc.wait()
            finally:
                _reap(proc)
        if "stat" not in head:
            self._raise(head, ref, path)
        return self._stat(head["stat"])

    async def get(self, ref: str, path: str, *, client_fd: int | None = None,
                  chunked: bool = True) -> tuple[PathStat, AsyncIterator[bytes] | DirectDownload]:
        """The stat of ``path`` and its tar: a stream of chunks, or, given the client's connection
        (``client_fd``), a DirectDownload the helper writes there.  The container stays locked
        until the stream ends / the download is closed."""
        c = self._containers.get(ref)
        session = self._session(c)
        await session.__aenter__()
        try:
            spec = self._spec(c, "get", path, chunked=chunked)
            proc = await self._spawn(spec, stdin=client_fd is not None, client_fd=client_fd)
            try:
                head = await self._head(proc)
                if "stat" not in head:
                    await proc.wait()
                    self._raise(head, ref, path)
            except BaseException:
                _reap(proc)
                raise
        except BaseException as err:
            await session.__aexit__(type(err), err, err.__traceback__)
            raise

        self._emit(c, "archive-path")
        if client_fd is not None:
            return self._stat(head["stat"]), DirectDownload(proc, lambda: session.__aexit__(None, None, None))

        async def stream() -> AsyncIterator[bytes]:
            assert proc.stdout is not None
            try:
                while True:
                    chunk = await proc.stdout.read(_CHUNK)
                    if not chunk:
                        break
                    yield chunk
                await proc.wait()
            finally:
                _reap(proc)
                await session.__aexit__(None, None, None)

        return self._stat(head["stat"]), stream()

    async def put(self, ref: str, path: str, body: AsyncIterator[bytes] | SocketBody, *,
                  no_overwrite_dir_non_dir: bool, copy_uid_gid: bool) -> None:
        c = self._containers.get(ref)
        async with self._session(c):
            spec = self._spec(c, "put", path, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                              copy_uid_gid=copy_uid_gid)
            direct = body if isinstance(body, SocketBody) else None
            if direct is not None:
                spec.update(chunked=direct.chunked, length=direct.length)
            proc = await self._spawn(spec, stdin=True, client_fd=direct.fd if direct is not None else None)
            assert proc.stdin is not None and proc.stdout is not None

            async def feed() -> None:
                assert proc.stdin is not None
                try:
                    if direct is not None:   # what the daemon had read; the helper reads the rest itself
                        proc.stdin.write(direct.prefix)
                        await proc.stdin.drain()
                        return
                    assert not isinstance(body, SocketBody)
                    pending: list[bytes] = []
                    size = 0
                    async for chunk in body:
                        # fewer, bigger pipe writes: the request arrives in small pieces
                        pending.append(chunk)
                        size += len(chunk)
                        if size >= _CHUNK:
                            proc.stdin.write(b"".join(pending))
                            pending, size = [], 0
                            await proc.stdin.drain()
                    if pending:
                        proc.stdin.write(b"".join(pending))
                        await proc.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the helper stopped reading: its answer says why
                finally:
                    try:
                        proc.stdin.close()
                    except (BrokenPipeError, ConnectionResetError):
                        pass

            feeder = asyncio.create_task(feed())
            try:
                head = await self._head(proc)
            except BaseException:
                _reap(proc)
                feeder.cancel()
                raise
            finally:
                if not feeder.done():
                    feeder.cancel()
                try:
                    await feeder
                except (asyncio.CancelledError, Exception):
                    log.debug("feeding the archive to the helper ended early", exc_info=True)
                await proc.wait()
        if "ok" not in head:
            self._raise(head, ref, path)
        self._emit(c, "extract-to-dir")


_ARCHIVE_REF = "docker-cp:"   # the volume reference a copy holds (the container's own is its id)


def _source(m: Any) -> str:
    """The host path a mount point's copy goes through (a volume subpath resolved inside the volume)."""
    from ..runtime.fs import secure_join
    return secure_join(m.source, m.subpath) if getattr(m, "subpath", "") else str(m.source)


async def _uncancellable(work: Any) -> None:
    """Run ``work`` to its end even if the caller is cancelled meanwhile (it goes on as a task)."""
    await asyncio.shield(asyncio.ensure_future(work))


def _reap(proc: HelperRun) -> None:
    """Let go of the helper's pipes: a helper still at work gets EOF or EPIPE and ends."""
    proc.close()
