"""Mount specifications -> mount points, with dockerd's rules and words.

``-v`` strings (HostConfig.Binds), ``--mount`` entries (HostConfig.Mounts),
``--volumes-from`` and ``--tmpfs`` destinations.  Pure functions apart from the
existence check of a ``--mount type=bind`` source.
"""
from __future__ import annotations

import os
import posixpath

from ..errors import InvalidParameter
from ..types import MountSpec
from .model import BIND, TMPFS, VOLUME, MountPoint

RW_MODES = ("rw", "ro")
LABEL_MODES = ("z", "Z")
PROPAGATION_MODES = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
COPY_MODES = ("nocopy",)
CONSISTENCY_MODES = ("consistent", "cached", "delegated")
DEFAULT_PROPAGATION = "rprivate"


def _valid_mode(mode: str) -> bool:
    if not mode:
        return True
    counts = [0, 0, 0, 0, 0]
    for o in mode.split(","):
        for i, group in enumerate((RW_MODES, LABEL_MODES, PROPAGATION_MODES, COPY_MODES, CONSISTENCY_MODES)):
            if o in group:
                counts[i] += 1
                break
        else:
            return False
    return all(n <= 1 for n in counts)


def _propagation(mode: str) -> str:
    for o in mode.split(","):
        if o in PROPAGATION_MODES:
            return o
    return ""


def _read_write(mode: str) -> bool:
    return _valid_mode(mode) and "ro" not in mode.split(",")


class MountConfigError(InvalidParameter):
    pass


def _config_error(mtype: str, text: str) -> MountConfigError:
    return MountConfigError(f'invalid mount config for type "{mtype}": {text}')


def _check_target(mtype: str, target: str) -> None:
    if not target:
        raise _config_error(mtype, "field Target must not be empty")
    if posixpath.normpath(target.replace("\\", "/")) == "/":
        raise _config_error(mtype, "invalid specification: destination can't be '/'")
    if not target.replace("\\", "/").startswith("/"):
        raise _config_error(mtype, f"invalid mount path: '{target}' mount path must be absolute")


def tmpfs_data(size: int, mode: int, options: tuple[tuple[str, ...], ...], read_only: bool) -> str:
    raw = ["ro"] if read_only else []
    if mode:
        raw.append(f"mode={mode:o}")
    if size:
        for suffix, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % div == 0:
                raw.append(f"size={size // div}{suffix}")
                break
        else:
            raw.append(f"size={size}")
    for opt in options:
        if len(opt) < 1 or len(opt) > 2:
            raise InvalidParameter("invalid option array length")
        if opt[0] not in ("exec", "noexec"):
            raise InvalidParameter("invalid option: " + opt[0])
        raw.append(opt[0] if len(opt) == 1 else f"{opt[0]}={opt[1]}")
    return ",".join(raw)


def parse_mount(spec: MountSpec, *, check_source: bool = True) -> MountPoint:
    """One ``--mount`` entry; errors are dockerd's "invalid mount config for type ..." texts."""
    t = spec.type
    for present, owner, label in ((spec.has_bind_options, BIND, "BindOptions"),
                                  (spec.has_volume_options, VOLUME, "VolumeOptions"),
                                  (spec.has_tmpfs_options, TMPFS, "TmpfsOptions")):
        if present and t != owner:
            raise _config_error(t, f"field {label} must not be specified")
    _check_target(t, spec.target)
    dest = posixpath.normpath(spec.target)
    if t == BIND:
        if not spec.source:
            raise _config_error(t, "field Source must not be empty")
        if spec.bind_propagation and spec.bind_propagation not in PROPAGATION_MODES:
            raise _config_error(t, f"invalid propagation mode: {spec.bind_propagation}")
        if not spec.source.startswith("/"):
            raise _config_error(t, f"invalid mount path: '{spec.source}' mount path must be absolute")
        if check_source and not os.path.lexists(spec.source) and not spec.bind_create_mountpoint:
            raise _config_error(t, f"bind source path does not exist: {spec.source}")
        return MountPoint(type=BIND, destination=dest, source=posixpath.normpath(spec.source), rw=not spec.read_only,
                          propagation=spec.bind_propagation or DEFAULT_PROPAGATION,
                          non_recursive=spec.bind_non_recursive, from_binds=spec.bind_create_mountpoint,
                          ro_non_recursive=spec.bind_readonly_non_recursive,
                          ro_force_recursive=spec.bind_readonly_force_recursive)
    if t == VOLUME:
        subpath = ""
        if spec.volume_subpath:
            if not spec.source:
                raise _config_error(t, "must not set Subpath when using anonymous volumes")
            subpath = posixpath.normpath(spec.volume_subpath)
            if subpath.startswith(("/", "../")) or subpath == "..":
                raise _config_error(t, "subpath must be a relative path within the volume")
        return MountPoint(type=VOLUME, destination=dest, name=spec.source, driver=spec.volume_driver,
                          rw=not spec.read_only, mode="z", copy_data=not spec.volume_nocopy, subpath=subpath)
    if t == TMPFS:
        if spec.source:
            raise _config_error(t, "field Source must not be specified")
        try:
            data = tmpfs_data(spec.tmpfs_size, spec.tmpfs_mode, spec.tmpfs_options, spec.read_only)
        except InvalidParameter as err:
            raise _config_error(t, err.message) from None
        return MountPoint(type=TMPFS, destination=dest, rw=not spec.read_only, tmpfs_data=data)
    raise _config_error(t, "mount type unknown")


def _invalid_spec(raw: str) -> InvalidParameter:
    return InvalidParameter(f"invalid volume specification: '{raw}'")


def parse_bind(raw: str, volume_driver: str = "") -> MountPoint:
    """One ``-v`` string: ``dest``, ``src:dest`` or ``src:dest:mode``."""
    parts = raw.split(":", 3)
    if not parts[0]:
        raise _invalid_spec(raw)
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if _valid_mode(parts[1]):
            raise _invalid_spec(raw)
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise _invalid_spec(raw)
    if not _valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    mtype = BIND if source.startswith("/") else VOLUME
    try:
        _check_target(mtype, target)
    except MountConfigError as err:
        raise InvalidParameter(f"{_invalid_spec(raw).message}: {err.message}") from None
    dest = posixpath.normpath(target)
    rw = _read_write(mode)
    if mtype == BIND:
        return MountPoint(type=BIND, destination=dest, source=posixpath.normpath(source), rw=rw, mode=mode,
                          propagation=_propagation(mode) or DEFAULT_PROPAGATION, from_binds=True)
    return MountPoint(type=VOLUME, destination=dest, name=source, driver=volume_driver, rw=rw,
                      mode=mode or "z", copy_data="nocopy" not in mode.split(","))


def parse_volumes_from(spec: str) -> tuple[str, str]:
    if not spec:
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if not mode:
        return ref, "rw"
    if not _valid_mode(mode) or _propagation(mode) or "nocopy" in mode.split(","):
        raise InvalidParameter(f"invalid mode: {mode}")
    return ref, mode


def check_tmpfs_destination(dest: str) -> None:
    if posixpath.normpath(dest) == "/":
        raise InvalidParameter("invalid specification: destination can't be '/'")
    if not dest.startswith("/"):
        raise InvalidParameter(f"invalid mount path: '{dest}' mount path must be absolute")


def read_write(mode: str) -> bool:
    return _read_write(mode)
