"""The image store: import, load (dockerd's own archives), save, lookups, tags and rmi."""
from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from engine.errors import Conflict, InvalidParameter, NotFound
from engine.images.store import chain_ids

from .conftest import Env, TarBuilder, busybox_rootfs_tar, make_env
from .test_snapshots import Mounted

DATA = Path(__file__).parent / "data"
TINY = "sha256:75543bc7c539f48e9872e05ed5cbf9e8393b7dc32c63519f961be0b58014b3ce"
TINY2 = "sha256:b710ce9a060ff47c895ad46251abcf86685a553a7aae06d191549381de88fd9b"


def load_saved(env: Env, quiet: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    msgs: list[dict[str, Any]] = []
    with open(DATA / "dockerd-20.10-save.tar", "rb") as f:
        names = env.store.load(f, progress=msgs.append, quiet=quiet)
    return names, msgs


def no_users(_image_id: str) -> list[tuple[str, bool]]:
    return []


# --- import -----------------------------------------------------------------------

def test_import_busybox_and_run_it(env: Env, tmp: Path) -> None:
    image_id = env.store.import_tar(io.BytesIO(busybox_rootfs_tar()), repo_tag="busybox:latest",
                                    changes=['CMD ["sh"]', "ENV A=1 B=two", "WORKDIR /root", "LABEL x=y"],
                                    message="")
    img = env.store.get("busybox")
    assert img.id == image_id and img.repo_tags == ("busybox:latest",)
    cfg = img.config
    assert cfg["config"]["Cmd"] == ["sh"] and cfg["config"]["Env"] == ["A=1", "B=two"]
    assert cfg["config"]["WorkingDir"] == "/root" and cfg["config"]["Labels"] == {"x": "y"}
    assert cfg["comment"] == "Imported from -" and cfg["history"] == [{"created": cfg["created"],
                                                                       "comment": "Imported from -"}]
    assert cfg["os"] == "linux" and cfg["architecture"] and img.top_chain_id == img.diff_ids[0]
    # The ID is the hash of the stored config bytes.
    raw = env.content.read_bytes(image_id)
    assert image_id == "sha256:" + __import__("hashlib").sha256(raw).hexdigest()
    assert img.size == os.path.getsize("/bin/busybox") + sum(len("busybox") for _ in range(4)) + \
        len(b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    assert img.last_tag_time
    # A container rootfs from it runs busybox.
    mounts = env.store.prepare_rootfs("ctr1", image_id)
    assert mounts == env.snapshotter.mounts("ctr1")
    target = tmp / "mnt"
    target.mkdir()
    with Mounted(env.snapshotter, "ctr1", target) as root:
        out = subprocess.run(["chroot", str(root), "/bin/sh", "-c", "echo hi > /tmp/x; cat /tmp/x; ls /bin"],
                             capture_output=True, text=True, check=True).stdout
        assert out.split()[:1] == ["hi"] and "busybox" in out
    env.store.remove_rootfs("ctr1")
    assert not env.snapshotter.exists("ctr1")
    assert env.snapshotter.exists(img.top_chain_id)


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_import_compressed(env: Env, compress: Any) -> None:
    data = (DATA / "tiny-rootfs.tar").read_bytes()
    image_id = env.store.import_tar(io.BytesIO(compress(data)), repo_tag=None, changes=[], message="msg")
    img = env.store.get(image_id)
    assert img.repo_tags == () and img.comment == "msg"
    # Same layer as dockerd computed for this tar.
    assert img.diff_ids == ("sha256:22da51acd51eba078176ae7a060cad76bc3071e110bd29ec4c110feeafae4581",)
    assert img.size == 37  # what dockerd reports for it
    assert img.config["config"]["Cmd"] is None


def test_import_errors(env: Env) -> None:
    with pytest.raises(InvalidParameter, match="run is not a valid change command"):
        env.store.import_tar(io.BytesIO(b""), repo_tag=None, changes=["RUN echo"], message="")
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        env.store.import_tar(io.BytesIO(b""), repo_tag="Bad:Name", changes=[], message="")
    with pytest.raises(InvalidParameter):
        env.store.import_tar(io.BytesIO(b"garbage" * 200), repo_tag="x", changes=[], message="")
    assert env.store.list() == [] and env.snapshotter.list() == []


# --- load ---------------------------------------------------------------------------

def test_load_dockerd_archive(env: Env, tmp: Path) -> None:
    names, msgs = load_saved(env)
    assert names == ["tiny:latest", "tiny2:v1"]
    streams = [m["stream"] for m in msgs if "stream" in m]
    assert streams == ["Loaded image: tiny:latest\n", "Loaded image: tiny2:v1\n"]
    progress = [m for m in msgs if "status" in m]
    assert progress and all(m["status"] == "Loading layer" and len(m["id"]) == 12 for m in progress)
    last = progress[-1]
    assert last["progressDetail"]["current"] == last["progressDetail"]["total"]
    assert last["progress"].startswith("[" + "=" * 50 + ">]")
    # IDs and sizes are dockerd's own: the config bytes and layers were kept exactly.
    tiny, tiny2 = env.store.get("tiny"), env.store.get("tiny2:v1")
    assert (tiny.id, tiny.size) == (TINY, 37)
    assert (tiny2.id, tiny2.size) == (TINY2, 49)
    assert tiny2.chain_ids[0] == tiny.top_chain_id
    assert len(env.snapshotter.list()) == 3  # the shared base layer is unpacked once
    env.snapshotter.prepare("c", tiny2.top_chain_id)
    target = tmp / "mnt"
    target.mkdir()
    with Mounted(env.snapshotter, "c", target) as root:
        assert (root / "data/one").read_text() == "changed\n"
        assert (root / "data/two").read_text() == "two\n"
        assert os.readlink(root / "data/link") == "one"
        assert (root / "etc/passwd").read_text().startswith("root:")


def test_load_twice_is_quiet_about_layers_and_renames(env: Env) -> None:
    load_saved(env)
    env.store.tag("tiny2:v1", "tiny", "latest")  # tiny:latest now names another image
    _names, msgs = load_saved(env)
    assert not [m for m in msgs if "status" in m]  # layers already present
    assert msgs[0] == {"stream": f"The image tiny:latest already exists, renaming the old one with ID {TINY2} "
                                 "to empty string\n"}
    assert env.store.get("tiny:latest").id == TINY


def test_load_quiet(env: Env) -> None:
    _, msgs = load_saved(env, quiet=True)
    assert msgs == [{"stream": "Loaded image: tiny:latest\n"}, {"stream": "Loaded image: tiny2:v1\n"}]


def test_save_load_roundtrip_new_layout(env: Env, tmp: Path) -> None:
    load_saved(env)
    out = io.BytesIO()
    env.store.save(["tiny2:v1", "tiny"], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as t:
        names = set(t.getnames())
        manifest = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(t.extractfile("index.json"))  # type: ignore[arg-type]
        layout = json.load(t.extractfile("oci-layout"))  # type: ignore[arg-type]
    assert layout == {"imageLayoutVersion": "1.0.0"}
    assert [m["RepoTags"] for m in manifest] == [["tiny2:v1"], ["tiny:latest"]]
    assert manifest[0]["Config"] == "blobs/sha256/" + TINY2[7:]
    assert all(p in names for m in manifest for p in m["Layers"])
    assert [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]] == \
        ["docker.io/library/tiny2:v1", "docker.io/library/tiny:latest"]
    # Into a fresh store: the same IDs come back.
    other = make_env(tmp / "other", env.snapshotter.driver)
    try:
        msgs: list[dict[str, Any]] = []
        assert other.store.load(io.BytesIO(out.getvalue()), progress=msgs.append) == ["tiny2:v1", "tiny:latest"]
        assert other.store.get("tiny2:v1").id == TINY2 and other.store.get("tiny").id == TINY
    finally:
        other.db.close()


def test_load_oci_layout_only(env: Env, tmp: Path) -> None:
    load_saved(env)
    out = io.BytesIO()
    env.store.save(["tiny"], out)
    # Drop manifest.json: only the OCI index is left to go by; gzip the layers too.
    src = tarfile.open(fileobj=io.BytesIO(out.getvalue()))
    index = json.load(src.extractfile("index.json"))  # type: ignore[arg-type]
    new = io.BytesIO()
    with tarfile.open(fileobj=new, mode="w") as dst:
        for m in src.getmembers():
            if m.name == "manifest.json":
                continue
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    other = make_env(tmp / "other", env.snapshotter.driver)
    try:
        assert other.store.load(io.BytesIO(new.getvalue())) == ["tiny:latest"]
        assert other.store.get("tiny").id == TINY
        assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    finally:
        other.db.close()


def test_load_untagged_reports_id(env: Env) -> None:
    load_saved(env)
    out = io.BytesIO()
    env.store.save([TINY], out)
    env.store.remove("tiny2:v1", users=no_users)
    env.store.remove("tiny", users=no_users)
    msgs: list[dict[str, Any]] = []
    assert env.store.load(io.BytesIO(out.getvalue()), progress=msgs.append, quiet=True) == [TINY]
    assert msgs == [{"stream": f"Loaded image ID: {TINY}\n"}]


def _archive(files: dict[str, bytes]) -> io.BytesIO:
    b = TarBuilder()
    for name, data in files.items():
        b.file(name, data)
    return b.stream()


def test_load_rejects_bad_archives(env: Env) -> None:
    layer = TarBuilder().file("a", b"1").bytes()
    good_diff = "sha256:" + __import__("hashlib").sha256(layer).hexdigest()
    cfg = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}).encode()
    with pytest.raises(InvalidParameter, match="invalid diffID for layer 0"):
        env.store.load(_archive({"c.json": cfg, "l/layer.tar": layer, "manifest.json": json.dumps(
            [{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l/layer.tar"]}]).encode()}))
    cfg2 = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [good_diff, good_diff]}}).encode()
    with pytest.raises(InvalidParameter, match="layers length mismatch: expected 1, got 2"):
        env.store.load(_archive({"c.json": cfg2, "l/layer.tar": layer, "manifest.json": json.dumps(
            [{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l/layer.tar"]}]).encode()}))
    with pytest.raises(InvalidParameter, match="invalid path"):
        env.store.load(_archive({"manifest.json": json.dumps(
            [{"Config": "../../etc/passwd", "RepoTags": [], "Layers": []}]).encode()}))
    link = TarBuilder().symlink("c.json", "/etc/passwd").file("manifest.json", json.dumps(
        [{"Config": "c.json", "RepoTags": [], "Layers": []}]).encode())
    with pytest.raises(InvalidParameter, match="outside of the archive"):
        env.store.load(link.stream())
    with pytest.raises(InvalidParameter, match="no manifest.json or index.json"):
        env.store.load(_archive({"hello": b"x"}))
    win = json.dumps({"os": "windows", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    with pytest.raises(InvalidParameter, match="cannot load windows image on linux"):
        env.store.load(_archive({"c.json": win, "manifest.json": json.dumps(
            [{"Config": "c.json", "RepoTags": [], "Layers": []}]).encode()}))
    assert env.store.list() == []
    assert list(env.snapshotter.list()) == []
    assert list((env.root / "tmp").iterdir()) == []


# --- lookups and tags ---------------------------------------------------------------

def test_get_by_every_kind_of_name(env: Env) -> None:
    load_saved(env)
    for name in ("tiny", "tiny:latest", "docker.io/library/tiny", "docker.io/library/tiny:latest",
                 "index.docker.io/library/tiny:latest", TINY, TINY[7:], TINY[7:19], TINY[:19], TINY[7:10]):
        assert env.store.get(name).id == TINY, name
    with pytest.raises(NotFound, match="^No such image: nonexist:latest$"):
        env.store.get("nonexist")
    with pytest.raises(NotFound, match="^No such image: abc123:latest$"):
        env.store.get("abc123")
    with pytest.raises(NotFound, match="^No such image: tiny:nope$"):
        env.store.get("tiny:nope")
    with pytest.raises(NotFound, match=f"^No such image: sha256:{'f' * 64}$"):
        env.store.get("f" * 64)
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        env.store.get("Bad Name")
    assert {i.id for i in env.store.list()} == {TINY, TINY2}
    assert env.store.exists("tiny") and not env.store.exists("nope") and not env.store.exists("B A D")


def test_ambiguous_prefix_is_not_found(env: Env) -> None:
    ids: dict[str, str] = {}
    n = 0
    while True:  # two configs whose IDs start with the same hex digit
        cfg = json.dumps({"os": "linux", "n": n, "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        n += 1
        image_id = env.store.create_image(cfg)
        first = image_id[7]
        if first in ids:
            break
        ids[first] = image_id
    with pytest.raises(NotFound, match=f"No such image: {first}:latest"):
        env.store.get(first)
    assert env.store.get(image_id[7:20]).id == image_id


def test_tag_and_untag(env: Env) -> None:
    load_saved(env)
    assert env.store.tag("tiny", "localhost:5000/team/tiny", "v2") == (TINY, "localhost:5000/team/tiny:v2")
    assert env.store.tag(TINY[7:19], "again", "") == (TINY, "again:latest")
    img = env.store.get("localhost:5000/team/tiny:v2")
    assert img.repo_tags == ("again:latest", "tiny:latest", "localhost:5000/team/tiny:v2") or \
        set(img.repo_tags) == {"again:latest", "tiny:latest", "localhost:5000/team/tiny:v2"}
    with pytest.raises(InvalidParameter, match="refusing to create a tag with a digest reference"):
        env.store.tag("tiny", f"x@sha256:{'a' * 64}", "")
    with pytest.raises(InvalidParameter, match="invalid tag format"):
        env.store.tag("tiny", "x", "-bad")
    with pytest.raises(NotFound):
        env.store.tag("nope", "x", "1")
    assert env.store.untag("again") == "again:latest"
    with pytest.raises(NotFound):
        env.store.untag("again")


def test_filters(env: Env) -> None:
    load_saved(env)
    env.store.import_tar(io.BytesIO((DATA / "tiny-rootfs.tar").read_bytes()), repo_tag=None, changes=[],
                         message="")
    images = env.store.list()

    def ids(flt: dict[str, list[str]]) -> set[str]:
        pred = env.store.filter_predicate(flt)
        return {i.id for i in images if pred(i)}

    dangling = ids({"dangling": ["true"]})
    assert len(dangling) == 1 and TINY not in dangling
    assert ids({"dangling": ["false"]}) == {TINY, TINY2}
    assert ids({"label": ["k=v"]}) == {TINY2} and ids({"label": ["k"]}) == {TINY2}
    assert ids({"reference": ["tiny"]}) == {TINY} and ids({"reference": ["tiny*"]}) == {TINY, TINY2}
    assert ids({"reference": ["tiny2:v1"]}) == {TINY2}
    assert ids({"before": ["tiny2:v1"]}) == {TINY}
    assert ids({"since": ["tiny"]}) == {TINY2} | dangling
    with pytest.raises(InvalidParameter):
        ids({"bogus": ["1"]})


# --- rmi ----------------------------------------------------------------------------

def test_rmi_untag_then_delete(env: Env) -> None:
    load_saved(env)
    env.store.tag("tiny2:v1", "extra", "1")
    assert env.store.remove("extra:1", users=no_users) == [{"Untagged": "extra:1"}]
    tiny2 = env.store.get("tiny2:v1")
    result = env.store.remove("tiny2:v1", users=no_users)
    assert result[:2] == [{"Untagged": "tiny2:v1"}, {"Deleted": TINY2}]
    # Only the layers tiny2 does not share with tiny go.
    assert [r["Deleted"] for r in result[2:]] == list(reversed(tiny2.chain_ids[1:]))
    assert not env.content.exists(TINY2)
    tiny = env.store.get("tiny")
    assert env.snapshotter.exists(tiny.top_chain_id)
    assert env.store.remove(TINY[7:19], users=no_users) == [
        {"Untagged": "tiny:latest"}, {"Deleted": TINY}, {"Deleted": tiny.top_chain_id}]
    assert env.snapshotter.list() == [] and env.store.list() == []
    assert [d.digest for d in env.content.walk()] == []


def test_rmi_by_id_with_several_tags(env: Env) -> None:
    load_saved(env)
    env.store.tag("tiny2:v1", "other", "x")
    with pytest.raises(Conflict) as exc:
        env.store.remove(TINY2[7:19], users=no_users)
    assert str(exc.value) == (f"conflict: unable to delete {TINY2[7:19]} (must be forced) - "
                              "image is referenced in multiple repositories")
    result = env.store.remove(TINY2[7:19], force=True, users=no_users)
    assert result[:3] == [{"Untagged": "other:x"}, {"Untagged": "tiny2:v1"}, {"Deleted": TINY2}]


def test_rmi_container_conflicts(env: Env) -> None:
    load_saved(env)
    cid = "54fb1792726e" + "0" * 52
    stopped = lambda i: [(cid, False)] if i == TINY2 else []  # noqa: E731
    running = lambda i: [(cid, True)] if i == TINY2 else []  # noqa: E731
    with pytest.raises(Conflict) as exc:
        env.store.remove("tiny2:v1", users=stopped)
    assert str(exc.value) == ('conflict: unable to remove repository reference "tiny2:v1" (must force) - '
                              f"container 54fb1792726e is using its referenced image {TINY2[7:19]}")
    with pytest.raises(Conflict) as exc:
        env.store.remove(TINY2[7:19], users=stopped)
    assert str(exc.value) == (f"conflict: unable to delete {TINY2[7:19]} (must be forced) - "
                              "image is being used by stopped container 54fb1792726e")
    with pytest.raises(Conflict) as exc:
        env.store.remove(TINY2[7:19], force=True, users=running)
    assert str(exc.value) == (f"conflict: unable to delete {TINY2[7:19]} (cannot be forced) - "
                              "image is being used by running container 54fb1792726e")
    # Forcing a name away from a running container's image only untags it.
    assert env.store.remove("tiny2:v1", force=True, users=running) == [{"Untagged": "tiny2:v1"}]
    assert env.store.get(TINY2).repo_tags == ()


def test_rmi_force_keeps_layers_a_container_uses(env: Env) -> None:
    load_saved(env)
    tiny2 = env.store.get("tiny2:v1")
    env.store.prepare_rootfs("ctr", TINY2)
    result = env.store.remove(TINY2, force=True, users=lambda i: [("ctr" + "0" * 61, False)])
    assert result == [{"Untagged": "tiny2:v1"}, {"Deleted": TINY2}]
    assert env.snapshotter.exists(tiny2.top_chain_id)
    # When the container goes, so do the layers nothing else uses.
    env.store.remove_rootfs("ctr")
    assert {i.key for i in env.snapshotter.list()} == {env.store.get("tiny").top_chain_id}


def test_rmi_not_found_and_bad_name(env: Env) -> None:
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        env.store.remove("nope", users=no_users)


def test_state_survives_restart(env: Env) -> None:
    load_saved(env)
    env.store.prepare_rootfs("ctr", TINY)
    again = env.reopen()
    try:
        assert {i.id for i in again.store.list()} == {TINY, TINY2}
        assert again.store.get("tiny2:v1").size == 49
        assert again.snapshotter.exists("ctr")
    finally:
        again.db.close()


def test_restart_cleans_interrupted_unpack(env: Env) -> None:
    load_saved(env)
    # An unpack that was killed: its active snapshot, and a committed layer without a row.
    env.snapshotter.prepare("extract-0123456789abcdef", None)
    env.snapshotter.prepare("t", None)
    env.snapshotter.commit("sha256:" + "e" * 64, "t")
    again = env.reopen()
    try:
        keys = {i.key for i in again.snapshotter.list()}
        assert "extract-0123456789abcdef" not in keys and "sha256:" + "e" * 64 not in keys
        assert set(chain_ids(again.store.get("tiny2:v1").diff_ids)) <= keys
    finally:
        again.db.close()
