"""The RootfsImages contract (engine/images/api.py): what the container service uses to
give a container its root filesystem.  Real: the engine's image store + the overlay2 and
vfs snapshotters (mounts: needs root); fake: FakeRootfsImages."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.content.store import ContentStore
from engine.engine import _RootfsImages
from engine.errors import NotFound
from engine.images.api import RootfsImages
from engine.images.store import ImageStore
from engine.snapshots import make_snapshotter
from engine.snapshots.mount import is_mounted
from engine.state import Database
from engine.testing.rootfs import FakeRootfsImages

PASSWD = "root:x:0:0:root:/root:/bin/sh\n"


@dataclass
class Subject:
    images: RootfsImages
    ref: str
    image_id: str


def _layer_with_passwd() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        d = tarfile.TarInfo("etc")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(d)
        data = PASSWD.encode()
        f = tarfile.TarInfo("etc/passwd")
        f.size, f.mode = len(data), 0o644
        tar.addfile(f, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(params=["overlay2", "vfs", "fake"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param == "fake":
        fake = FakeRootfsImages()
        image = fake.add("app")
        yield Subject(fake, "app", image.id)
        return
    if os.geteuid() != 0:
        pytest.fail("the image store's rootfs contract needs root (bind mounts)")
    db = Database(tmp_path / "db.sqlite")
    snapshotter = make_snapshotter(request.param, tmp_path / request.param, db)
    store = ImageStore(db, ContentStore(tmp_path / "content", tmp_path / "tmp"), snapshotter, tmp_path / "tmp")
    tar = _layer_with_passwd()
    layer = store.register_layer(io.BytesIO(tar), None)
    assert layer.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    image_id = store.create_image(json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}).encode())
    store.tag(image_id, "app")
    try:
        yield Subject(_RootfsImages(store, snapshotter), "app", image_id)
    finally:
        with open("/proc/self/mountinfo") as f:
            leftover = [line.split()[4] for line in f if line.split()[4].startswith(str(tmp_path))]
        for m in leftover:
            subprocess.run(["umount", "-l", m], check=False)
        db.close()
        assert leftover == []


def test_implements_the_protocol(subject: Subject) -> None:
    assert isinstance(subject.images, RootfsImages)


def test_lookup(subject: Subject) -> None:
    assert subject.images.get(subject.ref).id == subject.image_id
    assert subject.images.get(subject.image_id).id == subject.image_id
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        subject.images.get("nope")


def test_prepare_mount_unmount_remove(subject: Subject, tmp_path: Path) -> None:
    images, key = subject.images, "c" * 64
    target = tmp_path / "bundle" / "rootfs"
    target.mkdir(parents=True)
    images.prepare_rootfs(key, subject.image_id)
    images.mount_rootfs(key, target)
    try:
        assert (target / "etc" / "passwd").read_text().startswith(PASSWD)
        (target / "written").write_text("kept\n")
    finally:
        images.unmount_rootfs(key, target)
    assert not (target / "etc" / "passwd").exists()
    images.unmount_rootfs(key, target)              # idempotent
    images.mount_rootfs(key, target)                # the container's changes are kept between runs
    try:
        assert (target / "written").read_text() == "kept\n"
    finally:
        images.unmount_rootfs(key, target)
    assert not is_mounted(str(target))
    images.remove_rootfs(key)
    images.remove_rootfs(key)                       # gone already: nothing to do
