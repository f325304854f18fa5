"""The volumes start contributor: a container's mount points from create to removal.

At create the ``-v``/``--mount``/``--volumes-from``/image ``VOLUME`` specs become
mount points; the volumes they name are created (anonymous ones with a 64-hex
name) and referenced by the container.  Each start mounts the volumes (a device
of a volume with options), copies the image's content into an empty volume on
its first mount, and hands the runtime one OCI mount per mount point; the
release of the run unmounts.  Removal drops the references and, with ``-v``,
the container's anonymous volumes.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import posixpath
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from ..containers.contributors import BaseContributor, StartPlan
from ..errors import EngineError, InvalidParameter, NotFound
from ..runtime.fs import secure_join
from ..snapshots import mount as mnt
from ..types import Container
from . import parse
from .model import BIND, TMPFS, VOLUME, MountPoint
from .service import VolumeService

log = logging.getLogger(__name__)


def duplicate(dest: str) -> InvalidParameter:
    return InvalidParameter(f"Duplicate mount point: {dest}")


class VolumeMounts(BaseContributor):
    name = "volumes"

    def __init__(self, volumes: VolumeService, lookup: Callable[[str], Container],
                 staging_root: str | None = None) -> None:
        self.volumes = volumes
        # where a volume subpath is bind-mounted (from a descriptor) before the runtime binds it
        self._staging = staging_root
        self._staged: dict[str, list[str]] = {}
        self._lookup = lookup                 # a container by id or name (for --volumes-from)
        self._mounts: dict[str, list[MountPoint]] = {
            cid: [MountPoint(**m) for m in data] for cid, data in volumes.load_container_mounts().items()}
        self._mounted: dict[str, list[str]] = {}   # container -> volumes mounted for its current run

    # --------------------------------------------------------------- queries
    def mounts_of(self, c: Container) -> list[MountPoint]:
        return list(self._mounts.get(c.id, ()))

    # ---------------------------------------------------------------- create
    async def created(self, c: Container) -> None:
        points, extras = self._resolve(c)
        created: list[str] = []
        try:
            out: list[MountPoint] = []
            for mp in points:
                if mp.type == VOLUME:
                    existed = bool(mp.name) and self.volumes.exists(mp.name)
                    labels, options = extras.get(mp.destination, (None, None))
                    vol = await self.volumes.create(mp.name or None, driver=mp.driver, ref=c.id,
                                                    labels=labels, options=options)
                    if not existed:
                        created.append(vol.name)
                    mp = replace(mp, name=vol.name, driver=vol.driver, source=vol.mountpoint)
                out.append(mp)
            await self.volumes.save_container_mounts(c.id, [asdict(m) for m in out])
        except BaseException:
            await self.volumes.release_refs(c.id)
            for name in created:
                try:
                    await self.volumes.remove(name, force=True)
                except EngineError:
                    log.warning("removing volume %s after a failed create", name, exc_info=True)
            raise
        self._mounts[c.id] = out

    def _resolve(self, c: Container) -> tuple[list[MountPoint], dict[str, tuple[Any, Any]]]:
        """dockerd's order: --volumes-from, then -v, then --mount; image/Config volumes fill the
        destinations left; a destination given twice by -v/--mount/--tmpfs is refused."""
        hc = c.host_config
        points: dict[str, MountPoint] = {}
        for dest in hc.tmpfs:
            parse.check_tmpfs_destination(dest)
        for vf in hc.volumes_from:
            ref, mode = parse.parse_volumes_from(vf)
            try:
                other = self._lookup(ref)
            except NotFound as err:
                raise InvalidParameter(err.message) from None
            for m in self._mounts.get(other.id, ()):
                points[m.destination] = replace(m, rw=m.rw and parse.read_write(mode), copy_data=False, mode="")
        explicit: set[str] = set()
        extras: dict[str, tuple[Any, Any]] = {}   # destination -> (labels, driver options) of --mount volumes
        for raw in hc.binds:
            mp = parse.parse_bind(raw, hc.volume_driver)
            if mp.destination in explicit or mp.destination in hc.tmpfs:
                raise duplicate(mp.destination)
            explicit.add(mp.destination)
            points[mp.destination] = _old_api_read_only(mp, hc.read_only_binds_non_recursive)
        for spec in hc.mounts:
            mp = parse.parse_mount(spec)
            if mp.destination in explicit:
                raise duplicate(spec.target)
            explicit.add(mp.destination)
            if mp.type == VOLUME and spec.has_volume_options:
                extras[mp.destination] = (spec.volume_labels, spec.volume_driver_options)
            points[mp.destination] = _old_api_read_only(mp, hc.read_only_binds_non_recursive)
        for dest in c.config.volumes:
            clean = posixpath.normpath(dest)
            if clean in points or clean in hc.tmpfs:
                continue
            if not clean.startswith("/"):
                raise InvalidParameter(f"invalid mount path: '{dest}' mount path must be absolute")
            points[clean] = MountPoint(type=VOLUME, destination=clean, driver=hc.volume_driver)
        return list(points.values()), extras

    # ----------------------------------------------------------------- start
    async def prepare(self, plan: StartPlan) -> None:
        c = plan.container
        points = self._mounts.get(c.id, [])
        mounted = self._mounted.setdefault(c.id, [])
        extra: list[tuple[str, str, str, tuple[str, ...]]] = []
        changed = False
        for i, mp in enumerate(points):
            if mp.type == VOLUME:
                try:
                    path = await self.volumes.mount(mp.name, c.id, container=c.id, destination=mp.destination,
                                                    rw=mp.rw, propagation=mp.propagation)
                except EngineError as err:
                    raise type(err)(f"error while mounting volume '{mp.source}': {err.message}") from None
                mounted.append(mp.name)
                if mp.subpath:
                    path = await asyncio.to_thread(self._stage_subpath, c.id, i, path, mp.subpath)
                elif mp.copy_data:
                    await asyncio.to_thread(copy_up, str(plan.rootfs), mp.destination, path)
                    points[i] = replace(mp, copy_data=False)
                    changed = True
                opts = ("rbind", _read_only_option(mp), mp.propagation or "rprivate")
                extra.append((mp.destination, "bind", path, opts))
            elif mp.type == BIND:
                await asyncio.to_thread(_prepare_bind_source, mp)
                opts = ("bind" if mp.non_recursive else "rbind", _read_only_option(mp),
                        mp.propagation or "rprivate")
                extra.append((mp.destination, "bind", mp.source, opts))
            elif mp.type == TMPFS:
                data = tuple(o for o in mp.tmpfs_data.split(",") if o)
                extra.append((mp.destination, "tmpfs", "tmpfs", ("noexec", "nosuid", "nodev", "rprivate", *data)))
        for dest, options in c.host_config.tmpfs.items():
            data = tuple(o for o in options.split(",") if o)
            extra.append((posixpath.normpath(dest), "tmpfs", "tmpfs", ("noexec", "nosuid", "nodev", "rprivate", *data)))
        # Parents before children, as dockerd sorts them (by the number of path elements);
        # the service sorts them again among its own (/etc/hosts...).
        extra.sort(key=lambda m: len([p for p in m[0].split("/") if p]))
        plan.mounts.extend(extra)
        if changed:
            await self.volumes.save_container_mounts(c.id, [asdict(m) for m in points])

    def _stage_subpath(self, cid: str, index: int, volume_path: str, subpath: str) -> str:
        """Open ``subpath`` below the volume one component at a time, refusing symlinks, and
        bind-mount what was opened (by descriptor) on a staging point: a link swapped in later
        cannot redirect the container's mount (dockerd's safepath does the same)."""
        if self._staging is None:
            raise EngineError("volume subpaths need a staging directory")
        fd = os.open(volume_path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            for part in [p for p in subpath.split("/") if p not in ("", ".")]:
                try:
                    nfd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except OSError as err:
                    raise NotFound(f"cannot access path {posixpath.join(volume_path, subpath)}: "
                                   f"{_go_errno(err.errno)}") from None
                os.close(fd)
                fd = nfd
                if stat.S_ISLNK(os.fstat(fd).st_mode):
                    raise NotFound(f"cannot access path {posixpath.join(volume_path, subpath)}: "
                                   f"{_go_errno(errno.ELOOP)}")
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
            target = os.path.join(self._staging, cid, str(index))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if is_dir:
                os.makedirs(target, exist_ok=True)
            elif not os.path.exists(target):
                open(target, "a").close()
            mnt.unmount_all(target)
            mnt.mount_raw(f"/proc/self/fd/{fd}", target, None, mnt.MS_BIND, None)
        finally:
            os.close(fd)
        self._staged.setdefault(cid, []).append(target)
        return target

    def _unstage(self, cid: str) -> None:
        for target in self._staged.pop(cid, []):
            mnt.unmount_all(target)
        if self._staging is not None:
            shutil.rmtree(os.path.join(self._staging, cid), ignore_errors=True)

    async def release(self, c: Container) -> None:
        await asyncio.to_thread(self._unstage, c.id)
        names = self._mounted.pop(c.id, [])
        for name in names:
            try:
                await self.volumes.unmount(name, c.id, container=c.id)
            except Exception:
                log.exception("unmounting volume %s of %s", name, c.id[:12])

    async def removed(self, c: Container, *, volumes: bool) -> None:
        await self.release(c)
        points = self._mounts.pop(c.id, [])
        await self.volumes.release_refs(c.id)
        await self.volumes.drop_container_mounts(c.id)
        if not volumes:
            return
        for mp in points:
            if mp.type != VOLUME or not self.volumes.exists(mp.name):
                continue
            vol = self.volumes.get(mp.name)
            if vol.anonymous and not self.volumes.refs(vol.name):
                try:
                    await self.volumes.remove(vol.name)
                except EngineError:
                    log.warning("removing anonymous volume %s", vol.name, exc_info=True)

    def _unstage_all(self) -> None:
        assert self._staging is not None
        if os.path.isdir(self._staging):
            for cid in os.listdir(self._staging):
                self._unstage_dir(cid)

    def _unstage_dir(self, cid: str) -> None:
        assert self._staging is not None
        base = os.path.join(self._staging, cid)
        for name in os.listdir(base) if os.path.isdir(base) else ():
            mnt.unmount_all(os.path.join(base, name))
        shutil.rmtree(base, ignore_errors=True)
        self._staged.pop(cid, None)

    async def restore(self, c: Container, *, running: bool) -> None:
        if running:
            self._mounted[c.id] = [m.name for m in self._mounts.get(c.id, ()) if m.type == VOLUME]

    async def settle(self, exists: Callable[[str], bool]) -> None:
        """After every container was restored: references of containers that are gone are dropped,
        devices of volumes no running container mounts are unmounted."""
        # staged subpaths: a running container has its own copy of the bind, the rest are leftovers
        if self._staging is not None:
            await asyncio.to_thread(self._unstage_all)
        for cid in [cid for cid in self._mounts if not exists(cid)]:
            self._mounts.pop(cid, None)
            await self.volumes.drop_container_mounts(cid)
        await self.volumes.forget_refs_except(exists)
        in_use: dict[str, set[str]] = {}
        for cid, names in self._mounted.items():
            for name in names:
                in_use.setdefault(name, set()).add(cid)
        await self.volumes.settle(in_use)


def _old_api_read_only(mp: MountPoint, non_recursive: bool) -> MountPoint:
    """A client of API < 1.44 gets the read-only binds it knew: the top mount only."""
    if non_recursive and mp.type == BIND and not mp.rw:
        return replace(mp, ro_non_recursive=True)
    return mp


def _read_only_option(mp: MountPoint) -> str:
    """dockerd's choice for a bind-like mount: "rw", "ro" (bind-recursive=writable), else "rro"."""
    if mp.rw:
        return "rw"
    if mp.ro_non_recursive and mp.ro_force_recursive:
        raise EngineError("mount options conflict: ReadOnlyNonRecursive && ReadOnlyForceRecursive")
    return "ro" if mp.ro_non_recursive else "rro"


