"""``docker export``: a tar of the container's whole filesystem.

The merged root (image layers plus the container's changes) is read from the
running container's rootfs mount, or from a private mount of its snapshot
while it is stopped (under the container's lock, so a start cannot stack on
it).  Entries are written in the order of a sorted walk, like dockerd; the
files dockerd's init layer provides (``/.dockerenv``, ``/etc/hosts``,
mount points) are included even where our runtime never created them.
"""
from __future__ import annotations

import asyncio
import logging
import os
import queue
import tarfile
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ..snapshots.mount import is_mounted, unmount_all
from .rwlayer import add_capability_xattr

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024

# (path, kind) of dockerd's init layer: "d" directory, "f" empty file, "l" symlink to /proc/mounts.
INIT_ENTRIES: dict[str, str] = {
    "/.dockerenv": "f", "/dev": "d", "/dev/console": "f", "/dev/pts": "d", "/dev/shm": "d", "/etc": "d",
    "/etc/hostname": "f", "/etc/hosts": "f", "/etc/mtab": "l", "/etc/resolv.conf": "f", "/proc": "d", "/sys": "d",
}


def _children(virtual: dict[str, str], rel_dir: str) -> dict[str, str]:
    prefix = "/" if rel_dir == "/" else rel_dir + "/"
    return {p[len(prefix):]: k for p, k in virtual.items() if p.startswith(prefix) and "/" not in p[len(prefix):]}


def write_rootfs_tar(root: str, out: Any) -> None:
    """Write the tree at ``root`` (plus dockerd's init entries) as a tar to ``out``."""
    now = int(time.time())
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        def virtual_entry(name: str, kind: str) -> None:
            ti = tarfile.TarInfo(name + ("/" if kind == "d" else ""))
            ti.mtime = now
            ti.mode = 0o755
            if kind == "d":
                ti.type = tarfile.DIRTYPE
            elif kind == "l":
                ti.type = tarfile.SYMTYPE
                ti.linkname = "/proc/mounts"
                ti.mode = 0o777
            tar.addfile(ti)

        def walk(rel_dir: str, real: bool) -> None:
            names: set[str] = set()
            if real:
                try:
                    names = set(os.listdir(root + rel_dir))
                except OSError:
                    names = set()
            virtual = _children(INIT_ENTRIES, rel_dir)
            for name in sorted(names | set(virtual)):
                rel = ("" if rel_dir == "/" else rel_dir) + "/" + name
                arc = rel.lstrip("/")
                if name in names:
                    path = root + rel
                    ti = tar.gettarinfo(path, arcname=arc)
                    if ti is None:
                        continue  # a socket: tar has no such entry, Go's writer skips it too
                    ti.uname = ti.gname = ""
                    ti.mtime = int(ti.mtime)
                    add_capability_xattr(ti, path)
                    if ti.isdir():
                        ti.name = arc + "/"
                    if ti.isreg():
                        with open(path, "rb") as f:
                            tar.addfile(ti, f)
                    else:
                        tar.addfile(ti)
                    if ti.isdir():
                        walk(rel, True)
                else:
                    virtual_entry(arc, virtual[name])
                    if virtual[name] == "d":
                        walk(rel, False)

        walk("/", True)


class _QueueWriter:
    """A file-like sink that hands ``_CHUNK``-sized pieces to the event loop side."""

    def __init__(self, q: queue.Queue[bytes | BaseException | None], cancelled: threading.Event) -> None:
        self.q = q
        self.cancelled = cancelled
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= _CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if not self.buf:
            return
        chunk, self.buf = bytes(self.buf), bytearray()
        self.put(chunk)

    def put(self, item: bytes | BaseException | None) -> None:
        while True:
            if self.cancelled.is_set():
                raise BrokenPipeError("export cancelled")
            try:
                self.q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue


class ThreadStream:
    """Runs ``produce(fileobj)`` in its own thread; ``chunks()`` yields what it writes.

    Built so that an abandoned consumer (a client that hung up, a cancelled
    request) strands nothing: ``stop()`` makes the producer fail its next write,
    and the getter polls, so no executor thread waits forever on the queue."""

    def __init__(self, produce: Callable[[Any], None]) -> None:
        self.q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
        self.cancelled = threading.Event()
        self._writer = _QueueWriter(self.q, self.cancelled)
        self._produce = produce
        self.thread = threading.Thread(target=self._run, name="export", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._produce(self._writer)
            self._writer.flush()
            self._writer.put(None)
        except BaseException as err:  # noqa: BLE001  (handed to the reader)
            if not self.cancelled.is_set():
                try:
                    self._writer.put(err)
                except BrokenPipeError:
                    pass

    def _get(self) -> bytes | BaseException | None:
        while not self.cancelled.is_set():
            try:
                return self.q.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await asyncio.to_thread(self._get)
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self.cancelled.set()

    async def wait_stopped(self) -> None:
        await asyncio.to_thread(self.thread.join)


async def _shielded(coro: Any) -> None:
    """Run cleanup to its end even if the request is cancelled meanwhile (starlette
    cancels a streaming response's task when the client goes, again at every await)."""
    task = asyncio.ensure_future(coro)
    await asyncio.shield(task)


async def export_container(svc: Any, images: Any, c: Any, bundles_root: Path) -> AsyncGenerator[bytes, None]:
    """The tar stream of container ``c``'s filesystem (running or not)."""
    rootfs = bundles_root / c.id / "rootfs"
    while True:
        if await asyncio.to_thread(is_mounted, str(rootfs)):
            # Running (or paused): read the live mount, without blocking stop.
            live = ThreadStream(lambda out: write_rootfs_tar(str(rootfs), out))
            try:
                async for chunk in live.chunks():
                    yield chunk
            finally:
                live.stop()
            return
        lock = svc.lifecycle_lock(c)
        await lock.acquire()  # no start while the snapshot is mounted here
        if await _still_unmounted(rootfs, lock):
            break
    target = bundles_root / c.id / "export"
    try:
        await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(images.mount_rootfs, c.id, target)
    except BaseException:
        await _shielded(_finish(None, images, c.id, target, lock))
        raise
    ts = ThreadStream(lambda out: write_rootfs_tar(str(target), out))
    try:
        async for chunk in ts.chunks():
            yield chunk
    finally:
        ts.stop()
        await _shielded(_finish(ts, images, c.id, target, lock))


async def _still_unmounted(rootfs: Path, lock: asyncio.Lock) -> bool:
    """Under the lock: is the rootfs still unmounted?  If it was started meanwhile,
    let go of the lock (the caller then reads the live mount)."""
    try:
        mounted = await asyncio.to_thread(is_mounted, str(rootfs))
    except BaseException:
        lock.release()
        raise
    if mounted:
        lock.release()
    return not mounted


async def _finish(ts: ThreadStream | None, images: Any, key: str, target: Path, lock: asyncio.Lock) -> None:
    try:
        if ts is not None:
            await ts.wait_stopped()  # the tar writer reads no more files
        await asyncio.to_thread(_unmount_and_remove, images, key, target)
    finally:
        lock.release()


def _unmount_and_remove(images: Any, key: str, target: Path) -> None:
    try:
        images.unmount_rootfs(key, target)
        # A bind mount (the copy snapshotter) is no mount point to os.path.ismount,
        # which unmount_rootfs relies on: make sure by the mount table.
        unmount_all(str(target))
    finally:
        try:
            target.rmdir()
        except OSError:
            log.warning("export mount point %s left behind", target)

