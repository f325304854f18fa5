"""rmi by digest reference, parent chains (noprune, child conflicts), prune and list rules at the store."""
from __future__ import annotations

import hashlib
import io
import json

import pytest

from engine.errors import Conflict, InvalidParameter
from engine.images import reference as refs

from .conftest import Env, TarBuilder


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def no_users(_image_id: str) -> list[tuple[str, bool]]:
    return []


def make_image(env: Env, layers: list[bytes], *, parent: str = "", labels: dict[str, str] | None = None,
               created: str = "2020-01-01T00:00:00Z") -> str:
    chain: str | None = None
    for layer in layers:
        chain = env.store.register_layer(io.BytesIO(layer), chain).chain_id
    cfg = json.dumps({"os": "linux", "architecture": "amd64", "created": created,
                      "config": {"Labels": labels}, "rootfs": {"type": "layers",
                                                               "diff_ids": [_sha(l) for l in layers]}}).encode()
    return env.store.create_image(cfg, parent=parent)


def layer(name: str) -> bytes:
    return TarBuilder().file(name, name.encode() * 100).bytes()


def test_rmi_by_digest_reference(env: Env) -> None:
    image_id = make_image(env, [layer("a")])
    digest = "sha256:" + "d" * 64
    env.store._add_ref(refs.parse_normalized("repo:1"), image_id)
    env.store._add_ref(refs.parse_normalized(f"repo@{digest}"), image_id)
    img = env.store.get(f"repo@{digest}")
    assert img.id == image_id and img.repo_digests == (f"repo@{digest}",) and img.repo_tags == ("repo:1",)
    # the digest goes alone: the tag keeps the image
    assert env.store.remove(f"repo@{digest}", users=no_users) == [{"Untagged": f"repo@{digest}"}]
    env.store._add_ref(refs.parse_normalized(f"repo@{digest}"), image_id)
    # the last tag of a repository takes its digests along, then the image goes
    out = env.store.remove("repo:1", users=no_users)
    assert out[:3] == [{"Untagged": "repo:1"}, {"Untagged": f"repo@{digest}"}, {"Deleted": image_id}]
    with pytest.raises(InvalidParameter):
        env.store.remove("repo@sha256:short", users=no_users)


def test_parent_chain_noprune_and_child_conflict(env: Env) -> None:
    parent = make_image(env, [layer("a")])
    child = make_image(env, [layer("a"), layer("b")], parent=parent)
    env.store._add_ref(refs.parse_normalized("child:1"), child)
    with pytest.raises(Conflict, match=r"\(cannot be forced\) - image has dependent child images"):
        env.store.remove(parent, force=True, users=no_users)
    # untagged parents of a deleted image go with it, unless noprune
    out = env.store.remove("child:1", noprune=True, users=no_users)
    assert {"Deleted": child} in out and {"Deleted": parent} not in out
    assert env.store.get(parent).id == parent
    child2 = make_image(env, [layer("a"), layer("c")], parent=parent)
    env.store._add_ref(refs.parse_normalized("child:2"), child2)
    out = env.store.remove("child:2", users=no_users)
    deleted = [o["Deleted"] for o in out if "Deleted" in o]
    assert deleted.index(child2) < deleted.index(parent)
    assert env.store.list() == []


def test_list_hides_untagged_parents_unless_all(env: Env) -> None:
    parent = make_image(env, [layer("a")])
    child = make_image(env, [layer("a"), layer("b")], parent=parent)
    env.store._add_ref(refs.parse_normalized("child:1"), child)
    assert [r.image.id for r in env.store.list_filtered({})] == [child]
    assert {r.image.id for r in env.store.list_filtered({}, all_=True)} == {child, parent}
    # a parent is not dangling
    assert [r.image.id for r in env.store.list_filtered({"dangling": ["true"]}, all_=True)] == [parent]
    assert [r.image.id for r in env.store.list_filtered({"dangling": ["true"]})] == []


