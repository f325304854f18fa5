"""docker save / docker load at the API: names, errors, quiet and progress output, compression."""
from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
import uuid
from typing import Any

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.image_archives import ImageSpec, layer_tar, write_archive
from conformance_tests.util import inspect, ok


def _messages(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


@pytest.fixture
def small(daemon: Daemon) -> Any:
    key = f"conf-arch-{uuid.uuid4().hex[:8]}"
    spec = ImageSpec([layer_tar({"f": key.encode()})], tags=[f"{key}:1"])
    path = write_archive(daemon.root / f"{key}.tar", [spec])
    yield key, spec, path.read_bytes()
    daemon.raw("DELETE", f"/images/{spec.image_id}?force=1")


def _load(daemon: Daemon, data: bytes, query: str = "") -> tuple[int, list[dict[str, Any]]]:
    resp = daemon.raw("POST", f"/images/load{query}", body=data, headers={"Content-Type": "application/x-tar"})
    return resp.status, _messages(resp.body) if resp.status == 200 else [{"message": resp.message}]


def test_load_progress_and_quiet(daemon: Daemon, small: Any) -> None:
    key, spec, data = small
    status, msgs = _load(daemon, data, "?quiet=0")
    assert status == 200
    layer_id = spec.config()["rootfs"]["diff_ids"][0][7:19]
    assert msgs[-1] == {"stream": f"Loaded image: {key}:1\n"}
    progress = [m for m in msgs if m.get("status") == "Loading layer"]
    assert progress and all(m["id"] == layer_id for m in progress)
    assert progress[-1]["progressDetail"] == {"current": 10240, "total": 10240}
    assert progress[-1]["progress"].startswith("[" + "=" * 50 + ">]")
    # loaded again: the layer exists, no progress; without the parameter dockerd is quiet
    daemon.raw("DELETE", f"/images/{spec.image_id}")
    for query in ("", "?quiet=1"):
        status, msgs = _load(daemon, data, query)
        assert (status, msgs) == (200, [{"stream": f"Loaded image: {key}:1\n"}])


def test_load_gzip_archive(daemon: Daemon, small: Any) -> None:
    key, spec, data = small
    out = ok(daemon.cli("load", input=gzip.compress(data)))
    assert out.strip() == f"Loaded image: {key}:1"
    assert inspect(daemon, f"{key}:1", "image")["Id"] == spec.image_id


def test_load_untagged_prints_id(daemon: Daemon) -> None:
    spec = ImageSpec([layer_tar({"u": uuid.uuid4().hex.encode()})])
    try:
        out = ok(daemon.cli("load", "-i", str(write_archive(daemon.root / "untagged.tar", [spec]))))
        assert out.strip() == f"Loaded image ID: {spec.image_id}"
    finally:
        daemon.raw("DELETE", f"/images/{spec.image_id}?force=1")


@pytest.mark.parametrize("path, status, pattern", [
    ("/images/get?names=nosuch-conf-img", 404, r"No such image: nosuch-conf-img"),
    ("/images/get?names=nosuch-conf-img:v1", 404, r"reference does not exist|No such image: nosuch-conf-img:v1"),
    ("/images/nosuch-conf-img/get", 404, r"No such image: nosuch-conf-img"),
    ("/images/get?names=UPPER", 400, r"invalid reference format: repository name (\(\S+\) )?must be lowercase"),
])
def test_save_errors(daemon: Daemon, busybox: str, path: str, status: int, pattern: str) -> None:
    resp = daemon.raw("GET", path)
    # 20.10 answers 500 for reference syntax errors, newer Docker 400
    assert resp.status == status or (daemon.reference and status == 400 and resp.status == 500), resp.body
    assert re.fullmatch(pattern, resp.message), resp.message


def test_save_nothing_is_an_empty_archive(daemon: Daemon) -> None:
    resp = daemon.raw("GET", "/images/get")
    assert resp.status == 200
    with tarfile.open(fileobj=io.BytesIO(resp.body)) as tar:
        assert json.load(tar.extractfile("manifest.json")) is None  # type: ignore[arg-type]


def test_save_by_id_and_by_tag_via_docker_py(client, daemon: Daemon, small: Any) -> None:
    key, spec, data = small
    _load(daemon, data, "?quiet=1")
    for name, tags in ((f"{key}:1", [f"{key}:1"]), (spec.image_id, None), (key, [f"{key}:1"])):
        raw = b"".join(client.api.get_image(name))
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            assert manifest[0]["RepoTags"] == tags, name
            assert tar.extractfile(manifest[0]["Config"]).read() == spec.config_bytes()  # type: ignore[union-attr]


@pytest.mark.reference_differs("the OCI layout files in docker save archives are Docker 25+")
def test_save_writes_oci_layout_too(daemon: Daemon, small: Any) -> None:
    key, spec, data = small
    _load(daemon, data, "?quiet=1")
    resp = daemon.raw("GET", f"/images/{key}:1/get")
    with tarfile.open(fileobj=io.BytesIO(resp.body)) as tar:
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}  # type: ignore[arg-type]
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        desc = index["manifests"][0]
        assert desc["annotations"]["io.containerd.image.name"] == f"docker.io/library/{key}:1"
        assert desc["annotations"]["org.opencontainers.image.ref.name"] == "1"
        manifest = json.load(tar.extractfile("blobs/sha256/" + desc["digest"][7:]))  # type: ignore[arg-type]
        assert manifest["config"]["digest"] == spec.image_id
        assert tar.extractfile("blobs/sha256/" + spec.image_id[7:]).read() == spec.config_bytes()  # type: ignore[union-attr]


