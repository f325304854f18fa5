"""The snapshotter contract, run against both implementations with real mounts."""
from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import Conflict, InvalidParameter, NotFound
from engine.snapshots import CopySnapshotter, OverlaySnapshotter, is_mounted, make_snapshotter
from engine.state.db import Database

from .conftest import DRIVERS, need_root


@pytest.fixture(params=DRIVERS)
def snap(request: pytest.FixtureRequest, tmp: Path) -> Iterator[Any]:
    need_root()
    db = Database(tmp / "db.sqlite")
    s = make_snapshotter(request.param, tmp / request.param, db)
    s.test_db = db
    try:
        yield s
    finally:
        db.close()


@pytest.fixture
def mnt(tmp: Path) -> Path:
    target = tmp / "mnt"
    target.mkdir()
    return target


class Mounted:
    def __init__(self, snap: Any, key: str, target: Path) -> None:
        self.snap, self.key, self.target = snap, key, target

    def __enter__(self) -> Path:
        self.snap.mount_all(self.snap.mounts(self.key), str(self.target))
        return self.target

    def __exit__(self, *exc: object) -> None:
        self.snap.unmount(str(self.target))
        assert not is_mounted(str(self.target))


def test_make_snapshotter_types(tmp: Path) -> None:
    need_root()
    db = Database(tmp / "db.sqlite")
    try:
        assert isinstance(make_snapshotter("overlay2", tmp / "o", db), OverlaySnapshotter)
        assert isinstance(make_snapshotter("vfs", tmp / "v", db), CopySnapshotter)
        with pytest.raises(ValueError):
            make_snapshotter("zfs", tmp / "z", db)
    finally:
        db.close()


def test_layer_lifecycle(snap: Any, mnt: Path) -> None:
    snap.prepare("l1-tmp", None)
    with Mounted(snap, "l1-tmp", mnt) as root:
        (root / "a").write_text("one")
        (root / "d").mkdir()
    snap.commit("l1", "l1-tmp")
    assert snap.stat("l1").kind == "committed"
    assert not snap.exists("l1-tmp")

    mounts = snap.prepare("c1", "l1")
    assert mounts == snap.mounts("c1")
    with Mounted(snap, "c1", mnt) as root:
        assert (root / "a").read_text() == "one"
        (root / "a").write_text("changed")
        (root / "d" / "new").write_text("x")
    # The committed layer is untouched by the container's writes.
    assert (snap.upper_dir("l1") / "a").read_text() == "one"
    assert not (snap.upper_dir("l1") / "d" / "new").exists()
    assert snap.usage("c1") >= len("changed") + 1
    assert snap.stat("c1").parent == "l1"
    assert snap.children("l1") == ["c1"]
    assert {i.key for i in snap.list()} == {"l1", "c1"}
    desc = snap.describe("c1")
    assert desc and all(isinstance(v, str) for v in desc.values())


def test_view_is_read_only(snap: Any, mnt: Path) -> None:
    snap.prepare("t", None)
    (snap.upper_dir("t") / "f").write_text("data")
    snap.commit("base", "t")
    snap.view("v", "base")
    with Mounted(snap, "v", mnt) as root:
        assert (root / "f").read_text() == "data"
        with pytest.raises(OSError) as exc:
            (root / "g").write_text("nope")
        assert exc.value.errno == errno.EROFS


def test_view_of_two_layers(snap: Any, mnt: Path) -> None:
    snap.prepare("t1", None)
    (snap.upper_dir("t1") / "one").write_text("1")
    snap.commit("L1", "t1")
    snap.prepare("t2", "L1")
    (snap.upper_dir("t2") / "two").write_text("2")
    snap.commit("L2", "t2")
    snap.view("v", "L2")
    with Mounted(snap, "v", mnt) as root:
        assert sorted(os.listdir(root)) == ["one", "two"]


