"""docker load/save archives: the one-pass reader, big (spilled) layers, in-archive links,
integrity checks, and kill -9 of a load at several points."""
from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from engine.errors import EngineError, InvalidParameter
from engine.images import archive_reader as archive_mod
from engine.images.tarstream import TarFormatError, members

from .conftest import Env, TarBuilder, make_env

REPO = Path(__file__).resolve().parents[2]


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _config(diff_ids: list[str], **extra: Any) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                       "created": "2020-01-01T00:00:00Z",
                       "rootfs": {"type": "layers", "diff_ids": diff_ids}, **extra}).encode()


def _archive(files: list[tuple[str, bytes] | tarfile.TarInfo], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for item in files:
            if isinstance(item, tarfile.TarInfo):
                tar.addfile(item)
            else:
                info = tarfile.TarInfo(item[0])
                info.size = len(item[1])
                tar.addfile(info, io.BytesIO(item[1]))
    return buf.getvalue()


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def big_layer(mb: float, seed: bytes) -> bytes:
    """A layer bigger than the in-memory limit, so the loader spills it to disk."""
    data = (hashlib.sha256(seed).digest() * int(mb * (1 << 20) / 32 + 1))[: int(mb * (1 << 20))]
    return TarBuilder().dir("big/").file("big/blob", data, mode=0o640, uid=7, gid=8).file("big/small", b"s").bytes()


def image_archive(layers: list[bytes], tag: str = "big:1", layer_names: list[str] | None = None,
                  extra: list[Any] | None = None) -> bytes:
    names = layer_names or [f"{_sha(l)[7:]}/layer.tar" for l in layers]
    cfg = _config([_sha(l) for l in layers])
    files: list[Any] = []
    seen = set()
    for name, data in zip(names, layers, strict=True):
        if name not in seen:
            files.append((name, data))
            seen.add(name)
    files += [("c.json", cfg), *(extra or []),
              ("manifest.json", json.dumps([{"Config": "c.json", "RepoTags": [tag], "Layers": names}]).encode())]
    return _archive(files)


class Trickle:
    """A source that returns at most ``n`` bytes per read, like a slow socket."""

    def __init__(self, data: bytes, n: int) -> None:
        self._data = memoryview(data)
        self._n = n

    def read(self, n: int = -1) -> bytes:
        k = self._n if n < 0 else min(n, self._n)
        out, self._data = bytes(self._data[:k]), self._data[k:]
        return out


def _leftovers(env: Env) -> dict[str, Any]:
    return {
        "tmp": sorted(p.name for p in (env.root / "tmp").iterdir()),
        "extract": [i.key for i in env.snapshotter.list() if i.key.startswith("extract-")],
    }


# --- the tar reader ------------------------------------------------------------

def test_tarstream_long_names_and_pax() -> None:
    long = "d/" + "x" * 150 + "/file"
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        data = _archive([(long, b"hello"), _symlink("l" * 120, "t" * 130), ("short", b"")], fmt=fmt)
        seen = []
        for m, buf in members(Trickle(data, 7)):
            seen.append((m.name, m.linkname, buf.exactly(m.size) if m.size else b""))
        assert seen == [(long, "", b"hello"), ("l" * 120, "t" * 130, b""), ("short", "", b"")]


def test_tarstream_errors() -> None:
    data = _archive([("a", b"x" * 2000)])
    with pytest.raises(TarFormatError, match="unexpected EOF"):
        for m, buf in members(io.BytesIO(data[:1000])):
            buf.skip(m.size)
    with pytest.raises(TarFormatError, match="invalid tar header"):
        list(members(io.BytesIO(b"garbage!" * 200)))
    assert list(members(io.BytesIO(b""))) == []


# --- loading -------------------------------------------------------------------

def test_load_big_layers_through_a_trickle(env: Env) -> None:
    l0, l1 = big_layer(2.5, b"0"), big_layer(1.5, b"1")
    data = image_archive([l0, l1])
    assert env.store.load(Trickle(data, 4093)) == ["big:1"]  # type: ignore[arg-type]
    img = env.store.get("big:1")
    assert img.diff_ids == (_sha(l0), _sha(l1))
    # the layer tars are in the content store (moved there, byte for byte)
    for layer in (l0, l1):
        assert env.content.read_bytes(_sha(layer)) == layer
    top = env.snapshotter.fs_dir(img.chain_ids[-1])
    st = os.stat(top / "big" / "blob")
    assert (st.st_size, st.st_uid, st.st_gid, st.st_mode & 0o7777) == (int(1.5 * (1 << 20)), 7, 8, 0o640)
    assert _leftovers(env) == {"tmp": [], "extract": []}
    out = io.BytesIO()
    env.store.save(["big:1"], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.extractfile(f"blobs/sha256/{_sha(l0)[7:]}").read() == l0  # type: ignore[union-attr]


def test_load_same_big_layer_twice_in_one_image(env: Env) -> None:
    layer = big_layer(1.2, b"twice")
    data = image_archive([layer, layer])
    assert env.store.load(io.BytesIO(data)) == ["big:1"]
    assert len(env.store.get("big:1").chain_ids) == 2


def test_load_follows_symlinks_inside_the_archive(env: Env) -> None:
    layer = big_layer(1.1, b"link")
    hexd = _sha(layer)[7:]
    # the layer is stored under blobs/ and the manifest names it through a relative symlink
    data = _archive([(f"blobs/sha256/{hexd}", layer), _symlink("legacy", "blobs/../old"),
                     _symlink("old", "."), _symlink(f"{hexd}", f"blobs/sha256/{hexd}"),
                     ("c.json", _config([_sha(layer)])),
                     ("manifest.json", json.dumps([{"Config": "c.json", "RepoTags": ["lnk:1"],
                                                    "Layers": [f"legacy/{hexd}"]}]).encode())])
    assert env.store.load(io.BytesIO(data)) == ["lnk:1"]


@pytest.mark.parametrize("case", ["absolute", "dotdot", "through", "loop"])
def test_load_refuses_links_out_of_the_archive(env: Env, case: str) -> None:
    layer = TarBuilder().file("a", b"1").bytes()
    manifest = lambda rel: ("manifest.json", json.dumps(  # noqa: E731
        [{"Config": "c.json", "RepoTags": ["x:1"], "Layers": [rel]}]).encode())
    cfg = ("c.json", _config([_sha(layer)]))
    files: list[Any] = {
        "absolute": [_symlink("l.tar", "/etc/passwd"), cfg, manifest("l.tar")],
        "dotdot": [_symlink("d", "../../.."), cfg, manifest("d/etc/passwd")],
        "through": [_symlink("d", "sub"), ("d/l.tar", layer), cfg, manifest("d/l.tar")],
        "loop": [_symlink("a", "b"), _symlink("b", "a"), cfg, manifest("a")],
    }[case]
    with pytest.raises(InvalidParameter):
        env.store.load(io.BytesIO(_archive(files)))
    assert env.store.list() == []
    assert _leftovers(env) == {"tmp": [], "extract": []}


def test_big_layer_with_wrong_diff_id_leaves_nothing(env: Env) -> None:
    layer = big_layer(1.3, b"wrong")
    other = big_layer(1.3, b"other")
    cfg = _config([_sha(other)])
    data = _archive([("l/layer.tar", layer), ("c.json", cfg), ("manifest.json", json.dumps(
        [{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l/layer.tar"]}]).encode())])
    with pytest.raises(InvalidParameter, match="invalid diffID for layer 0"):
        env.store.load(io.BytesIO(data))
    assert env.store.list() == [] and list(env.content.walk()) == []
    assert _leftovers(env) == {"tmp": [], "extract": []}
    assert [i.key for i in env.snapshotter.list()] == []


def test_oci_blob_must_match_its_digest(env: Env) -> None:
    layer = TarBuilder().file("a", b"1").bytes()
    cfg = _config([_sha(layer)])
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": _sha(cfg), "size": len(cfg)},
                           "layers": [{"digest": _sha(layer), "size": len(layer)}]}).encode()
    bad_manifest_name = "sha256:" + "1" * 64
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": archive_mod.MEDIA_OCI_MANIFEST, "digest": bad_manifest_name, "size": len(manifest)}]})
    data = _archive([(f"blobs/sha256/{_sha(layer)[7:]}", layer), (f"blobs/sha256/{_sha(cfg)[7:]}", cfg),
                     (f"blobs/sha256/{'1' * 64}", manifest), ("index.json", index.encode()),
                     ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')])
    with pytest.raises(InvalidParameter, match="does not match its digest"):
        env.store.load(io.BytesIO(data))


def test_corrupted_store_is_detected(env: Env) -> None:
    layer = big_layer(1.1, b"corrupt")
    env.store.load(io.BytesIO(image_archive([layer], tag="c:1")))
    image_id = env.store.get("c:1").id
    blob = env.content.path(_sha(layer))
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        f.seek(2000)
        f.write(b"X")
    with pytest.raises(EngineError, match="corrupted"):
        env.store.save(["c:1"], io.BytesIO())
    cfg = env.content.path(image_id)
    os.chmod(cfg, 0o644)
    cfg.write_bytes(cfg.read_bytes().replace(b'"sh"', b'"xx"'))
    again = env.reopen()
    try:
        with pytest.raises(EngineError, match="corrupted"):
            again.store.get("c:1")
    finally:
        again.db.close()


# --- kill -9 in the middle of a load ----------------------------------------------

_CHILD = r"""
import io, os, signal, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from tests.images.conftest import make_env
env = make_env(Path({root!r}), {driver!r})
point = {point!r}
calls = {{"n": 0}}

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def wrap(obj, name, after_calls=1, before=False):
    orig = getattr(obj, name)
    def hooked(*a, **kw):
        calls["n"] += 1
        if before and calls["n"] >= after_calls:
            die()
        out = orig(*a, **kw)
        if calls["n"] >= after_calls:
            die()
        return out
    setattr(obj, name, hooked)

import engine.images.archive_reader as A
if point == "reading":
    orig = A._Archive._spill
    def spill(self, *a, **kw):
        out = orig(self, *a, **kw)
        die()
    A._Archive._spill = spill
elif point == "first-layer-done":
    wrap(env.store, "register_layer", 1)
elif point == "snapshot-committed":
    wrap(env.snapshotter, "commit", 2)
elif point == "blob-adopted":
    wrap(env.content, "adopt", 2)
elif point == "image-created":
    wrap(env.store, "create_image", 1)
with open({archive!r}, "rb") as f:
    env.store.load(f)
print("finished")
"""


@pytest.mark.parametrize("point", ["reading", "first-layer-done", "snapshot-committed", "blob-adopted",
                                   "image-created"])
def test_kill9_during_load_then_load_again(env: Env, tmp: Path, point: str) -> None:
    layers = [big_layer(1.2, b"k0"), big_layer(1.2, b"k1"), big_layer(1.2, b"k2")]
    archive = tmp / "k.tar"
    archive.write_bytes(image_archive(layers, tag="k:1"))
    env.db.close()
    code = _CHILD.format(repo=str(REPO), root=str(env.root), driver=env.snapshotter.driver, point=point,
                         archive=str(archive))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    again = make_env(env.root, env.snapshotter.driver)
    try:
        # the restarted store is consistent: no half-unpacked snapshots, no scratch files
        assert [i.key for i in again.snapshotter.list() if not i.key.startswith("sha256:")] == []
        assert [p.name for p in (env.root / "tmp").iterdir() if p.name.startswith(("load-", "ingest-"))] == []
        for img in again.store.list():
            for chain in img.chain_ids:
                assert again.snapshotter.exists(chain)
        # ... and the next load completes and gives the full image
        assert again.store.load(io.BytesIO(archive.read_bytes())) == ["k:1"]
        img = again.store.get("k:1")
        assert img.diff_ids == tuple(_sha(l) for l in layers)
        for layer in layers:
            assert again.content.read_bytes(_sha(layer)) == layer
        top = again.snapshotter.fs_dir(img.chain_ids[-1])
        assert (top / "big" / "blob").stat().st_size == int(1.2 * (1 << 20))
    finally:
        again.db.close()


def test_failed_image_releases_the_layers_it_brought(env: Env) -> None:
    l0, l1 = TarBuilder().file("a", b"1").bytes(), big_layer(1.1, b"rel")
    bad_cfg = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [_sha(l0), _sha(l1)]},
                          "history": [{"created_by": "x"}] * 3}).encode()
    data = _archive([("0/layer.tar", l0), ("1/layer.tar", l1), ("c.json", bad_cfg), ("manifest.json", json.dumps(
        [{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["0/layer.tar", "1/layer.tar"]}]).encode())])
    with pytest.raises(EngineError, match="too many non-empty layers in History section"):
        env.store.load(io.BytesIO(data))
    assert env.store.list() == []
    assert [i.key for i in env.snapshotter.list()] == []
    assert list(env.content.walk()) == []
    assert _leftovers(env) == {"tmp": [], "extract": []}


def test_progress_of_a_big_layer(env: Env) -> None:
    layer = TarBuilder().file("a", b"1" * (600 << 10)).file("b", b"2" * (600 << 10)).file("c", b"3" * 5).bytes()
    msgs: list[dict[str, Any]] = []
    env.store.load(io.BytesIO(image_archive([layer], tag="p:1")), progress=msgs.append)
    steps = [m["progressDetail"].get("current") for m in msgs if m.get("status") == "Loading layer"]
    assert len(steps) >= 2 and steps == sorted(steps), steps
    assert steps[-1] == len(layer)
    assert msgs[-1] == {"stream": "Loaded image: p:1\n"}
