"""Layer unpacking: entry types and metadata, whiteouts through real mounts,
compression, and hostile or broken tars."""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
from pathlib import Path

import pytest

from engine.errors import InvalidParameter
from engine.images.layer import apply_layer
from engine.images.layer_streams import LayerError

from .conftest import Env, TarBuilder, need_root
from .test_snapshots import Mounted


def _sample() -> bytes:
    b = TarBuilder()
    b.dir("etc/", mode=0o755, mtime=1_500_000_000)
    b.file("etc/conf", b"hello", mode=0o640, uid=12, gid=34, mtime=1_400_000_000)
    b.file("bin/tool", b"#!/bin/sh\n", mode=0o4755)          # parent dir without an entry
    b.symlink("etc/link", "/etc/conf", uid=5, gid=6)
    b.hardlink("etc/hard", "etc/conf")
    b.chardev("dev/null", 1, 3)
    b.fifo("run/fifo")
    b.dir("tmp/", mode=0o1777)
    t = b.tar
    info = b._info("etc/x", b"0", 0o600)
    info.pax_headers = {"SCHILY.xattr.trusted.demo": "v1", "SCHILY.xattr.user.demo": "u"}
    info.size = 1
    t.addfile(info, io.BytesIO(b"x"))
    return b.bytes()


@pytest.mark.parametrize("mode", ["overlay", "copy"])
def test_entry_types_and_metadata(tmp: Path, mode: str) -> None:
    need_root()
    root = tmp / "root"
    root.mkdir()
    data = _sample()
    res = apply_layer(io.BytesIO(data), root, mode)
    assert res.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert res.tar_size == len(data)
    assert res.size == len(b"hello") + len(b"#!/bin/sh\n") + 1 + len("/etc/conf")  # files + symlink targets
    st = os.lstat(root / "etc/conf")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime) == (0o640, 12, 34, 1_400_000_000)
    assert st.st_nlink == 2 and os.lstat(root / "etc/hard").st_ino == st.st_ino
    assert os.lstat(root / "bin/tool").st_mode & 0o7777 == 0o4755
    assert os.readlink(root / "etc/link") == "/etc/conf"
    assert os.lstat(root / "etc/link").st_uid == 5
    dev = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(dev.st_mode) and (os.major(dev.st_rdev), os.minor(dev.st_rdev)) == (1, 3)
    assert stat.S_ISFIFO(os.lstat(root / "run/fifo").st_mode)
    assert os.lstat(root / "tmp").st_mode & 0o7777 == 0o1777
    assert os.lstat(root / "etc").st_mtime == 1_500_000_000  # set after its children were written
    assert os.getxattr(root / "etc/x", "trusted.demo") == b"v1"
    assert os.getxattr(root / "etc/x", "user.demo") == b"u"


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, lambda d: d])
def test_compressed_layers_hash_the_uncompressed_tar(tmp: Path, compress: object) -> None:
    need_root()
    data = TarBuilder().file("a", b"x" * 10000).bytes()
    root = tmp / "r"
    root.mkdir()
    res = apply_layer(io.BytesIO(compress(data)), root, "copy")  # type: ignore[operator]
    assert res.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert (root / "a").read_bytes() == b"x" * 10000


def test_sink_receives_uncompressed_bytes(tmp: Path) -> None:
    need_root()
    data = TarBuilder().file("a", b"abc").bytes()
    got = bytearray()
    root = tmp / "r"
    root.mkdir()
    apply_layer(io.BytesIO(gzip.compress(data)), root, "copy", sink=got.extend)
    assert bytes(got) == data


def _two_layers(env: Env) -> tuple[str, str]:
    l1 = (TarBuilder().dir("etc/").file("etc/keep", b"k").file("etc/gone", b"g")
          .dir("opq/").file("opq/old1", b"1").dir("opq/sub/").file("opq/sub/old2", b"2")
          .dir("replace/").file("replace/inner", b"i").file("f2d", b"file"))
    lower = env.store.register_layer(l1.stream(), None)
    l2 = (TarBuilder().dir("etc/").file("etc/.wh.gone")
          .dir("opq/").file("opq/.wh..wh..opq").file("opq/new", b"n")
          .file("replace", b"now a file").dir("f2d/").file("f2d/x", b"x"))
    upper = env.store.register_layer(l2.stream(), lower.chain_id)
    return lower.chain_id, upper.chain_id


def test_whiteouts_through_a_real_mount(env: Env, tmp: Path) -> None:
    _, top = _two_layers(env)
    snap = env.snapshotter
    if snap.apply_mode == "overlay":
        up = snap.upper_dir(top)
        wh = os.lstat(up / "etc/gone")
        assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
        assert os.getxattr(up / "opq", "trusted.overlay.opaque") == b"y"
    snap.prepare("ctr", top)
    target = tmp / "mnt"
    target.mkdir()
    with Mounted(snap, "ctr", target) as root:
        assert sorted(os.listdir(root / "etc")) == ["keep"]
        assert sorted(os.listdir(root / "opq")) == ["new"]
        assert (root / "replace").read_bytes() == b"now a file"
        assert (root / "f2d/x").read_bytes() == b"x"
        assert (root / "etc/keep").read_bytes() == b"k"


def test_implicit_parent_copies_lower_metadata_in_overlay(env: Env, tmp: Path) -> None:
    l1 = env.store.register_layer(TarBuilder().dir("tmp/", mode=0o1777, uid=7).stream(), None)
    l2 = env.store.register_layer(TarBuilder().file("tmp/f", b"x").stream(), l1.chain_id)
    env.snapshotter.prepare("ctr", l2.chain_id)
    target = tmp / "mnt"
    target.mkdir()
    with Mounted(env.snapshotter, "ctr", target) as root:
        st = os.lstat(root / "tmp")
        assert st.st_mode & 0o7777 == 0o1777 and st.st_uid == 7
        assert (root / "tmp/f").read_bytes() == b"x"