def test_errors(snap: Any) -> None:
    snap.prepare("a", None)
    with pytest.raises(Conflict):
        snap.prepare("a", None)
    with pytest.raises(InvalidParameter):
        snap.prepare("b", "a")  # parent must be committed
    with pytest.raises(NotFound):
        snap.prepare("b", "missing")
    with pytest.raises(NotFound):
        snap.stat("missing")
    snap.commit("A", "a")
    with pytest.raises(InvalidParameter):
        snap.commit("A2", "A")  # not active
    with pytest.raises(InvalidParameter):
        snap.mounts("A")
    snap.prepare("child", "A")
    with pytest.raises(Conflict):
        snap.remove("A")
    snap.remove("child")
    snap.remove("A")
    assert snap.list() == []
    assert [p.name for p in snap.dir.iterdir()] == []
    with pytest.raises(NotFound):
        snap.remove("A")


def test_persistence_and_crash_recovery(snap: Any, tmp: Path) -> None:
    snap.prepare("t", None)
    (snap.upper_dir("t") / "f").write_text("kept")
    snap.commit("base", "t")
    snap.prepare("c", "base")
    # What a kill -9 can leave: a directory being built, a directory being removed,
    # a record whose directory was never renamed into place, a directory without record.
    (snap.dir / "tmp-deadbeef").mkdir()
    (snap.dir / "rm-77").mkdir()
    (snap.dir / "999").mkdir()
    snap.test_db.transaction_sync(lambda c: c.execute(
        "INSERT INTO snapshots(driver, key, kind, parent, created_ns) VALUES(?, 'ghost', 'active', NULL, 0)",
        (snap.driver,)))
    again = make_snapshotter(snap.driver, snap.root, snap.test_db)
    assert {i.key for i in again.list()} == {"base", "c"}
    assert sorted(p.name for p in again.dir.iterdir()) == sorted(str(again.stat(k).id) for k in ("base", "c"))
    assert (again.upper_dir("base") / "f").read_text() == "kept"
    assert again.stat("c").parent == "base"


def test_copy_snapshot_keeps_metadata(tmp: Path, mnt: Path) -> None:
    need_root()
    db = Database(tmp / "db.sqlite")
    try:
        s = make_snapshotter("vfs", tmp / "vfs", db)
        s.prepare("t", None)
        up = s.upper_dir("t")
        (up / "f").write_text("x")
        os.chown(up / "f", 1234, 5678)
        os.chmod(up / "f", 0o4711)
        os.link(up / "f", up / "hard")
        os.symlink("f", up / "link")
        os.mknod(up / "dev", 0o20600, os.makedev(1, 3))
        os.setxattr(up / "f", "trusted.test", b"v")
        os.utime(up / "f", ns=(1_000_000_000, 2_000_000_000))
        s.commit("L", "t")
        s.prepare("c", "L")
        cu = s.upper_dir("c")
        st = os.lstat(cu / "f")
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777, st.st_mtime_ns) == (1234, 5678, 0o4711, 2_000_000_000)
        assert os.lstat(cu / "hard").st_ino == st.st_ino
        assert os.readlink(cu / "link") == "f"
        assert os.major(os.lstat(cu / "dev").st_rdev) == 1
        assert os.getxattr(cu / "f", "trusted.test") == b"v"
    finally:
        db.close()


def test_overlay_many_layers(tmp: Path, mnt: Path) -> None:
    """More layers than fit in one page of absolute lowerdir paths."""
    need_root()
    db = Database(tmp / "db.sqlite")
    try:
        s = make_snapshotter("overlay2", tmp / "overlay2", db)
        parent = None
        n = 130
        for i in range(n):
            s.prepare(f"t{i}", parent)
            (s.upper_dir(f"t{i}") / f"f{i}").write_text(str(i))
            s.commit(f"L{i}", f"t{i}")
            parent = f"L{i}"
        mounts = s.prepare("c", parent)
        assert len(",".join(mounts[0].options)) > 4096
        with Mounted(s, "c", mnt) as root:
            assert len(os.listdir(root)) == n
            assert (root / "f0").read_text() == "0" and (root / f"f{n - 1}").read_text() == str(n - 1)
            (root / "new").write_text("w")
        assert (s.upper_dir("c") / "new").read_text() == "w"
    finally:
        db.close()
