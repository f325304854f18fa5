"""Host devices as OCI ``linux.devices`` entries (for --device and --privileged).

Reads the host's /dev, so it is kept apart from the pure spec builder; the
engine calls it and passes the result in ``SpecInput.devices``.
"""
from __future__ import annotations

import os
import stat
from typing import Any

from engine.errors import InvalidParameter

# what dockerd leaves out of a privileged container's /dev
_SKIP_DIRS = {"/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd"}
_SKIP_FILES = {"/dev/console", "/dev/ptmx", "/dev/tty"}


def device_from_path(host_path: str, container_path: str = "", permissions: str = "rwm") -> dict[str, Any]:
    """One device node -> OCI device (with the cgroup permissions under "access")."""
    try:
        st = os.stat(host_path)
    except OSError as e:
        raise InvalidParameter(f"error gathering device information while adding custom device \"{host_path}\": "
                               f"{os.strerror(e.errno or 0).lower()}") from None
    if stat.S_ISCHR(st.st_mode):
        typ = "c"
    elif stat.S_ISBLK(st.st_mode):
        typ = "b"
    else:
        raise InvalidParameter(f"error gathering device information while adding custom device \"{host_path}\": "
                               "not a device node")
    return {
        "path": container_path or host_path,
        "type": typ,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "access": permissions,
    }


def devices_from_path(host_path: str, container_path: str = "", permissions: str = "rwm") -> list[dict[str, Any]]:
    """--device: one node, or every node under a directory (mapped below ``container_path``)."""
    container_path = container_path or host_path
    try:
        resolved = os.path.realpath(host_path, strict=True)
    except OSError:
        resolved = host_path  # device_from_path reports the error in dockerd's words
    if not os.path.isdir(resolved):
        dev = device_from_path(resolved, container_path, permissions)
        return [dev]
    out: list[dict[str, Any]] = []
    for dirpath, _dirnames, filenames in os.walk(resolved):
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            try:
                out.append(device_from_path(path, os.path.join(container_path, os.path.relpath(path, resolved)),
                                            permissions))
            except InvalidParameter:
                continue  # not a device node: skipped, as with dockerd
    return out


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every device node under /dev (what --privileged exposes)."""
    out: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in _SKIP_DIRS]
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if path in _SKIP_FILES or os.path.islink(path):
                continue
            try:
                out.append(device_from_path(path))
            except InvalidParameter:
                continue
    return out