# --- hostile and broken tars -----------------------------------------------------

def _escape_tars() -> dict[str, bytes]:
    return {
        "symlink-parent": TarBuilder().symlink("link", "../outside").file("link/pwned", b"x").bytes(),
        "symlink-abs-parent": TarBuilder().symlink("link", "/").file("link/pwned", b"x").bytes(),
        "hardlink-out": TarBuilder().hardlink("h", "../outside/secret").bytes(),
        "hardlink-abs": TarBuilder().hardlink("h", "/etc/passwd").bytes(),
        "hardlink-through-symlink": TarBuilder().symlink("l", "../outside").hardlink("h", "l/secret").bytes(),
        "symlink-then-file-over-it": TarBuilder().symlink("x", "../outside/secret").file("x/y", b"z").bytes(),
    }


@pytest.mark.parametrize("name", sorted(_escape_tars()))
@pytest.mark.parametrize("mode", ["overlay", "copy"])
def test_escapes_are_refused(tmp: Path, name: str, mode: str) -> None:
    need_root()
    root = tmp / "root"
    outside = tmp / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("s")
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(_escape_tars()[name]), root, mode)
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_text() == "s" and os.lstat(outside / "secret").st_nlink == 1


@pytest.mark.parametrize("mode", ["overlay", "copy"])
def test_dotdot_and_absolute_names_stay_inside_the_root(tmp: Path, mode: str) -> None:
    """As dockerd 20.10's chrooted apply: the root is "/", so nothing climbs out of it."""
    need_root()
    root = tmp / "root"
    outside = tmp / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("s")
    data = (TarBuilder().file("a/../../outside/pwned", b"x").file("/abs/f", b"y").file("../../up", b"z")
            .hardlink("h", "/abs/f").hardlink("h2", "../../up").bytes())
    apply_layer(io.BytesIO(data), root, mode)
    assert (root / "outside/pwned").read_bytes() == b"x"
    assert (root / "abs/f").read_bytes() == b"y" and (root / "up").read_bytes() == b"z"
    assert os.stat(root / "h").st_ino == os.stat(root / "abs/f").st_ino
    assert os.stat(root / "h2").st_ino == os.stat(root / "up").st_ino
    assert sorted(os.listdir(outside)) == ["secret"] and not (tmp / "up").exists()


def test_writing_a_file_over_a_symlink_replaces_the_symlink(tmp: Path) -> None:
    need_root()
    root = tmp / "root"
    outside = tmp / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("s")
    data = TarBuilder().symlink("x", "../outside/secret").file("x", b"mine").bytes()
    apply_layer(io.BytesIO(data), root, "copy")
    assert (outside / "secret").read_text() == "s"
    assert (root / "x").read_bytes() == b"mine" and not os.path.islink(root / "x")


def test_truncated_tars(tmp: Path) -> None:
    need_root()
    data = TarBuilder().file("a", b"x" * 5000).file("b", b"y" * 100).bytes()
    for cut in (600, 512 + 5000 // 2, len(data) - 1024 - 300, 700 + 5120):
        root = tmp / f"r{cut}"
        root.mkdir()
        with pytest.raises(LayerError):
            apply_layer(io.BytesIO(data[:cut]), root, "copy")
    gz = gzip.compress(data)
    root = tmp / "gz"
    root.mkdir()
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(gz[: len(gz) // 2]), root, "copy")


def test_garbage_is_not_a_tar(tmp: Path) -> None:
    need_root()
    root = tmp / "r"
    root.mkdir()
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(b"this is not a tar archive" * 40), root, "copy")


@pytest.mark.parametrize("name", ["symlink-abs-parent", "symlink-parent", "hardlink-out"])
def test_failed_register_leaves_no_snapshot_or_blob(env: Env, tmp: Path, name: str) -> None:
    before_blobs = list(env.content.walk())
    with pytest.raises(InvalidParameter):
        env.store.register_layer(io.BytesIO(_escape_tars()[name]), None)
    assert env.snapshotter.list() == []
    assert list(env.content.walk()) == before_blobs
    assert list((tmp / "tmp").iterdir()) == []


def test_diff_id_mismatch_is_refused(env: Env) -> None:
    data = TarBuilder().file("a", b"1").bytes()
    with pytest.raises(InvalidParameter, match="invalid diffID"):
        env.store.register_layer(io.BytesIO(data), None, expected_diff_id="sha256:" + "0" * 64)
    assert env.snapshotter.list() == []


def test_same_layer_twice_is_stored_once(env: Env) -> None:
    data = TarBuilder().file("a", b"1").bytes()
    a = env.store.register_layer(io.BytesIO(data), None)
    b = env.store.register_layer(io.BytesIO(data), None)
    assert a == b
    assert [i.key for i in env.snapshotter.list()] == [a.chain_id]
    assert env.content.read_bytes(a.diff_id) == data


@pytest.mark.parametrize("mode", ["overlay", "copy"])
def test_overlay_xattrs_in_a_layer_are_ignored(tmp: Path, mode: str) -> None:
    need_root()
    root = tmp / "root"
    root.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("d")
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y",
                            "SCHILY.xattr.trusted.overlay.redirect": "/etc", "SCHILY.xattr.user.keep": "k"}
        t.addfile(info)
    apply_layer(io.BytesIO(buf.getvalue()), root, mode)
    assert os.listxattr(root / "d") == ["user.keep"]