def test_prune_rules(env: Env) -> None:
    used = make_image(env, [layer("u")], labels={"k": "v"}, created="2020-01-01T00:00:00Z")
    dangling = make_image(env, [layer("d")], labels={"k": "v"}, created="2020-01-02T00:00:00Z")
    tagged = make_image(env, [layer("t")], labels={"k": "w"}, created="2020-01-03T00:00:00Z")
    env.store._add_ref(refs.parse_normalized("tagged:1"), tagged)

    def users(image_id: str) -> list[tuple[str, bool]]:
        return [("c" * 64, False)] if image_id == used else []
    report = env.store.prune({}, users)
    assert next(d for d in report.deleted if "Deleted" in d) == {"Deleted": dangling}
    assert report.space_reclaimed == 100
    report = env.store.prune({"dangling": ["false"], "label!": ["k=w"]}, users)
    assert report.deleted == ()
    report = env.store.prune({"dangling": ["0"], "until": ["2020-01-05T00:00:00Z"]}, users)
    assert report.deleted[:2] == ({"Untagged": "tagged:1"}, {"Deleted": tagged})
    assert [i.id for i in env.store.list()] == [used]
    with pytest.raises(InvalidParameter, match="invalid filter 'reference'"):
        env.store.prune({"reference": ["x"]}, users)


def test_parent_links_survive_save_and_load(env: Env) -> None:
    from engine.errors import EngineError
    hist1 = [{"created_by": "base"}]
    l0, l1 = layer("p0"), layer("p1")
    env.store.register_layer(io.BytesIO(l0), None)
    cfg_p = json.dumps({"os": "linux", "history": hist1, "rootfs": {"type": "layers", "diff_ids": [_sha(l0)]}})
    parent = env.store.create_image(cfg_p.encode())
    env.store.register_layer(io.BytesIO(l1), _sha(l0))
    cfg_c = json.dumps({"os": "linux", "history": hist1 + [{"created_by": "top"}],
                        "rootfs": {"type": "layers", "diff_ids": [_sha(l0), _sha(l1)]}})
    child = env.store.create_image(cfg_c.encode(), parent=parent)
    env.store._add_ref(refs.parse_normalized("chain:1"), child)
    out = io.BytesIO()
    env.store.save(["chain:1", parent], out)
    env.store.remove("chain:1", users=no_users)
    assert env.store.list() == []
    env.store.load(io.BytesIO(out.getvalue()))
    assert env.store.get("chain:1").parent == parent
    # an invalid parent (not a prefix) is refused like dockerd
    with pytest.raises(EngineError, match="is not a valid parent"):
        env.store.set_parent(parent, child)


def _blob_count(env: Env) -> int:
    return sum(1 for _ in env.content.walk())


def test_garbage_collection_of_layers_no_image_uses(env: Env) -> None:
    """Layers an ingest left without an image (a load killed between layers): prune spares
    those of an ingest still under way in this process; a restart's collection takes them all,
    keeps what images and containers use, and removes snapshots of containers that do not exist."""
    kept = make_image(env, [layer("a")])
    env.store._add_ref(refs.parse_normalized("kept:1"), kept)   # tagged: prune keeps it
    blobs = _blob_count(env)
    one = env.store.register_layer(io.BytesIO(layer("x")), None)
    env.store.register_layer(io.BytesIO(layer("y")), one.chain_id)
    env.store.prepare_rootfs("c" * 64, kept)            # a container that exists
    env.store.prepare_rootfs("d" * 64, kept)            # one whose record is gone
    env.store.prune({}, no_users)
    assert env.store._layer_exists(one.chain_id), "prune must spare the layers of an ingest under way"
    env = env.reopen()                                  # the daemon restarts: the ingest is over
    freed = env.store.collect_garbage(["c" * 64])
    assert freed > 0
    assert not env.store._layer_exists(one.chain_id)
    assert _blob_count(env) == blobs
    assert env.store.get(kept).id == kept
    assert env.snapshotter.exists("c" * 64) and not env.snapshotter.exists("d" * 64)
    assert env.store.collect_garbage(["c" * 64]) == 0
