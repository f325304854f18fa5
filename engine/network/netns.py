"""Network namespaces as bind-mounted nsfs files (what `ip netns add` and libnetwork's sandbox do).

A namespace is created by a worker thread that unshares its own network
namespace, binds ``/proc/thread-self/ns/net`` onto a file under the exec root
and returns to the namespace it came from.  Only the calling thread ever
changes namespace (the kernel keeps network namespaces per thread), so the
daemon's other threads never notice.  Everything here blocks: call it off the
event loop.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def create(path: Path) -> None:
    """Make a new, empty network namespace held by the file ``path`` (loopback up)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            _check(_libc.mount(b"/proc/thread-self/ns/net", os.fsencode(path), None, MS_BIND, None),
                   "bind-mounting the network namespace")
        finally:
            _setns(home)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    finally:
        os.close(home)


def remove(path: Path) -> None:
    """Unmount and delete a namespace file; a missing one is fine (idempotent)."""
    ret = _libc.umount2(os.fsencode(path), MNT_DETACH)
    if ret != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        err = ctypes.get_errno()
        raise OSError(err, f"unmounting {path}: {os.strerror(err)}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def is_mounted(path: Path) -> bool:
    """Whether ``path`` holds a namespace (an nsfs bind mount), not just a placeholder file."""
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False


@contextlib.contextmanager
def entered(path: str | Path) -> Iterator[None]:
    """Run the block with the calling thread inside the namespace at ``path``.

    Sockets opened in the block (netlink included) stay bound to that namespace
    after the thread has left it.
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)
