"""Fixtures for the image tests: a fresh database, content store and
snapshotter per test under /tmp, and a check that every mount a test made
is gone afterwards (unmounted by the finalizer even when the test fails)."""
from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.content.store import ContentStore
from engine.images.store import ImageStore
from engine.snapshots import make_snapshotter, unmount_all
from engine.state.db import Database

DRIVERS = ["overlay2", "vfs"]


def _mounts_under(root: Path) -> list[str]:
    prefix = os.path.realpath(root) + "/"
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split(" ")[4].replace("\\040", " ")
            if mp.startswith(prefix):
                out.append(mp)
    return out


@pytest.fixture
def tmp(request: pytest.FixtureRequest) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="pyd-images-"))
    try:
        yield root
    finally:
        leaked = _mounts_under(root)
        for mp in sorted(leaked, key=len, reverse=True):
            unmount_all(mp)
        shutil.rmtree(root, ignore_errors=True)
        assert not leaked, f"test left mounts behind: {leaked}"


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: mounts, device nodes and chown")


@dataclass
class Env:
    root: Path
    db: Database
    content: ContentStore
    snapshotter: Any
    store: ImageStore

    def reopen(self) -> Env:
        """A new set of objects over the same directories (a daemon restart)."""
        self.db.close()
        return make_env(self.root, self.snapshotter.driver)


def make_env(root: Path, driver: str) -> Env:
    db = Database(root / "db.sqlite")
    content = ContentStore(root / "content", root / "tmp")
    snap = make_snapshotter(driver, root / driver, db)
    return Env(root, db, content, snap, ImageStore(db, content, snap, root / "tmp"))


@pytest.fixture(params=DRIVERS)
def env(request: pytest.FixtureRequest, tmp: Path) -> Iterator[Env]:
    need_root()
    e = make_env(tmp, request.param)
    holder = [e]
    request.node.env_holder = holder
    try:
        yield e
    finally:
        try:
            e.db.close()
        except Exception:  # noqa: BLE001 - already closed by reopen()
            pass


# --- building tars ---------------------------------------------------------------

class TarBuilder:
    """Small helper to write test tars entry by entry."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name: str, type_: bytes, mode: int, uid: int = 0, gid: int = 0, mtime: int = 1_600_000_000,
              **kw: Any) -> tarfile.TarInfo:
        i = tarfile.TarInfo(name)
        i.type = type_
        i.mode = mode
        i.uid, i.gid = uid, gid
        i.mtime = mtime
        for k, v in kw.items():
            setattr(i, k, v)
        return i

    def dir(self, name: str, mode: int = 0o755, **kw: Any) -> TarBuilder:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode, **kw))
        return self

    def file(self, name: str, data: bytes = b"", mode: int = 0o644, **kw: Any) -> TarBuilder:
        i = self._info(name, tarfile.REGTYPE, mode, **kw)
        i.size = len(data)
        self.tar.addfile(i, io.BytesIO(data))
        return self

    def symlink(self, name: str, target: str, **kw: Any) -> TarBuilder:
        self.tar.addfile(self._info(name, tarfile.SYMTYPE, 0o777, linkname=target, **kw))
        return self

    def hardlink(self, name: str, target: str, **kw: Any) -> TarBuilder:
        self.tar.addfile(self._info(name, tarfile.LNKTYPE, 0o644, linkname=target, **kw))
        return self

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o666) -> TarBuilder:
        self.tar.addfile(self._info(name, tarfile.CHRTYPE, mode, devmajor=major, devminor=minor))
        return self

    def fifo(self, name: str, mode: int = 0o600) -> TarBuilder:
        self.tar.addfile(self._info(name, tarfile.FIFOTYPE, mode))
        return self

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()

    def stream(self) -> io.BytesIO:
        return io.BytesIO(self.bytes())


def busybox_rootfs_tar() -> bytes:
    """A tiny busybox rootfs: /bin/busybox, a few applets as symlinks, /etc/passwd, /tmp 1777."""
    if not os.path.exists("/bin/busybox"):
        pytest.skip("needs busybox-static at /bin/busybox")
    b = TarBuilder()
    b.dir("bin/").dir("etc/").dir("tmp/", mode=0o1777).dir("root/", mode=0o700)
    with open("/bin/busybox", "rb") as f:
        b.file("bin/busybox", f.read(), mode=0o755)
    for applet in ("sh", "ls", "cat", "echo"):
        b.symlink(f"bin/{applet}", "busybox")
    b.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    return b.bytes()
