"""What `docker cp` says about a path (the X-Docker-Container-Path-Stat header): Go's os.FileMode
bits and RFC 3339 times, computed in the helper inside the container's root."""
from __future__ import annotations

import datetime
import os
import stat as st
from typing import Any


class Failure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# Go's os.FileMode type bits
GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def go_mode(mode: int) -> int:
    out = mode & 0o777
    if st.S_ISDIR(mode):
        out |= GO_DIR
    elif st.S_ISLNK(mode):
        out |= _GO_SYMLINK
    elif st.S_ISFIFO(mode):
        out |= _GO_PIPE
    elif st.S_ISSOCK(mode):
        out |= _GO_SOCKET
    elif st.S_ISCHR(mode):
        out |= _GO_DEVICE | _GO_CHARDEV
    elif st.S_ISBLK(mode):
        out |= _GO_DEVICE
    if mode & st.S_ISUID:
        out |= _GO_SETUID
    if mode & st.S_ISGID:
        out |= _GO_SETGID
    if mode & st.S_ISVTX:
        out |= _GO_STICKY
    return out


# The daemon's time zone, read now: inside the container's root /etc/localtime is the container's.
_LOCAL_TZ = datetime.datetime.now().astimezone().tzinfo


def go_time(ns: int) -> str:
    """Go's RFC3339Nano (trailing zeros of the fraction dropped) in local time."""
    secs, frac = divmod(ns, 1_000_000_000)
    local = datetime.datetime.fromtimestamp(secs, _LOCAL_TZ)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    off = local.strftime("%z")
    return text + ("Z" if off in ("+0000", "") else f"{off[:3]}:{off[3:]}")


def path_stat(path: str, name: str) -> dict[str, Any]:
    try:
        s = os.lstat(path)
    except FileNotFoundError:
        raise Failure("notfound", "") from None
    except NotADirectoryError:
        raise Failure("notfound", "") from None
    target = ""
    if st.S_ISLNK(s.st_mode):
        target = os.path.realpath(path)
    base = os.path.basename(path.rstrip("/")) if path.rstrip("/") else "/"
    if path.endswith("/."):
        base = "."
    return {"name": base, "size": s.st_size, "mode": go_mode(s.st_mode), "mtime": go_time(s.st_mtime_ns),
            "linkTarget": target}