def _raw_tar(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_load_absolute_path_entry_writes_nothing_outside(daemon: Daemon, busybox: str) -> None:
    import os
    import tempfile
    canary = tempfile.mkdtemp(prefix="outside-abs-", dir=daemon.root)
    data = _raw_tar([(f"{canary}/evil", b"evil"), ("manifest.json", b"[]")])
    status, msgs = _load(daemon, data, "?quiet=1")
    assert status == 200
    assert not [m for m in msgs if "Loaded image" in m.get("stream", "")]
    assert os.listdir(canary) == []
    assert inspect(daemon, busybox, "image")["Id"] == busybox


@pytest.mark.parametrize("tag, pattern", [
    ("UPPER:1", r"invalid reference format: repository name (\(\S+\) )?must be lowercase"),
    ("a:b:c", r"invalid reference format"),
])
def test_load_invalid_tag_in_manifest(daemon: Daemon, tag: str, pattern: str) -> None:
    spec = ImageSpec([layer_tar({"t": uuid.uuid4().hex.encode()})], tags=[tag])
    path = write_archive(daemon.root / f"badtag-{uuid.uuid4().hex[:6]}.tar", [spec])
    try:
        status, msgs = _load(daemon, path.read_bytes(), "?quiet=1")
        errors = [m["error"] for m in msgs if "error" in m]
        assert status == 200 and len(errors) == 1 and re.fullmatch(pattern, errors[0]), msgs
        # like dockerd, the image was created before its names were read: it stays, untagged
        assert inspect(daemon, spec.image_id, "image")["RepoTags"] == []
    finally:
        daemon.raw("DELETE", f"/images/{spec.image_id}?force=1")


def _oci_only(spec: ImageSpec, tag: str) -> bytes:
    """An OCI image layout without manifest.json (what buildx/skopeo/containerd export)."""
    import hashlib
    layers = [(l, "sha256:" + hashlib.sha256(l).hexdigest()) for l in spec.layers]
    cfg = spec.config_bytes()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": spec.image_id,
                   "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(l)}
                   for l, d in layers]}).encode()
    mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": len(manifest),
         "annotations": {"io.containerd.image.name": f"docker.io/library/{tag}",
                         "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[1]}}]}).encode()
    entries = [(f"blobs/sha256/{d[7:]}", l) for l, d in layers]
    entries += [(f"blobs/sha256/{spec.image_id[7:]}", cfg), (f"blobs/sha256/{mdigest[7:]}", manifest),
                ("index.json", index), ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    return _raw_tar(entries)


@pytest.mark.reference_differs("dockerd 20.10 loads only archives with manifest.json; OCI layouts are Docker 25+")
def test_load_oci_layout_without_manifest_json(daemon: Daemon) -> None:
    key = f"conf-oci-{uuid.uuid4().hex[:8]}"
    spec = ImageSpec([layer_tar({"o": key.encode()})])
    try:
        status, msgs = _load(daemon, _oci_only(spec, f"{key}:1"), "?quiet=1")
        assert (status, msgs) == (200, [{"stream": f"Loaded image: {key}:1\n"}])
        assert inspect(daemon, f"{key}:1", "image")["Id"] == spec.image_id
    finally:
        daemon.raw("DELETE", f"/images/{spec.image_id}?force=1")


def test_layer_entries_climbing_out_stay_in_the_layer(daemon: Daemon, busybox: str, tmp_path: Any) -> None:
    """dockerd applies a layer chrooted into it: "/abs" and "../../up" land inside the image (item 11)."""
    key = f"conf-confined-{uuid.uuid4().hex[:8]}"

    def hostile(tar: tarfile.TarFile) -> None:
        for name, data in (("/abs-file", b"abs\n"), ("../../up-file", b"up\n"), ("a/../../../etc/conf-x", b"x\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))

    hostile_layer = layer_tar({"marker": b"m\n"}, extra=hostile)
    base = json.loads(ok(daemon.cli("image", "inspect", "busybox")))[0]
    saved = daemon.root / f"{key}-base.tar"
    ok(daemon.cli("save", "-o", str(saved), "busybox"))
    with tarfile.open(saved) as t:
        manifest = json.loads(t.extractfile("manifest.json").read())  # type: ignore[union-attr]
        base_layers = [t.extractfile(p).read() for p in manifest[0]["Layers"]]  # type: ignore[union-attr]
    assert len(base_layers) == len(base["RootFS"]["Layers"])
    spec = ImageSpec([*base_layers, hostile_layer], tags=[f"{key}:1"], cmd=["sh"])
    path = write_archive(tmp_path / f"{key}.tar", [spec])
    try:
        out = ok(daemon.cli("load", "-i", str(path)))
        assert out.strip() == f"Loaded image: {key}:1"
        got = ok(daemon.cli("run", "--rm", f"{key}:1", "cat", "/abs-file", "/up-file", "/etc/conf-x", "/marker"))
        assert got == "abs\nup\nx\nm\n"
        assert not (daemon.root / "up-file").exists() and not (daemon.data_root.parent / "up-file").exists()
    finally:
        daemon.cli("rmi", "-f", f"{key}:1")
