"""Images move between pydockerd and the reference dockerd: `docker save` on one, `docker load`
and `docker run` on the other, in both directions, with every kind of file metadata a layer can
carry (modes with setuid/sticky, ownership, mtimes, hard links, symlinks, devices, fifos, xattrs,
whiteouts and opaque directories).  Also `docker save -o` of several images and `docker load -i`.

A private peer daemon of the other kind is started next to the session daemon.
"""
from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.image_archives import ImageSpec, layer_tar, sha256, write_archive
from conformance_tests.peer import make_peer
from conformance_tests.util import inspect, ok

MTIME = 1234567890
# security.capability (VFS_CAP_REVISION_2, effective): cap_net_bind_service permitted
CAPS = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


@pytest.fixture(scope="module")
def peer(daemon: Daemon) -> Iterator[Daemon]:
    if not daemon.private:
        pytest.skip("needs a private session daemon to start a peer of the other kind")
    d = make_peer(daemon)
    try:
        yield d
    finally:
        d.teardown()


def _info(name: str, type_: bytes, mode: int, uid: int = 0, gid: int = 0, **kw: Any) -> tarfile.TarInfo:
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.uid, i.gid, i.mtime = type_, mode, uid, gid, MTIME
    for k, v in kw.items():
        setattr(i, k, v)
    return i


def fidelity_layers(key: str) -> tuple[bytes, bytes]:
    def lower(tar: tarfile.TarFile) -> None:
        for d, mode in (("f", 0o755), ("f/sticky", 0o1777), ("d", 0o755), ("opq", 0o755)):
            tar.addfile(_info(d, tarfile.DIRTYPE, mode))
        for name, mode, uid, gid in (("f/setuid", 0o4755, 0, 0), ("f/owned", 0o640, 1234, 5678),
                                     ("f/hard1", 0o644, 0, 0), ("d/gone", 0o644, 0, 0), ("d/keep", 0o644, 0, 0),
                                     ("opq/x", 0o644, 0, 0)):
            data = f"{name} {key}\n".encode()
            tar.addfile(_info(name, tarfile.REGTYPE, mode, uid, gid, size=len(data)), io.BytesIO(data))
        tar.addfile(_info("f/hard2", tarfile.LNKTYPE, 0o644, linkname="f/hard1"))
        tar.addfile(_info("f/link", tarfile.SYMTYPE, 0o777, linkname="setuid"))
        tar.addfile(_info("f/fifo", tarfile.FIFOTYPE, 0o600))
        tar.addfile(_info("f/chr", tarfile.CHRTYPE, 0o600, devmajor=1, devminor=3))
        tar.addfile(_info("f/blk", tarfile.BLKTYPE, 0o600, devmajor=7, devminor=0))

    def upper(tar: tarfile.TarFile) -> None:
        tar.addfile(_info("d", tarfile.DIRTYPE, 0o755))
        tar.addfile(_info("d/.wh.gone", tarfile.REGTYPE, 0o644))
        tar.addfile(_info("opq", tarfile.DIRTYPE, 0o755))
        tar.addfile(_info("opq/.wh..wh..opq", tarfile.REGTYPE, 0o644))
        data = b"new\n"
        tar.addfile(_info("opq/new", tarfile.REGTYPE, 0o644, size=len(data)), io.BytesIO(data))
        tar.addfile(_info("x", tarfile.DIRTYPE, 0o755))
        attrs = _info("x/attrs", tarfile.REGTYPE, 0o755, size=len(data))
        attrs.pax_headers = {"SCHILY.xattr.user.test": "hello",
                             "SCHILY.xattr.security.capability": CAPS.decode("utf-8", "surrogateescape")}
        tar.addfile(attrs, io.BytesIO(data))

    return layer_tar({}, extra=lower), layer_tar({}, extra=upper)


SCRIPT = (
    'for f in /f/setuid /f/owned /f/hard1 /f/hard2 /f/link /f/fifo /f/chr /f/blk /x/attrs; do '
    'stat -c "%n|%a|%u|%g|%Y|%F|%t|%T|%h" $f; done; stat -c "%n|%a" /f/sticky; '
    'stat -c "%i" /f/hard1 /f/hard2; ls /d; echo --; ls /opq; echo --; cat /f/hard2'
)


