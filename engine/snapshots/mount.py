"""Mount descriptions and the two syscalls that apply them.

A snapshotter answers with ``Mount`` values, never with paths to use
directly: the caller decides where (and in which mount namespace) they go.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import subprocess
from dataclasses import dataclass

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2

# Options that are mount(2) flags rather than filesystem data.  Value: (set, clear).
_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY),
    "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV),
    "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
    "noatime": (MS_NOATIME, 0),
    "bind": (MS_BIND, 0), "rbind": (MS_BIND | MS_REC, 0),
}

# mount(2) copies at most one page of filesystem data.
_MAX_DATA = 4095


@dataclass(frozen=True)
class Mount:
    type: str              # "overlay" or "bind"
    source: str
    options: tuple[str, ...] = ()


class MountError(OSError):
    pass


_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        _libc = lib
    return _libc


def mount_raw(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = _lib().mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                      data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise MountError(err, f"mount {fstype or 'bind'} {source} on {target}: {os.strerror(err)}")


def split_options(options: tuple[str, ...]) -> tuple[int, list[str]]:
    flags = 0
    data: list[str] = []
    for opt in options:
        if opt in _FLAGS:
            set_, clear = _FLAGS[opt]
            flags = (flags | set_) & ~clear
        else:
            data.append(opt)
    return flags, data


def mount_one(m: Mount, target: str) -> None:
    flags, data = split_options(m.options)
    if m.type == "bind" or flags & MS_BIND:
        mount_raw(m.source, target, None, flags | MS_BIND, None)
        if flags & MS_RDONLY:
            # A bind mount ignores MS_RDONLY; read-only needs a remount.
            mount_raw("", target, None, flags | MS_BIND | MS_REMOUNT, None)
        return
    text = ",".join(data)
    if len(text.encode()) > _MAX_DATA:
        _mount_long_overlay(m, target, flags, data)
        return
    mount_raw(m.source, target, m.type, flags, text)


def _mount_long_overlay(m: Mount, target: str, flags: int, data: list[str]) -> None:
    """Too many layers for one page of absolute paths: mount with paths relative
    to their common directory, from a child process whose cwd is that directory
    (the daemon's own cwd is shared by all its threads, so it stays put)."""
    paths = [p for opt in data if "=" in opt for p in opt.split("=", 1)[1].split(":")]
    common = os.path.commonpath(paths) if paths else "/"
    rel: list[str] = []
    for opt in data:
        if "=" in opt:
            k, v = opt.split("=", 1)
            if k in ("lowerdir", "upperdir", "workdir"):
                v = ":".join(os.path.relpath(p, common) for p in v.split(":"))
            rel.append(f"{k}={v}")
        else:
            rel.append(opt)
    text = ",".join(rel)
    if len(text.encode()) > _MAX_DATA:
        raise MountError(errno.E2BIG, f"overlay mount options too long ({len(text)} bytes) for {target}")
    opts = text + (",ro" if flags & MS_RDONLY else "")
    proc = subprocess.run(["mount", "-t", m.type, "-o", opts, m.source, os.path.abspath(target)],
                          cwd=common, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MountError(errno.EIO, f"mount {m.type} on {target}: {proc.stderr.strip()}")


def mount_all(mounts: list[Mount] | tuple[Mount, ...], target: str) -> None:
    """Apply ``mounts`` in order on ``target``; on failure, undo what was done."""
    done = 0
    try:
        for m in mounts:
            mount_one(m, target)
            done += 1
    except BaseException:
        for _ in range(done):
            unmount(target)
        raise


def unmount(target: str) -> None:
    """Unmount ``target`` once; a busy mount is detached lazily.  Not mounted is fine."""
    rc = _lib().umount2(target.encode(), 0)
    if rc == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EBUSY:
        if _lib().umount2(target.encode(), MNT_DETACH) == 0:
            return
        err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):
        return  # not a mount point (any more)
    raise MountError(err, f"unmount {target}: {os.strerror(err)}")


def is_mounted(target: str) -> bool:
    """``target`` is a mount point (bind mounts within one filesystem included,
    which ``os.path.ismount`` misses)."""
    want = os.path.realpath(target)
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ")
            if len(fields) > 4 and _unescape(fields[4]) == want:
                return True
    return False


def _unescape(raw: bytes) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), raw).decode(errors="surrogateescape")


def unmount_all(target: str) -> None:
    """Unmount every mount stacked on ``target``."""
    for _ in range(64):
        if not is_mounted(target):
            return
        unmount(target)
