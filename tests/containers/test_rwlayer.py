"""Container changes (docker diff) and commit layers from overlay-format directories.

The trees are built by hand in the overlay format (whiteouts are 0/0 character
devices, opaque directories carry trusted.overlay.opaque=y), so this needs root
but no mount."""
from __future__ import annotations

import io
import os
import stat
import struct
import tarfile
from pathlib import Path

import pytest

from engine.containers.rwlayer import KIND_ADD, KIND_DELETE, KIND_MODIFY, Change, RWLayer
from engine.errors import EngineError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and trusted xattrs need root")


def _file(root: Path, rel: str, data: bytes = b"x", mode: int = 0o644) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    p.chmod(mode)


def _whiteout(root: Path, rel: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(p, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def _opaque(root: Path, rel: str) -> None:
    p = root / rel
    p.mkdir(parents=True, exist_ok=True)
    os.setxattr(p, "trusted.overlay.opaque", b"y")


@pytest.fixture
def layers(tmp_path: Path) -> tuple[Path, Path, Path]:
    base, mid, upper = tmp_path / "base", tmp_path / "mid", tmp_path / "upper"
    for d in (base, mid, upper):
        d.mkdir()
    for rel in ("bin/ls", "bin/sh", "etc/passwd", "etc/group", "usr/bin/a", "usr/sbin/b", "opt/old/f"):
        _file(base, rel)
    (base / "proc").mkdir()
    _whiteout(mid, "etc/group")     # deleted by an image layer already
    _opaque(mid, "opt")             # the image replaced /opt wholesale
    _file(mid, "opt/new")
    return base, mid, upper


def _changes(upper: Path, mid: Path, base: Path) -> list[tuple[str, int]]:
    return [(c.path, c.kind) for c in RWLayer(upper, [mid, base]).changes()]


def test_untouched_upper_has_no_changes(layers: tuple[Path, Path, Path]) -> None:
    base, mid, upper = layers
    assert RWLayer(upper, [mid, base]).changes() == []


def test_runtime_mount_points_are_not_changes(layers: tuple[Path, Path, Path]) -> None:
    base, mid, upper = layers
    for rel in ("etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv", "dev/console"):
        _file(upper, rel, b"")
    (upper / "dev" / "pts").mkdir()
    (upper / "proc").mkdir()
    (upper / "sys").mkdir()
    assert _changes(upper, mid, base) == []
    _file(upper, "dev/extra", b"")  # anything else under /dev is a change
    assert _changes(upper, mid, base) == [("/dev", KIND_MODIFY), ("/dev/extra", KIND_ADD)]


def test_adds_modifies_deletes_sorted_parent_first(layers: tuple[Path, Path, Path]) -> None:
    base, mid, upper = layers
    _file(upper, "etc/passwd", b"changed")
    _whiteout(upper, "bin/ls")
    _file(upper, "root/x/f")
    _file(upper, "etc/group")  # deleted below, so it is new again
    assert _changes(upper, mid, base) == [
        ("/bin", KIND_MODIFY), ("/bin/ls", KIND_DELETE),
        ("/etc", KIND_MODIFY), ("/etc/group", KIND_ADD), ("/etc/passwd", KIND_MODIFY),
        ("/root", KIND_ADD), ("/root/x", KIND_ADD), ("/root/x/f", KIND_ADD),
    ]


def test_opaque_directory_lists_what_it_hides(layers: tuple[Path, Path, Path]) -> None:
    base, mid, upper = layers
    _opaque(upper, "usr")
    _file(upper, "usr/q")
    _opaque(upper, "opt")
    assert _changes(upper, mid, base) == [
        ("/opt", KIND_MODIFY), ("/opt/new", KIND_DELETE),   # /opt/old was already hidden by the image
        ("/usr", KIND_MODIFY), ("/usr/bin", KIND_DELETE), ("/usr/q", KIND_ADD), ("/usr/sbin", KIND_DELETE),
    ]


def test_whiteout_of_something_absent_is_ignored(layers: tuple[Path, Path, Path]) -> None:
    base, mid, upper = layers
    _whiteout(upper, "etc/group")   # already gone in the image
    _whiteout(upper, "opt/old")     # hidden by the image's opaque /opt
    assert _changes(upper, mid, base) == []


def test_mode_change_of_a_directory_is_a_change(layers: tuple[Path, Path, Path]) -> None:
    base, mid, upper = layers
    (upper / "bin").mkdir()
    (upper / "bin").chmod(0o700)
    assert _changes(upper, mid, base) == [("/bin", KIND_MODIFY)]


def test_layer_tar_uses_oci_whiteouts(layers: tuple[Path, Path, Path]) -> None:
    base, mid, upper = layers
    _whiteout(upper, "bin/ls")
    _opaque(upper, "usr")
    _file(upper, "usr/q", b"data")
    _file(upper, "etc/hosts", b"")  # a mount point: not in the layer
    buf = io.BytesIO()
    RWLayer(upper, [mid, base]).write_tar(buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert list(members) == ["bin", "bin/.wh.ls", "usr", "usr/.wh..wh..opq", "usr/q"]
        assert members["bin"].isdir() and members["bin/.wh.ls"].isreg()
        f = tar.extractfile("usr/q")
        assert f is not None and f.read() == b"data"


def test_full_tree_compare_for_the_copy_snapshotter(tmp_path: Path) -> None:
    parent, tree = tmp_path / "parent", tmp_path / "tree"
    for root in (parent, tree):
        _file(root, "bin/sh")
        _file(root, "etc/passwd", b"a")
        _file(root, "etc/group", b"g")
        (root / "proc").mkdir()
    os.utime(tree / "bin" / "sh", ns=(os.stat(parent / "bin" / "sh").st_atime_ns,
                                      os.stat(parent / "bin" / "sh").st_mtime_ns))
    os.utime(tree / "etc" / "group", ns=(os.stat(parent / "etc" / "group").st_atime_ns,
                                         os.stat(parent / "etc" / "group").st_mtime_ns))
    (tree / "etc" / "passwd").write_bytes(b"bb")
    (tree / "etc" / "group").unlink()
    _file(tree, "etc/hosts", b"")
    _file(tree, "new/f")
    layer = RWLayer(tree, [parent], full_tree=True)
    assert layer.changes() == [
        Change("/etc", KIND_MODIFY), Change("/etc/group", KIND_DELETE), Change("/etc/passwd", KIND_MODIFY),
        Change("/new", KIND_ADD), Change("/new/f", KIND_ADD),
    ]
    buf = io.BytesIO()
    layer.write_tar(buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert tar.getnames() == ["etc", "etc/.wh.group", "etc/passwd", "new", "new/f"]


def test_redirected_directories_are_refused_not_misread(layers: tuple[Path, Path, Path]) -> None:
    base, mid, upper = layers
    (upper / "usr2").mkdir()
    os.setxattr(upper / "usr2", "trusted.overlay.redirect", b"/usr")
    with pytest.raises(EngineError, match="redirect is not supported"):
        RWLayer(upper, [mid, base]).changes()


def test_sockets_are_left_out_of_the_layer_tar(layers: tuple[Path, Path, Path]) -> None:
    import socket
    base, mid, upper = layers
    (upper / "run").mkdir()
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(upper / "run" / "sock"))
        buf = io.BytesIO()
        RWLayer(upper, [mid, base]).write_tar(buf)
        with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
            assert tar.getnames() == ["run"]
    finally:
        s.close()


def test_file_capabilities_are_kept_in_the_layer(layers: tuple[Path, Path, Path]) -> None:
    base, mid, upper = layers
    _file(upper, "bin/ping", b"elf")
    # VFS_CAP_REVISION_2 with cap_net_raw permitted+effective.
    cap = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
    os.setxattr(upper / "bin" / "ping", "security.capability", cap)
    buf = io.BytesIO()
    RWLayer(upper, [mid, base]).write_tar(buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        m = tar.getmember("bin/ping")
        raw = m.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape")
        assert raw == cap
