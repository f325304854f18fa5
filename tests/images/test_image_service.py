"""ImageService: the events each image verb publishes, the history walk of the parent chain and
the `ancestor` family, over the real store."""
from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

from engine.images.service import ImageService

from .conftest import Env, TarBuilder
from .test_remove_prune import _sha, layer, make_image


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict[str, str]]] = []

    def publish_action(self, type_: str, action: str, actor_id: str, attributes: dict[str, str]) -> None:
        self.events.append((type_, action, actor_id, dict(attributes)))


def service(env: Env, events: Recorder, users: dict[str, list[tuple[str, bool]]] | None = None) -> ImageService:
    table = users or {}
    return ImageService(env.store, events, lambda image_id: table.get(image_id, []), env.root,
                        env.snapshotter.describe, "overlay2")


def test_tag_then_rmi_publish_dockerds_image_events(env: Env) -> None:
    events = Recorder()
    svc = service(env, events)
    image_id = make_image(env, [layer("a")], labels={"team": "x"})
    svc.tag(image_id, "repo", "1")
    svc.tag(image_id, "repo", "2")
    assert events.events == [("image", "tag", image_id, {"team": "x", "name": "repo:1"}),
                             ("image", "tag", image_id, {"team": "x", "name": "repo:2"})]
    events.events.clear()
    assert svc.remove("repo:1", force=False, noprune=False) == [{"Untagged": "repo:1"}]
    assert events.events == [("image", "untag", image_id, {"team": "x", "name": image_id})]
    events.events.clear()
    out = svc.remove("repo:2", force=False, noprune=False)
    assert out[0] == {"Untagged": "repo:2"} and {"Deleted": image_id} in out
    # untag names the image (with its labels, taken before the delete), then the delete
    assert events.events == [("image", "untag", image_id, {"team": "x", "name": image_id}),
                             ("image", "delete", image_id, {"name": image_id})]


def test_prune_publishes_deletes_then_prune_with_the_space(env: Env) -> None:
    events = Recorder()
    svc = service(env, events)
    image_id = make_image(env, [layer("a")])
    report = svc.prune({})
    assert {"Deleted": image_id} in report.deleted
    assert events.events[0] == ("image", "delete", image_id, {"name": image_id})
    assert events.events[-1] == ("image", "prune", "", {"reclaimed": str(report.space_reclaimed)})


def test_history_names_the_parent_chain_and_leaves_the_rest_missing(env: Env) -> None:
    svc = service(env, Recorder())
    a, b = layer("a"), layer("b")
    base = make_image(env, [a])
    chain = None
    for data in (a, b):
        chain = env.store.register_layer(io.BytesIO(data), chain).chain_id
    cfg = {"os": "linux", "architecture": "amd64", "created": "2021-01-01T00:00:00Z", "config": {},
           "rootfs": {"type": "layers", "diff_ids": [_sha(a), _sha(b)]},
           "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "ADD a"},
                       {"created": "2020-06-01T00:00:00Z", "created_by": "ENV x=1", "empty_layer": True},
                       {"created": "2021-01-01T00:00:00Z", "created_by": "ADD b", "comment": "c"}]}
    child = env.store.create_image(json.dumps(cfg).encode(), parent=base)
    env.store.tag(child, "child", "1")
    entries = svc.history("child:1")
    assert [e.created_by for e in entries] == ["ADD b", "ENV x=1", "ADD a"]
    assert [e.id for e in entries] == [child, base, "<missing>"]
    assert entries[0].tags == ("child:1",) and entries[2].tags == ()
    assert entries[1].size == 0 and entries[0].size > 0 and entries[0].comment == "c"
    assert entries[2].created_unix == 1577836800


def test_family_is_the_image_and_everything_built_on_it(env: Env) -> None:
    svc = service(env, Recorder())
    base = make_image(env, [layer("a")])
    child = make_image(env, [layer("a"), layer("b")], parent=base)
    other = make_image(env, [layer("c")])
    assert svc.family(base) == {base, child}
    assert svc.family(child) == {child}
    assert other not in svc.family(base)
    assert svc.family("no-such-image") == set()


def test_import_upload_spools_imports_and_publishes_tag_then_import(env: Env) -> None:
    events = Recorder()
    svc = service(env, events)
    data = TarBuilder().file("hello", b"hi").bytes()

    async def upload() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]

    image_id = asyncio.run(svc.import_upload(upload(), repo_tag="imported", changes=[], message=""))
    assert [e[1] for e in events.events] == ["tag", "import"]
    assert events.events[0][3]["name"] == "imported:latest"
    assert not list(Path(env.root).glob("upload-*")), "the spooled upload is removed"
    assert env.store.get("imported").id == image_id
