"""`docker cp`: stat, read (tar out) and extract (tar in) paths of a container, running or not.

The work happens in a helper process inside the container's root (archive_helper.py), so
symlinks and ``..`` resolve within the container's filesystem, and the container's
volumes, binds and tmpfs are what the paths reach.  The container's lifecycle lock is held
for the whole operation, as dockerd locks the container: it cannot start, stop or go away
in the middle.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import EngineError, InvalidParameter, NotFound, SystemError_
from ..types import Container

log = logging.getLogger(__name__)
_CHUNK = 1 << 20
# The directory holding the `engine` package: the helper is started from this checkout.
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class PathStat:
    name: str
    size: int
    mode: int            # Go's os.FileMode bits
    mtime: str           # RFC 3339 with nanoseconds
    link_target: str


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
        self._forks = _ForkServer(python)

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

    async def _spawn(self, spec: dict[str, Any], stdin: bool) -> _Run:
        return await self._forks.run(spec, stdin)

    def close(self) -> None:
        self._forks.close()

    @staticmethod
    def _raise(head: dict[str, Any], c_ref: str, path: str) -> None:
        kind, message = head.get("error"), head.get("message") or ""
        if kind == "notfound":
            raise NotFound(f"Could not find the file {path} in container {c_ref}")
        if kind == "invalid":
            raise InvalidParameter(message)
        raise SystemError_(message or "docker cp failed")

    async def _head(self, proc: _Run) -> dict[str, Any]:
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

    async def get(self, ref: str, path: str) -> tuple[PathStat, AsyncIterator[bytes]]:
        """The stat of ``path`` and its tar stream; the container stays locked until the stream ends."""
        c = self._containers.get(ref)
        session = self._session(c)
        await session.__aenter__()
        try:
            proc = await self._spawn(self._spec(c, "get", path), stdin=False)
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

        self._emit(c, "archive-path")
        return self._stat(head["stat"]), stream()

    async def put(self, ref: str, path: str, body: AsyncIterator[bytes], *, no_overwrite_dir_non_dir: bool,
                  copy_uid_gid: bool) -> None:
        c = self._containers.get(ref)
        async with self._session(c):
            spec = self._spec(c, "put", path, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                              copy_uid_gid=copy_uid_gid)
            proc = await self._spawn(spec, stdin=True)
            assert proc.stdin is not None and proc.stdout is not None

            async def feed() -> None:
                assert proc.stdin is not None
                try:
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


def _reap(proc: _Run) -> None:
    """Let go of the helper's pipes: a helper still at work gets EOF or EPIPE and ends."""
    proc.close()


class _Run:
    """One helper operation: the pipes to a child of the fork server."""

    def __init__(self, stdout: asyncio.StreamReader, transport: asyncio.BaseTransport,
                 stdin: asyncio.StreamWriter | None) -> None:
        self.stdout = stdout
        self.stdin = stdin
        self._transport = transport
        self.returncode: int | None = None

    async def wait(self) -> int:
        self.close()
        return 0

    def close(self) -> None:
        if self.returncode is None:
            self.returncode = 0
            self._transport.close()
            if self.stdin is not None:
                self.stdin.close()


class _ForkServer:
    """A fresh interpreter (archive_helper --serve) that forks a child per operation; started on
    first use and again if it died.  It ends by itself when the daemon closes its socket."""

    def __init__(self, python: str) -> None:
        self._python = python
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    def _start(self) -> socket.socket:
        if self._proc is not None and self._proc.poll() is None and self._sock is not None:
            return self._sock
        self.close()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_SOURCE_ROOT, os.environ.get("PYTHONPATH"))
                                                           if p)}
        try:
            self._proc = subprocess.Popen(
                [self._python, "-m", "engine.containers.archive_helper", "--serve", str(child.fileno())],
                pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
        finally:
            child.close()
        self._sock = parent
        return parent

    async def run(self, spec: dict[str, Any], stdin: bool) -> _Run:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        for fd in (in_w, out_w):
            try:   # 1 MiB pipes: fewer wake-ups for a 100 MB copy (64 KiB by default)
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _CHUNK)
            except OSError:
                pass
        try:
            message = json.dumps(spec).encode()
            for attempt in (1, 2):
                try:
                    socket.send_fds(self._start(), [message], [in_r, out_w])
                    break
                except OSError:
                    self.close()    # the server died: start a new one, once
                    if attempt == 2:
                        raise
        except BaseException:
            for fd in (in_w, out_r):
                os.close(fd)
            raise
        finally:
            os.close(in_r)
            os.close(out_w)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=4 * _CHUNK, loop=loop)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop),
                                                    os.fdopen(out_r, "rb", buffering=0))
        writer = None
        if stdin:
            wt, wp = await loop.connect_write_pipe(lambda: asyncio.streams.FlowControlMixin(loop=loop),
                                                   os.fdopen(in_w, "wb", buffering=0))
            writer = asyncio.StreamWriter(wt, wp, None, loop)
        else:
            os.close(in_w)
        return _Run(reader, transport, writer)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            if self._proc.poll() is None:
                try:
                    self._proc.wait(timeout=2)   # EOF on its socket ends it
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
