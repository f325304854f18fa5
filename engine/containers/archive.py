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
import os
from collections.abc import AsyncIterator, Callable
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
                 rootfs_mounts: Callable[[str], list[Any]], python: str, bundles_root: Any, events: Any) -> None:
        self._containers = containers
        self._events = events
        self._mounts_of = mounts_of
        self._rootfs_mounts = rootfs_mounts
        self._python = python
        self._bundles = bundles_root

    def _emit(self, c: Container, action: str) -> None:
        attrs = {"image": c.config.image, "name": c.name, **c.config.labels}
        self._events.publish_action("container", action, c.id, attrs)

    def _spec(self, c: Container, op: str, path: str, **extra: Any) -> dict[str, Any]:
        mounts = [{"destination": m.destination, "source": m.source, "rw": m.rw}
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

    async def _spawn(self, spec: dict[str, Any], stdin: bool) -> asyncio.subprocess.Process:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_SOURCE_ROOT, os.environ.get("PYTHONPATH"))
                                                           if p)}
        return await asyncio.create_subprocess_exec(
            self._python, "-m", "engine.containers.archive_helper", json.dumps(spec),
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)

    @staticmethod
    def _raise(head: dict[str, Any], c_ref: str, path: str) -> None:
        kind, message = head.get("error"), head.get("message") or ""
        if kind == "notfound":
            raise NotFound(f"Could not find the file {path} in container {c_ref}")
        if kind == "invalid":
            raise InvalidParameter(message)
        raise SystemError_(message or "docker cp failed")

    async def _head(self, proc: asyncio.subprocess.Process) -> dict[str, Any]:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line:
            err = (await proc.stderr.read()).decode(errors="replace").strip() if proc.stderr else ""
            await proc.wait()
            raise EngineError(f"docker cp helper failed: {err.splitlines()[-1] if err else 'no output'}")
        head: dict[str, Any] = json.loads(line)
        return head

    @staticmethod
    def _stat(data: dict[str, Any]) -> PathStat:
        return PathStat(data["name"], data["size"], data["mode"], data["mtime"], data["linkTarget"])

    async def stat(self, ref: str, path: str) -> PathStat:
        c = self._containers.get(ref)
        async with self._containers.lifecycle_lock(c):
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
        lock = self._containers.lifecycle_lock(c)
        await lock.acquire()
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
        except BaseException:
            lock.release()
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
                # Nothing awaited before the release: a cancelled request (anyio re-raises the
                # cancellation at every await) must still let go of the container.
                lock.release()
                _reap(proc)

        self._emit(c, "archive-path")
        return self._stat(head["stat"]), stream()

    async def put(self, ref: str, path: str, body: AsyncIterator[bytes], *, no_overwrite_dir_non_dir: bool,
                  copy_uid_gid: bool) -> None:
        c = self._containers.get(ref)
        async with self._containers.lifecycle_lock(c):
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


def _reap(proc: asyncio.subprocess.Process) -> None:
    """Kill the helper if it still runs and collect it in the background (never awaited here)."""
    if proc.returncode is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        task = asyncio.get_running_loop().create_task(proc.wait())
        _REAPING.add(task)
        task.add_done_callback(_REAPING.discard)


_REAPING: set[asyncio.Task[int]] = set()
