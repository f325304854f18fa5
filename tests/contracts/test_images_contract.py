"""The ImageCatalog contract (engine/images/api.py): the SQLite image store and the fake."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.content.store import ContentStore
from engine.errors import InvalidParameter, NotFound
from engine.images.api import ImageCatalog
from engine.images.store import ImageStore
from engine.snapshots import make_snapshotter
from engine.state import Database
from engine.testing.images import FakeImageCatalog


@pytest.fixture(params=["store", "fake"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ImageCatalog]:
    if request.param == "fake":
        yield FakeImageCatalog()
        return
    db = Database(tmp_path / "db.sqlite")
    try:
        yield ImageStore(db, ContentStore(tmp_path / "content", tmp_path / "tmp"),
                         make_snapshotter("vfs", tmp_path / "vfs", db), tmp_path / "tmp")
    finally:
        db.close()


def config(cmd: str = "sh", **extra: object) -> bytes:
    doc = {"architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05Z",
           "config": {"Cmd": [cmd]}, "rootfs": {"type": "layers", "diff_ids": []}, **extra}
    return json.dumps(doc).encode()


def test_implements_the_protocol(catalog: ImageCatalog) -> None:
    assert isinstance(catalog, ImageCatalog)


def test_the_id_is_the_config_digest_and_lookups_by_id(catalog: ImageCatalog) -> None:
    raw = config()
    image_id = catalog.create_image(raw)
    assert image_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert catalog.create_image(raw) == image_id            # same bytes, same image
    hexpart = image_id[len("sha256:"):]
    for ref in (image_id, hexpart, hexpart[:12], "sha256:" + hexpart[:12]):
        assert catalog.get(ref).id == image_id
    image = catalog.get(image_id)
    assert (image.os, image.architecture, image.created) == ("linux", "amd64", "2026-01-02T03:04:05Z")
    assert image.config["config"]["Cmd"] == ["sh"]
    assert image.repo_tags == () and image.diff_ids == () and image.top_chain_id is None
    assert [i.id for i in catalog.list()] == [image_id]


def test_bad_configs_are_refused(catalog: ImageCatalog) -> None:
    with pytest.raises(InvalidParameter, match="invalid image config"):
        catalog.create_image(b"{not json")
    missing = "sha256:" + "ab" * 32
    with pytest.raises(InvalidParameter, match=f"references a layer that is not present: {missing}"):
        catalog.create_image(config(rootfs={"type": "layers", "diff_ids": [missing]}))
    assert catalog.list() == []


def test_tags_are_normalised_and_can_move(catalog: ImageCatalog) -> None:
    first = catalog.create_image(config("one"))
    second = catalog.create_image(config("two"))
    assert catalog.tag(first, "busybox") == (first, "busybox:latest")
    assert catalog.tag(first, "localhost:5000/team/app", "v1") == (first, "localhost:5000/team/app:v1")
    for name in ("busybox", "busybox:latest", "docker.io/library/busybox", "library/busybox:latest"):
        assert catalog.get(name).id == first
    assert catalog.get(first).repo_tags == ("busybox:latest", "localhost:5000/team/app:v1")
    assert [str(r) for r in catalog.references(first)] == ["docker.io/library/busybox:latest",
                                                           "localhost:5000/team/app:v1"]
    catalog.tag(second, "busybox:latest")                  # the name moves to the other image
    assert catalog.get("busybox").id == second
    assert catalog.get(first).repo_tags == ("localhost:5000/team/app:v1",)


def test_tag_rules(catalog: ImageCatalog) -> None:
    image_id = catalog.create_image(config())
    with pytest.raises(InvalidParameter, match="refusing to create a tag with a digest reference"):
        catalog.tag(image_id, "busybox@sha256:" + "cd" * 32)
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        catalog.tag(image_id, "BusyBox")
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        catalog.tag("nope", "other")


def test_untag_and_not_found_words(catalog: ImageCatalog) -> None:
    image_id = catalog.create_image(config())
    catalog.tag(image_id, "app", "1")
    assert catalog.untag("app:1") == "app:1"
    with pytest.raises(NotFound, match="No such image: app:1"):
        catalog.untag("app:1")
    assert catalog.exists(image_id) and not catalog.exists("app:1")
    assert not catalog.exists("Not A Reference")
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        catalog.get("nope")
    unknown = "ef" * 32
    with pytest.raises(NotFound, match=f"No such image: sha256:{unknown}"):
        catalog.get(unknown)


def test_parents(catalog: ImageCatalog) -> None:
    base = catalog.create_image(config("base"))
    child = catalog.create_image(config("child"), parent=base)
    assert catalog.children(base) == [child]
    assert catalog.get(child).parent == base
    assert catalog.children(child) == []