def _go_errno(code: int | None) -> str:
    text = os.strerror(code or errno.EIO)
    return text[:1].lower() + text[1:]


def _prepare_bind_source(mp: MountPoint) -> None:
    if os.path.lexists(mp.source):
        _check_propagation(mp)
        return
    if not mp.from_binds:
        raise EngineError(f"invalid mount config for type \"bind\": bind source path does not exist: {mp.source}")
    # `-v /host/dir:/p` creates a missing host directory, as dockerd does
    os.makedirs(mp.source, mode=0o755, exist_ok=True)
    _check_propagation(mp)


def _mount_of(path: str) -> tuple[str, str]:
    """(mount point, optional fields) of the mount that holds ``path``."""
    real = os.path.realpath(path)
    best, fields = "/", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split(" ")
            point = parts[4]
            sep = parts.index("-")
            if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, fields = point, " ".join(parts[6:sep])
    return best, fields


def _check_propagation(mp: MountPoint) -> None:
    if mp.propagation in ("shared", "rshared"):
        point, fields = _mount_of(mp.source)
        if "shared:" not in fields:
            raise EngineError(f"path {mp.source} is mounted on {point} but it is not a shared mount")
    elif mp.propagation in ("slave", "rslave"):
        point, fields = _mount_of(mp.source)
        if "shared:" not in fields and "master:" not in fields:
            raise EngineError(f"path {mp.source} is mounted on {point} but it is not a shared or slave mount")


def copy_up(rootfs: str, destination: str, volume_path: str) -> None:
    """Copy the image's content at ``destination`` into an empty volume (ownership, modes, xattrs),
    then give the volume's root the ownership and mode of the image's directory, as dockerd."""
    src = secure_join(rootfs, destination)
    if not os.path.isdir(src) or os.path.islink(src):
        return
    try:
        if os.listdir(volume_path):
            return
    except OSError:
        return
    if os.listdir(src):
        proc = subprocess.run(["cp", "-a", "--", src + "/.", volume_path + "/"], capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise EngineError(f"copying the image's content of {destination} into its volume: {proc.stderr.strip()}")
    st = os.stat(src)
    os.chown(volume_path, st.st_uid, st.st_gid)
    os.chmod(volume_path, st.st_mode & 0o7777)

