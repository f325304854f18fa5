"""Snapshotters: copy-on-write filesystem trees returned as mounts."""
from __future__ import annotations

from pathlib import Path

from ..state.db import Database
from .base import SnapshotInfo, Snapshotter
from .copy import CopySnapshotter
from .mount import Mount, is_mounted, mount_all, unmount, unmount_all
from .overlay import OverlaySnapshotter

__all__ = [
    "CopySnapshotter",
    "Mount",
    "OverlaySnapshotter",
    "SnapshotInfo",
    "Snapshotter",
    "is_mounted",
    "make_snapshotter",
    "mount_all",
    "unmount",
    "unmount_all",
]


def make_snapshotter(driver: str, root: Path, db: Database) -> OverlaySnapshotter | CopySnapshotter:
    """``overlay2`` (or ``overlay``) -> OverlaySnapshotter, ``vfs`` -> CopySnapshotter."""
    if driver in ("overlay2", "overlay", "overlayfs"):
        return OverlaySnapshotter(root, db)
    if driver in ("vfs", "copy", "native"):
        return CopySnapshotter(root, db)
    raise ValueError(f"unknown storage driver {driver!r} (use overlay2 or vfs)")