def expected_listing(key: str) -> list[str]:
    return [
        f"/f/setuid|4755|0|0|{MTIME}|regular file|0|0|1",
        f"/f/owned|640|1234|5678|{MTIME}|regular file|0|0|1",
        f"/f/hard1|644|0|0|{MTIME}|regular file|0|0|2",
        f"/f/hard2|644|0|0|{MTIME}|regular file|0|0|2",
        f"/f/link|777|0|0|{MTIME}|symbolic link|0|0|1",
        f"/f/fifo|600|0|0|{MTIME}|fifo|0|0|1",
        f"/f/chr|600|0|0|{MTIME}|character special file|1|3|1",
        f"/f/blk|600|0|0|{MTIME}|block special file|7|0|1",
        f"/x/attrs|755|0|0|{MTIME}|regular file|0|0|1",
        "/f/sticky|1777",
    ]


def check_container_view(d: Daemon, ref: str, key: str) -> None:
    out = ok(d.cli("run", "--rm", "--network", "none", ref, "sh", "-c", SCRIPT, timeout=120)).splitlines()
    assert out[:10] == expected_listing(key), f"{d.kind}: {out}"
    assert out[10] == out[11], f"{d.kind}: hard links share an inode: {out[10:12]}"
    assert out[12:] == ["keep", "--", "new", "--", f"f/hard1 {key}"], f"{d.kind}: {out[12:]}"


def check_xattrs(d: Daemon, ref: str) -> None:
    """The top layer's directory on the host keeps user.* and security.capability."""
    upper = inspect(d, ref, "image")["GraphDriver"]["Data"]["UpperDir"]
    path = os.path.join(upper, "x", "attrs")
    assert os.getxattr(path, "user.test") == b"hello", d.kind
    assert os.getxattr(path, "security.capability") == CAPS, d.kind


def save(d: Daemon, dest: Path, *refs: str) -> Path:
    ok(d.cli("save", "-o", str(dest), *refs, timeout=120))
    return dest


def test_roundtrip_both_directions(daemon: Daemon, peer: Daemon, busybox: str) -> None:
    key = f"conf-rt-{uuid.uuid4().hex[:8]}"
    ref = f"{key}:v1"
    base = (daemon.root / "busybox-rootfs.tar").read_bytes()
    lower, upper = fidelity_layers(key)
    spec = ImageSpec([base, lower, upper], tags=[ref], cmd=["sh"])
    ok(daemon.cli("load", "-i", str(write_archive(daemon.root / f"{key}.tar", [spec]))))
    try:
        img = inspect(daemon, ref, "image")
        assert img["Id"] == spec.image_id
        check_container_view(daemon, ref, key)
        check_xattrs(daemon, ref)

        # session daemon -> peer
        out = ok(peer.cli("load", "-i", str(save(daemon, daemon.root / f"{key}-1.tar", ref))))
        assert out.strip() == f"Loaded image: {ref}"
        on_peer = inspect(peer, ref, "image")
        assert on_peer["Id"] == spec.image_id
        assert on_peer["RootFS"]["Layers"] == [sha256(base), sha256(lower), sha256(upper)]
        assert on_peer["Size"] == img["Size"]
        check_container_view(peer, ref, key)
        check_xattrs(peer, ref)

        # peer -> session daemon, which forgot the image first
        saved = save(peer, daemon.root / f"{key}-2.tar", ref)
        ok(daemon.cli("rmi", ref))
        out = ok(daemon.cli("load", "-i", str(saved)))
        assert out.strip() == f"Loaded image: {ref}"
        assert inspect(daemon, ref, "image")["Id"] == spec.image_id
        check_container_view(daemon, ref, key)
        check_xattrs(daemon, ref)
        # the layer tars come back byte for byte: the same diff IDs, checked by the loader
        with tarfile.open(saved) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == [ref]
    finally:
        daemon.cli("rmi", "-f", ref)
        peer.cli("rmi", "-f", ref)


