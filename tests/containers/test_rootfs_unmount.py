"""The container rootfs is unmounted after a run also when it is a bind mount (vfs)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.engine import _RootfsImages
from engine.snapshots.mount import Mount, is_mounted, mount_all, unmount, unmount_all

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


class _Snap:
    def unmount(self, target: str) -> None:
        unmount(target)


def test_bind_mounted_rootfs_is_unmounted(tmp_path: Path) -> None:
    src, target = tmp_path / "src", tmp_path / "rootfs"
    src.mkdir()
    target.mkdir()
    mount_all([Mount("bind", str(src), ("rw", "rbind"))], str(target))
    try:
        assert is_mounted(str(target)) and not os.path.ismount(target)  # what the fix is about
        _RootfsImages(None, _Snap()).unmount_rootfs("key", target)  # type: ignore[arg-type]
        assert not is_mounted(str(target))
    finally:
        unmount_all(str(target))
