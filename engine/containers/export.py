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
from pathlib import Path
from typing import Any, AsyncIterator, Callable

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

    def __init__(self, q: "queue.Queue[bytes | BaseException | None]", cancelled: threading.Event) -> None:
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
        self._put(chunk)

    def _put(self, item: "bytes | BaseException | None") -> None:
        while True:
            if self.cancelled.is_set():
                raise BrokenPipeError("export cancelled")
            try:
                self.q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue


async def stream_from_thread(produce: Callable[[Any], None]) -> AsyncIterator[bytes]:
    """Run ``produce(fileobj)`` in a thread and yield what it writes."""
    q: "queue.Queue[bytes | BaseException | None]" = queue.Queue(maxsize=8)
    cancelled = threading.Event()
    writer = _QueueWriter(q, cancelled)

    def run() -> None:
        try:
            produce(writer)
            writer.flush()
            writer._put(None)
        except BaseException as err:  # noqa: BLE001  (handed to the reader)
            if not cancelled.is_set():
                try:
                    writer._put(err)
                except BrokenPipeError:
                    pass

    thread = threading.Thread(target=run, name="export", daemon=True)
    thread.start()
    try:
        while True:
            item = await asyncio.to_thread(q.get)
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancelled.set()
        await asyncio.to_thread(thread.join)


async def export_container(svc: Any, images: Any, c: Any, bundles_root: Path) -> AsyncIterator[bytes]:
    """The tar stream of container ``c``'s filesystem (running or not)."""
    rootfs = bundles_root / c.id / "rootfs"
    while True:
        if await asyncio.to_thread(is_mounted, str(rootfs)):
            # Running (or paused): read the live mount, without blocking stop.
            gen = stream_from_thread(lambda out: write_rootfs_tar(str(rootfs), out))
            try:
                async for chunk in gen:
                    yield chunk
            finally:
                await gen.aclose()  # type: ignore[attr-defined]
            return
        lock = svc.lifecycle_lock(c)
        await lock.acquire()  # no start while the snapshot is mounted here
        try:
            if await asyncio.to_thread(is_mounted, str(rootfs)):
                continue  # it started meanwhile (the lock is released on the way)
            target = bundles_root / c.id / "export"
            await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(images.mount_rootfs, c.id, target)
            gen = stream_from_thread(lambda out: write_rootfs_tar(str(target), out))
            try:
                async for chunk in gen:
                    yield chunk
            finally:
                # Closed explicitly (not by the garbage collector) when the client goes
                # early: its writer thread must stop before the unmount.
                await gen.aclose()  # type: ignore[attr-defined]
                await asyncio.to_thread(_unmount_and_remove, images, c.id, target)
            return
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