def test_save_several_images_and_load_them_on_the_peer(daemon: Daemon, peer: Daemon) -> None:
    key = f"conf-multi-{uuid.uuid4().hex[:8]}"
    shared = layer_tar({"shared": key.encode() * 10})
    a = ImageSpec([shared, layer_tar({"a": b"a"})], tags=[f"{key}/a:1", f"{key}/a:2"])
    b = ImageSpec([shared, layer_tar({"b": b"b"})], tags=[f"{key}/b:1"])
    c = ImageSpec([layer_tar({"c": key.encode()})])  # untagged: saved by ID
    ok(daemon.cli("load", "-q", "-i", str(write_archive(daemon.root / f"{key}.tar", [a, b, c]))))
    try:
        saved = save(daemon, daemon.root / f"{key}-multi.tar", f"{key}/a", f"{key}/b:1", c.image_id)
        with tarfile.open(saved) as tar:
            names = set(tar.getnames())
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            repositories = json.load(tar.extractfile("repositories"))  # type: ignore[arg-type]
            for entry in manifest:
                for layer in entry["Layers"]:
                    assert layer in names, layer
        by_config = {entry["Config"]: entry for entry in manifest}
        assert len(manifest) == 3
        tags = sorted(t for e in manifest for t in (e["RepoTags"] or []))
        assert tags == [f"{key}/a:1", f"{key}/a:2", f"{key}/b:1"]
        assert next(e for e in manifest if not e["RepoTags"])["Config"] in by_config
        assert sorted(repositories) == [f"{key}/a", f"{key}/b"]
        assert sorted(repositories[f"{key}/a"]) == ["1", "2"]

        for target in (peer, daemon):
            for spec in (a, b, c):
                target.cli("rmi", "-f", spec.image_id)
            out = ok(target.cli("load", "-i", str(saved))).splitlines()
            tagged = [line for line in out if line.startswith("Loaded image: ")]
            assert sorted(tagged) == [f"Loaded image: {key}/a:1", f"Loaded image: {key}/a:2",
                                      f"Loaded image: {key}/b:1"], out
            # dockerd lists every image's ID when the archive's last image has no tag (and dockerd
            # 20.10 writes the images in random order)
            ids = sorted(line for line in out if line not in tagged)
            last_untagged = not manifest[-1]["RepoTags"]
            assert ids == (sorted(f"Loaded image ID: {s.image_id}" for s in (a, b, c)) if last_untagged else []), out
            assert inspect(target, f"{key}/a:2", "image")["Id"] == a.image_id
            assert inspect(target, c.image_id, "image")["RepoTags"] == []
    finally:
        for target in (daemon, peer):
            for spec in (a, b, c):
                target.cli("rmi", "-f", spec.image_id)


def test_container_changes_committed_then_moved_to_the_peer(daemon: Daemon, peer: Daemon, busybox: str,
                                                            name: str) -> None:
    """load -> container -> commit -> save -> load on the peer -> run: the loaded metadata and the
    container's own changes (a new file, a deletion) both arrive."""
    key = f"conf-rtc-{uuid.uuid4().hex[:8]}"
    ref, committed = f"{key}:v1", f"{key}:committed"
    base = (daemon.root / "busybox-rootfs.tar").read_bytes()
    lower, upper = fidelity_layers(key)
    spec = ImageSpec([base, lower, upper], tags=[ref], cmd=["sh"])
    ok(daemon.cli("load", "-q", "-i", str(write_archive(daemon.root / f"{key}.tar", [spec]))))
    try:
        ok(daemon.cli("run", "--name", name, "--network", "none", ref, "sh", "-c",
                      "echo changed > /f/new && rm /f/owned", timeout=120))
        ok(daemon.cli("commit", name, committed))
        saved = save(daemon, daemon.root / f"{key}-c.tar", committed)
        ok(peer.cli("load", "-q", "-i", str(saved)))
        out = ok(peer.cli("run", "--rm", "--network", "none", committed, "sh", "-c",
                          "cat /f/new; ls /f; stat -c '%n|%a|%u|%g|%Y' /f/setuid /f/hard2", timeout=120)).splitlines()
        assert out[0] == "changed"
        listing = out[1:-2]
        assert "new" in listing and "owned" not in listing and "setuid" in listing, listing
        assert out[-2:] == [f"/f/setuid|4755|0|0|{MTIME}", f"/f/hard2|644|0|0|{MTIME}"]
    finally:
        daemon.cli("rm", "-f", name)
        for d in (daemon, peer):
            d.cli("rmi", "-f", committed)
            d.cli("rmi", "-f", ref)
