"""The `local` volume driver: a directory under ``<data-root>/volumes/<name>/_data``.

With options (``type``, ``device``, ``o``) the directory is a mount point: the
device is mounted on it when the first container mounts the volume and unmounted
when the last one lets go, like dockerd's local driver.  Calls are blocking;
the volume service runs them in threads.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Protocol

from ..errors import EngineError, InvalidParameter, SystemError_
from ..snapshots import mount as mnt

log = logging.getLogger(__name__)

NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_VALID_OPTS = ("type", "o", "device", "size")
# An option that needs others (checked in this order, as dockerd's table).
_MANDATORY = (("device", ("type",)), ("type", ("device",)), ("o", ("device", "type")))


class VolumeDriver(Protocol):
    """What the volume service needs from a driver."""

    name: str

    def validate(self, name: str, options: dict[str, str]) -> None: ...
    def create(self, name: str, options: dict[str, str]) -> str: ...
    def remove(self, name: str, options: dict[str, str]) -> None: ...
    def path(self, name: str) -> str: ...
    def mount(self, name: str, options: dict[str, str], ref: str) -> str: ...
    def unmount(self, name: str, options: dict[str, str], ref: str) -> None: ...
    def settle(self, name: str, options: dict[str, str], refs: set[str]) -> None: ...
    def created_time(self, name: str) -> float: ...
    def usage(self, name: str) -> int: ...


def validate_name(name: str) -> None:
    if len(name) == 1:
        raise InvalidParameter("volume name is too short, names should be at least two alphanumeric characters")
    if not _NAME_RE.match(name):
        raise InvalidParameter(
            f'"{name}" includes invalid characters for a local volume name, only "{NAME_CHARS}" are allowed. '
            "If you intended to pass a host directory, use absolute path")


def _go_errno_text(err: int) -> str:
    text = os.strerror(err)
    return text[:1].lower() + text[1:]


class LocalDriver:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o701)
        self._lock = threading.Lock()
        self._active: dict[str, set[str]] = {}     # volume -> refs holding its device mount

    # ---------------------------------------------------------------- create
    def validate(self, name: str, options: dict[str, str]) -> None:
        validate_name(name)
        for key in options:
            if key not in _VALID_OPTS:
                raise InvalidParameter(f'invalid option: "{key}"')
        if "size" in options:
            raise InvalidParameter("quota size requested but no quota support")
        for key, needs in _MANDATORY:
            if key in options:
                for other in needs:
                    if other not in options:
                        raise InvalidParameter(f'missing required option: "{other}"')

    def create(self, name: str, options: dict[str, str]) -> str:
        self.validate(name, options)
        vroot = self.root / name
        data = vroot / "_data"
        try:
            vroot.mkdir(mode=0o701, exist_ok=True)
            data.mkdir(mode=0o755, exist_ok=True)
        except OSError as err:
            raise SystemError_(f"error while creating volume data path '{data}': {err.strerror}") from None
        return str(data)

    def path(self, name: str) -> str:
        return str(self.root / name / "_data")

    def remove(self, name: str, options: dict[str, str]) -> None:
        with self._lock:
            if self._active.get(name):
                raise SystemError_("volume has active mounts")
            self._active.pop(name, None)
        data = self.root / name / "_data"
        if _needs_mount(options):
            mnt.unmount_all(str(data))
        if os.path.ismount(data) or mnt.is_mounted(str(data)):
            raise SystemError_(f"error removing volume path '{data}': device or resource busy")
        real = os.path.realpath(data) if data.exists() else str(self.root / name)
        if not real.startswith(str(self.root) + "/"):
            raise SystemError_(
                f"unable to remove a directory outside of the local volume root {self.root}: {real}")
        shutil.rmtree(self.root / name, ignore_errors=True)

    # ----------------------------------------------------------------- mount
    def mount(self, name: str, options: dict[str, str], ref: str) -> str:
        path = self.path(name)
        if not _needs_mount(options):
            return path
        with self._lock:
            refs = self._active.setdefault(name, set())
            if not refs and not mnt.is_mounted(path):
                _mount_device(options, path)
            refs.add(ref)
        return path

    def unmount(self, name: str, options: dict[str, str], ref: str) -> None:
        if not _needs_mount(options):
            return
        with self._lock:
            refs = self._active.get(name)
            if refs is None:
                refs = set()
            refs.discard(ref)
            if refs:
                return
            self._active.pop(name, None)
            mnt.unmount_all(self.path(name))

    def settle(self, name: str, options: dict[str, str], refs: set[str]) -> None:
        """Daemon start: ``refs`` are the running containers that mount the volume.
        Without any, a device left mounted by a crashed daemon is unmounted."""
        if not _needs_mount(options):
            return
        with self._lock:
            path = self.path(name)
            if refs and mnt.is_mounted(path):
                self._active[name] = set(refs)
            else:
                self._active.pop(name, None)
                mnt.unmount_all(path)

    # ---------------------------------------------------------------- facts
    def created_time(self, name: str) -> float:
        try:
            return os.stat(self.root / name).st_mtime
        except OSError:
            return 0.0

    def usage(self, name: str) -> int:
        return dir_size(self.path(name))


def _needs_mount(options: dict[str, str]) -> bool:
    return bool(options.get("device") or options.get("type"))


def _mount_device(options: dict[str, str], path: str) -> None:
    device = options.get("device", "")
    if not device:
        raise EngineError("failed to mount local volume: missing device in volume options")
    mtype = options.get("type", "")
    data = options.get("o", "")
    flags, rest = mnt.split_options(tuple(o for o in data.split(",") if o))
    try:
        if flags & mnt.MS_BIND:
            mnt.mount_one(mnt.Mount("bind", device, tuple(o for o in data.split(",") if o)), path)
        else:
            mnt.mount_raw(device, path, mtype or None, flags, ",".join(rest) or None)
    except OSError as err:
        code = err.errno or errno.EINVAL
        raise EngineError(
            f"failed to mount local volume: mount {device}:{path}, flags: {flags:#x}, data: {','.join(rest)}: "
            f"{_go_errno_text(code)}") from None


def dir_size(path: str) -> int:
    """Bytes used by the files under ``path`` (hard links counted once), as dockerd's directory.Size."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for fname in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            try:
                st = os.lstat(os.path.join(dirpath, fname))
            except OSError:
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += st.st_size
    return total
