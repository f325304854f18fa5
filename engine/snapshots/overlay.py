"""Overlayfs snapshotter: each snapshot is one directory of changes; a mount
stacks the parents' ``fs`` directories as ``lowerdir`` (nearest first) under
the active snapshot's ``fs`` (upper) and ``work``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import KIND_ACTIVE, BaseSnapshotter, SnapshotInfo, describe_dirs
from .mount import Mount


def _index_is_on() -> bool:
    try:
        return Path("/sys/module/overlay/parameters/index").read_text().strip() == "Y"
    except OSError:
        return False


class OverlaySnapshotter(BaseSnapshotter):
    driver = "overlay2"
    apply_mode = "overlay"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # With the inode index on, a lower layer shared by two mounts makes the
        # second mount fail; Docker turns it off for the same reason.
        self._extra = ("index=off",) if _index_is_on() else ()
        super().__init__(*args, **kwargs)

    def _populate(self, tmpdir: Path, parent: SnapshotInfo | None) -> None:
        (tmpdir / "fs").mkdir(mode=0o755)
        (tmpdir / "work").mkdir(mode=0o700)

    def _lowers(self, info: SnapshotInfo) -> list[str]:
        return [str(self._path(p) / "fs") for p in self.parent_chain(info.parent)]

    def _mounts(self, info: SnapshotInfo) -> list[Mount]:
        here = self._path(info)
        lowers = self._lowers(info)
        if info.kind == KIND_ACTIVE:
            if not lowers:
                return [Mount("bind", str(here / "fs"), ("rw", "rbind"))]
            return [Mount("overlay", "overlay", (
                f"workdir={here / 'work'}", f"upperdir={here / 'fs'}", f"lowerdir={':'.join(lowers)}",
                *self._extra))]
        # A view: read-only.  Overlay needs two lowers when there is no upper.
        if not lowers:
            return [Mount("bind", str(here / "fs"), ("ro", "rbind"))]
        if len(lowers) == 1:
            return [Mount("bind", lowers[0], ("ro", "rbind"))]
        return [Mount("overlay", "overlay", (f"lowerdir={':'.join(lowers)}", *self._extra, "ro"))]

    def describe(self, key: str) -> dict[str, str]:
        """dockerd's GraphDriver.Data for overlay2."""
        with self._lock:
            info = self._get(key)
            here = self._path(info)
            lowers = self._lowers(info)
            return describe_dirs(LowerDir=":".join(lowers), MergedDir=here / "merged",
                                 UpperDir=here / "fs", WorkDir=here / "work")
