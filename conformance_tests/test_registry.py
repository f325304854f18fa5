"""Pull from (and push to) a private registry on loopback (Debian's docker-registry, plain HTTP).

Images are put into the registry over its HTTP API by the test itself (``seed_image``), so the
pull tests do not depend on the daemon's push.
"""
from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.registry import (
    Registry,
    blob_file,
    free_port,
    saved_image_parts,
    seed_image,
    sha256_digest,
    start_registry,
)
from conformance_tests.util import inspect, ok


@pytest.fixture(scope="module")
def registry(daemon: Daemon) -> Iterator[Registry]:
    reg = start_registry(daemon.root / f"registry-{uuid.uuid4().hex[:6]}")
    try:
        yield reg
    finally:
        reg.stop()


def file_layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Seeded:
    repo: str          # 127.0.0.1:port/conf/x
    tag: str
    digest: str        # manifest digest
    config: bytes
    layers: list[bytes]

    @property
    def ref(self) -> str:
        return f"{self.repo}:{self.tag}"

    @property
    def image_id(self) -> str:
        return sha256_digest(self.config)


def seed_busybox_plus(daemon: Daemon, registry: Registry, extra: list[dict[str, bytes]], tag: str = "v1",
                      repo: str | None = None) -> Seeded:
    """busybox plus one layer per ``extra`` entry, uploaded to the registry under a fresh repository."""
    archive = daemon.root / f"busybox-{uuid.uuid4().hex[:6]}.tar"
    ok(daemon.cli("save", "-o", str(archive), "busybox:latest", timeout=60))
    try:
        config, layers = saved_image_parts(archive.read_bytes())
    finally:
        archive.unlink()
    cfg = json.loads(config)
    for files in extra:
        layer = file_layer(files)
        layers.append(layer)
        cfg["rootfs"]["diff_ids"].append(sha256_digest(layer))
        cfg.setdefault("history", []).append({"created": "2020-09-13T12:26:40Z", "created_by": "test layer"})
    config = json.dumps(cfg).encode()
    path = repo or f"conf/s{uuid.uuid4().hex[:8]}"
    digest = seed_image(registry, path, tag, config, layers)
    return Seeded(f"{registry.address}/{path}", tag, digest, config, layers)


def stream(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


def pull_raw(daemon: Daemon, image: str, tag: str = "", headers: dict[str, str] | None = None) -> Any:
    q = {"fromImage": image}
    if tag:
        q["tag"] = tag
    return daemon.raw("POST", "/images/create?" + urllib.parse.urlencode(q), headers=headers, timeout=120)


def cleanup(daemon: Daemon, *refs: str) -> None:
    for r in refs:
        daemon.cli("rmi", "-f", r)


# ============================================================================ pull

def test_pull_progress_stream(daemon: Daemon, busybox: str, registry: Registry) -> None:
    s = seed_busybox_plus(daemon, registry, [{"hello": b"hello from the registry\n"},
                                              {"big": os.urandom(600_000)}])
    try:
        resp = pull_raw(daemon, s.repo, s.tag)
        assert resp.status == 200, resp.body
        assert resp.headers["Content-Type"] == "application/json"
        msgs = stream(resp.body)
        path = s.repo.split("/", 1)[1]
        assert msgs[0] == {"status": f"Pulling from {path}", "id": s.tag}
        assert msgs[-2] == {"status": f"Digest: {s.digest}"}
        assert msgs[-1] == {"status": f"Status: Downloaded newer image for {s.ref}"}
        assert not any("error" in m for m in msgs)
        # The two new layers are downloaded and extracted in order.  busybox's layer is local already:
        # pydockerd knows it by its diff ID ("Already exists"); dockerd 20.10 knows layers only by the
        # registry blobs it pulled before, so it downloads it again.
        blobs = [m["id"] for m in msgs if m.get("status") == "Pull complete"]
        exists = [m for m in msgs if m.get("status") == "Already exists"]
        assert len(blobs) + len(exists) == 3 and len(blobs) >= 2
        assert exists == [{"status": "Already exists", "progressDetail": {}, "id": m["id"]} for m in exists]
        for blob in blobs:
            mine = [m for m in msgs if m.get("id") == blob]
            statuses = [m["status"] for m in mine]
            assert statuses[0] == "Pulling fs layer"
            assert statuses[-1] == "Pull complete"
            order = ["Pulling fs layer", "Verifying Checksum", "Download complete", "Extracting", "Pull complete"]
            firsts = [st for i, st in enumerate(statuses) if st in order and st not in statuses[:i]]
            assert firsts == [st for st in order if st in statuses]
            assert "Download complete" in statuses and "Extracting" in statuses
            for m in mine:
                if m["status"] in ("Downloading", "Extracting"):
                    d = m["progressDetail"]
                    assert set(d) == {"current", "total"} and 0 < d["current"] <= d["total"], m
                    assert m["progress"].startswith("[") and "/" in m["progress"], m
                else:
                    assert m == {"status": m["status"], "progressDetail": {}, "id": blob}
        big = [m for m in msgs if m.get("status") == "Downloading"]
        assert big, msgs  # the 600 kB layer reports its download
        info = inspect(daemon, s.ref, "image")
        assert info["Id"] == s.image_id
        assert f"{s.repo}@{s.digest}" in info["RepoDigests"]
        assert s.ref in info["RepoTags"]
        assert ok(daemon.cli("run", "--rm", s.ref, "cat", "/hello", timeout=60)) == "hello from the registry\n"

        # again: nothing to download
        msgs = stream(pull_raw(daemon, s.repo, s.tag).body)
        assert msgs == [{"status": f"Pulling from {path}", "id": s.tag}, {"status": f"Digest: {s.digest}"},
                        {"status": f"Status: Image is up to date for {s.ref}"}]
        until = int(time.time()) + 1
        events = stream(daemon.raw("GET", f"/events?since=0&until={until}&filters="
                                   + urllib.parse.quote(json.dumps({"type": ["image"], "event": ["pull"]}))).body)
        mine = [e for e in events if e["Actor"]["ID"] == s.ref]
        assert len(mine) == 2 and mine[0]["Actor"]["Attributes"]["name"] == s.repo
    finally:
        cleanup(daemon, s.ref)


def test_cli_pull_then_pull_by_digest(daemon: Daemon, busybox: str, registry: Registry) -> None:
    s = seed_busybox_plus(daemon, registry, [{"marker": b"digest\n"}])
    by_digest = f"{s.repo}@{s.digest}"
    try:
        out = ok(daemon.cli("pull", s.ref, timeout=120))
        assert f"{s.tag}: Pulling from {s.repo.split('/', 1)[1]}" in out
        assert "Already exists" in out and "Pull complete" in out
        assert f"Digest: {s.digest}" in out
        assert f"Status: Downloaded newer image for {s.ref}" in out
        assert out.rstrip().endswith(s.ref)
        ok(daemon.cli("rmi", s.ref))
        out = ok(daemon.cli("pull", by_digest, timeout=120))
        assert f"Status: Downloaded newer image for {by_digest}" in out
        info = inspect(daemon, by_digest, "image")
        assert info["Id"] == s.image_id and info["RepoTags"] == [] and info["RepoDigests"] == [by_digest]
        assert ok(daemon.cli("run", "--rm", by_digest, "cat", "/marker", timeout=60)) == "digest\n"
        out = ok(daemon.cli("pull", by_digest, timeout=120))
        assert f"Status: Image is up to date for {by_digest}" in out
    finally:
        cleanup(daemon, s.ref, by_digest)


def test_pull_all_tags(daemon: Daemon, busybox: str, registry: Registry) -> None:
    repo = f"conf/all{uuid.uuid4().hex[:6]}"
    a = seed_busybox_plus(daemon, registry, [{"a": b"a"}], tag="one", repo=repo)
    b = seed_busybox_plus(daemon, registry, [{"b": b"b"}], tag="two", repo=repo)
    try:
        out = ok(daemon.cli("pull", "--all-tags", a.repo, timeout=120))
        assert f"Digest: {a.digest}" in out and f"Digest: {b.digest}" in out
        assert inspect(daemon, a.ref, "image")["Id"] == a.image_id
        assert inspect(daemon, b.ref, "image")["Id"] == b.image_id
    finally:
        cleanup(daemon, a.ref, b.ref)


def test_docker_py_pull_and_inspect_distribution(client: Any, daemon: Daemon, busybox: str,
                                                 registry: Registry) -> None:
    s = seed_busybox_plus(daemon, registry, [{"py": b"py\n"}])
    try:
        image = client.images.pull(s.repo, tag=s.tag)
        assert image.id == s.image_id
        assert f"{s.repo}@{s.digest}" in image.attrs["RepoDigests"]
        dist = client.api.inspect_distribution(s.ref)
        assert dist["Descriptor"] == {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                                      "digest": s.digest, "size": dist["Descriptor"]["size"]}
        assert dist["Descriptor"]["size"] > 0
        assert dist["Platforms"] == [{"architecture": json.loads(s.config)["architecture"], "os": "linux"}]
        ok(daemon.cli("rmi", s.ref))
        image = client.images.pull(f"{s.repo}@{s.digest}")
        assert image.id == s.image_id
    finally:
        cleanup(daemon, s.ref, f"{s.repo}@{s.digest}")


def test_pull_oci_index_by_platform(daemon: Daemon, busybox: str, registry: Registry) -> None:
    from conformance_tests.registry import OCI_INDEX, put_manifest, upload_oci_image
    path = f"conf/multi{uuid.uuid4().hex[:6]}"
    arm = upload_oci_image(registry, path, [file_layer({"arch": b"arm64\n"})], "arm64")
    amd = upload_oci_image(registry, path, [file_layer({"arch": b"amd64\n"})], "amd64")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [arm, amd]}).encode()
    index_digest = put_manifest(registry, path, "v1", index, OCI_INDEX)
    repo = f"{registry.address}/{path}"
    try:
        msgs = stream(daemon.raw("POST", "/images/create?" + urllib.parse.urlencode(
            {"fromImage": repo, "tag": "v1", "platform": "linux/arm64"}), timeout=120).body)
        assert msgs[-2:] == [{"status": f"Digest: {index_digest}"},
                             {"status": f"Status: Downloaded newer image for {repo}:v1"}]
        info = inspect(daemon, f"{repo}:v1", "image")
        assert info["Architecture"] == "arm64" and info["RepoDigests"] == [f"{repo}@{index_digest}"]
        dist = json.loads(daemon.raw("GET", f"/distribution/{repo}:v1/json").body)
        assert dist == {"Descriptor": {"mediaType": OCI_INDEX, "digest": index_digest, "size": len(index)},
                        "Platforms": [{"architecture": "arm64", "os": "linux"},
                                      {"architecture": "amd64", "os": "linux"}]}
        resp = daemon.raw("POST", "/images/create?" + urllib.parse.urlencode(
            {"fromImage": repo, "tag": "v1", "platform": "linux/s390x"}))
        text = "no matching manifest for linux/s390x in the manifest list entries"
        assert resp.status == 200
        assert stream(resp.body) == [{"status": f"Pulling from {path}", "id": "v1"},
                                     {"errorDetail": {"message": text}, "error": text}]
        resp = daemon.raw("POST", "/images/create?" + urllib.parse.urlencode(
            {"fromImage": repo, "tag": "v1", "platform": "a/b/c/d"}))
        assert (resp.status, resp.message) == (400, '"a/b/c/d": cannot parse platform specifier: invalid argument')
    finally:
        cleanup(daemon, f"{repo}:v1")


# ============================================================================ bad input

def test_pull_unknown_tag(daemon: Daemon, busybox: str, registry: Registry) -> None:
    s = seed_busybox_plus(daemon, registry, [])
    resp = pull_raw(daemon, s.repo, "nothere")
    assert resp.status == 404
    assert resp.message == f"manifest for {s.repo}:nothere not found: manifest unknown: manifest unknown"
    proc = daemon.cli("pull", f"{registry.address}/conf/nothing:here", timeout=60)
    assert proc.returncode == 1
    assert (f"manifest for {registry.address}/conf/nothing:here not found: manifest unknown: manifest unknown"
            in proc.stderr)


def test_pull_invalid_references(daemon: Daemon) -> None:
    cases = [
        ({"fromImage": "a:b:c"}, "invalid reference format"),
        ({"fromImage": "a" * 256}, "repository name must not be more than 255 characters"),
        ({"fromImage": "busybox", "tag": "bad tag"}, "invalid tag format"),
    ]
    for query, text in cases:
        resp = daemon.raw("POST", "/images/create?" + urllib.parse.urlencode(query))
        assert (resp.status, resp.message) == (400, text), query
    resp = daemon.raw("POST", "/images/create?fromImage=conf/UPPER")
    assert resp.status == 400
    # 20.10: "...: repository name must be lowercase"; newer Docker names the repository
    assert re.fullmatch(r"invalid reference format: repository name (\(conf/UPPER\) )?must be lowercase",
                        resp.message), resp.message


def test_pull_registry_down(daemon: Daemon) -> None:
    port = free_port()
    resp = pull_raw(daemon, f"127.0.0.1:{port}/conf/x", "v1")
    assert resp.status == 500
    assert resp.message == (f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: '
                            "connect: connection refused")


def test_pull_corrupt_layer_then_good_pull(daemon: Daemon, busybox: str, registry: Registry) -> None:
    s = seed_busybox_plus(daemon, registry, [{"ok": b"fine\n"}, {"bad": os.urandom(50_000)}])
    manifest = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"http://{registry.address}/v2/{s.repo.split('/', 1)[1]}/manifests/{s.tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}), timeout=10).read())
    victim = manifest["layers"][-1]["digest"]
    path = blob_file(registry, victim)
    good = path.read_bytes()
    path.write_bytes(bytes(b ^ 0xFF for b in good[:64]) + good[64:])  # same length, wrong bytes
    try:
        resp = pull_raw(daemon, s.repo, s.tag)
        assert resp.status == 200
        msgs = stream(resp.body)
        text = f"filesystem layer verification failed for digest {victim}"
        assert msgs[-1] == {"errorDetail": {"message": text}, "error": text}
        assert daemon.raw("GET", f"/images/{s.ref}/json").status == 404
        assert s.ref not in ok(daemon.cli("images", "--format", "{{.Repository}}:{{.Tag}}"))
        path.write_bytes(good)
        out = ok(daemon.cli("pull", s.ref, timeout=120))
        assert f"Status: Downloaded newer image for {s.ref}" in out
        assert ok(daemon.cli("run", "--rm", s.ref, "cat", "/ok", timeout=60)) == "fine\n"
    finally:
        path.write_bytes(good)
        cleanup(daemon, s.ref)


# ============================================================================ push

def test_push_rmi_pull_roundtrip(daemon: Daemon, busybox: str, registry: Registry) -> None:
    ref = f"{registry.address}/conf/busybox:{uuid.uuid4().hex[:6]}"
    ok(daemon.cli("tag", "busybox", ref))
    try:
        out = ok(daemon.cli("push", ref, timeout=120))
        m = re.search(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)", out)
        assert m, out
        digest = m.group(1)
        # the registry now serves that manifest
        repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
        req = urllib.request.Request(
            f"http://{registry.address}/v2/{repo}/manifests/{tag}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                               "application/vnd.oci.image.manifest.v1+json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers["Docker-Content-Digest"] == digest
            manifest = json.loads(resp.read())
        assert manifest["schemaVersion"] == 2 and len(manifest["layers"]) == 1
        assert f"{ref.rsplit(':', 1)[0]}@{digest}" in inspect(daemon, ref, "image")["RepoDigests"]

        ok(daemon.cli("rmi", ref))
        out = ok(daemon.cli("pull", ref, timeout=120))
        assert f"Digest: {digest}" in out
        assert f"Status: Image is up to date for {ref}" in out or f"Status: Downloaded newer image for {ref}" in out
        assert inspect(daemon, ref, "image")["Id"] == busybox
        assert ok(daemon.cli("run", "--rm", ref, "echo", "pulled")) == "pulled\n"
    finally:
        daemon.cli("rmi", "-f", ref)


def test_docker_py_push_then_pull_by_digest(client: Any, daemon: Daemon, busybox: str,
                                            registry: Registry) -> None:
    repo = f"{registry.address}/conf/py{uuid.uuid4().hex[:6]}"
    ok(daemon.cli("tag", "busybox", f"{repo}:v1"))
    digest = ""
    try:
        out = ok(daemon.cli("push", f"{repo}:v1", timeout=120))
        digest = re.search(r"digest: (sha256:[0-9a-f]{64})", out).group(1)  # type: ignore[union-attr]
        ok(daemon.cli("rmi", f"{repo}:v1"))
        image = client.images.pull(f"{repo}@{digest}")
        assert image.id == busybox
        assert f"{repo}@{digest}" in image.attrs["RepoDigests"]
    finally:
        cleanup(daemon, f"{repo}:v1", *( [f"{repo}@{digest}"] if digest else []))


NO_AUTH = {"X-Registry-Auth": "e30="}  # base64 of "{}", what clients send without credentials


def push_raw(daemon: Daemon, repo: str, tag: str, headers: dict[str, str] | None = NO_AUTH) -> Any:
    q = "?" + urllib.parse.urlencode({"tag": tag}) if tag else ""
    return daemon.raw("POST", f"/images/{repo}/push{q}", headers=headers, timeout=120)


def registry_manifest(registry: Registry, path: str, ref: str) -> tuple[dict[str, Any], str]:
    req = urllib.request.Request(f"http://{registry.address}/v2/{path}/manifests/{ref}",
                                 headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read()), resp.headers["Docker-Content-Digest"]


def test_push_multilayer_stream_mount_and_layer_exists(daemon: Daemon, busybox: str, registry: Registry) -> None:
    s = seed_busybox_plus(daemon, registry, [{"one": b"1\n"}, {"two": os.urandom(300_000)}])
    target_path = f"conf/push{uuid.uuid4().hex[:6]}"
    target = f"{registry.address}/{target_path}"
    try:
        ok(daemon.cli("pull", s.ref, timeout=120))
        ok(daemon.cli("tag", s.ref, f"{target}:v2"))
        diff_ids = json.loads(s.config)["rootfs"]["diff_ids"]
        shorts = [d.split(":", 1)[1][:12] for d in diff_ids]
        resp = push_raw(daemon, target, "v2")
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
        msgs = stream(resp.body)
        assert msgs[0] == {"status": f"The push refers to repository [{target}]"}
        assert not any("error" in m for m in msgs), msgs
        manifest, digest = registry_manifest(registry, target_path, "v2")
        size = len(json.dumps(manifest, indent=3))  # the registry serves the bytes that were pushed
        assert msgs[-2]["status"] == f"v2: digest: {digest} size: {msgs[-1]['aux']['Size']}"
        assert msgs[-1] == {"progressDetail": {}, "aux": {"Tag": "v2", "Digest": digest,
                                                          "Size": msgs[-1]["aux"]["Size"]}}
        assert msgs[-1]["aux"]["Size"] > 0 and size > 0
        assert [m["id"] for m in msgs if m.get("status") == "Preparing"] == list(reversed(shorts))
        seed_path = s.repo.split("/", 1)[1]
        # (busybox's layer may come from another test's repository)
        ends = {
            m["id"]: m["status"]
            for m in msgs
            if m.get("status") in ("Pushed", "Layer already exists")
            or m.get("status", "").startswith("Mounted from conf/")
        }
        assert set(ends) == set(shorts)
        # the layers pulled from the seed repository are mounted, not uploaded again
        assert ends[shorts[1]] == ends[shorts[2]] == f"Mounted from {seed_path}"
        assert manifest["config"]["digest"] == s.image_id and len(manifest["layers"]) == 3
        assert f"{target}@{digest}" in inspect(daemon, f"{target}:v2", "image")["RepoDigests"]

        msgs = stream(push_raw(daemon, target, "v2").body)
        done = sorted((m for m in msgs if "id" in m and m["status"] != "Preparing"), key=lambda m: m["id"])
        assert done == [{"status": "Layer already exists", "progressDetail": {}, "id": i} for i in sorted(shorts)]
        assert msgs[-1]["aux"]["Digest"] == digest

        # and it can be pulled back and run after the local copy is gone
        ok(daemon.cli("rmi", f"{target}:v2", s.ref))
        out = ok(daemon.cli("pull", f"{target}:v2", timeout=120))
        assert f"Digest: {digest}" in out
        assert ok(daemon.cli("run", "--rm", f"{target}:v2", "cat", "/one", timeout=60)) == "1\n"
    finally:
        cleanup(daemon, s.ref, f"{target}:v2")


def test_push_all_tags_with_cli(daemon: Daemon, busybox: str, registry: Registry) -> None:
    repo = f"{registry.address}/conf/tags{uuid.uuid4().hex[:6]}"
    ok(daemon.cli("tag", "busybox", f"{repo}:a"))
    ok(daemon.cli("tag", "busybox", f"{repo}:b"))
    try:
        out = ok(daemon.cli("push", "--all-tags", repo, timeout=120))
        assert f"The push refers to repository [{repo}]" in out
        assert re.search(r"a: digest: sha256:[0-9a-f]{64} size: \d+", out), out
        assert re.search(r"b: digest: sha256:[0-9a-f]{64} size: \d+", out), out
        with urllib.request.urlopen(f"http://{repo.split('/', 1)[0]}/v2/{repo.split('/', 1)[1]}/tags/list",
                                    timeout=10) as resp:
            assert sorted(json.loads(resp.read())["tags"]) == ["a", "b"]
    finally:
        cleanup(daemon, f"{repo}:a", f"{repo}:b")


def test_push_unknown_image(daemon: Daemon, registry: Registry) -> None:
    repo = f"{registry.address}/conf/none{uuid.uuid4().hex[:6]}"
    resp = push_raw(daemon, repo, "v1")
    assert resp.status == 200
    text = f"An image does not exist locally with the tag: {repo}"
    assert stream(resp.body) == [{"status": f"The push refers to repository [{repo}]"},
                                 {"errorDetail": {"message": text}, "error": text}]
    proc = daemon.cli("push", f"{repo}:v1", timeout=60)
    assert proc.returncode == 1 and text in proc.stderr


def test_push_without_auth_header(daemon: Daemon, busybox: str, registry: Registry) -> None:
    resp = push_raw(daemon, f"{registry.address}/conf/x", "v1", headers={})
    assert resp.status == 400
    assert resp.message.lower().startswith("bad parameters and missing x-registry-auth")


def test_push_registry_down(daemon: Daemon, busybox: str) -> None:
    port = free_port()
    repo = f"127.0.0.1:{port}/conf/down"
    ok(daemon.cli("tag", "busybox", f"{repo}:v1"))
    try:
        msgs = stream(push_raw(daemon, repo, "v1").body)
        text = f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection refused'
        assert msgs == [{"status": f"The push refers to repository [{repo}]"},
                        {"errorDetail": {"message": text}, "error": text}]
    finally:
        cleanup(daemon, f"{repo}:v1")


# ============================================================================ login

@pytest.fixture(scope="module")
def auth_registry(daemon: Daemon) -> Iterator[Registry]:
    reg = start_registry(daemon.root / f"registry-auth-{uuid.uuid4().hex[:6]}", users={"alice": "s3cret"})
    try:
        yield reg
    finally:
        reg.stop()


def test_login_push_pull_logout(daemon: Daemon, busybox: str, auth_registry: Registry) -> None:
    addr = auth_registry.address
    proc = daemon.cli("login", "-u", "alice", "--password-stdin", addr, input="wrong\n")
    assert proc.returncode == 1
    assert f"login attempt to http://{addr}/v2/ failed with status: 401 Unauthorized" in proc.stderr
    ref = f"{addr}/conf/private:v1"
    ok(daemon.cli("tag", "busybox", ref))
    try:
        # nothing sent: the registry's basic challenge cannot be answered
        proc = daemon.cli("pull", ref, timeout=60)
        assert proc.returncode == 1
        assert f'Head "http://{addr}/v2/conf/private/manifests/v1": no basic auth credentials' in proc.stderr

        out = ok(daemon.cli("login", "-u", "alice", "--password-stdin", addr, input="s3cret\n"))
        assert "Login Succeeded" in out
        config = json.loads((daemon.config_dir / "config.json").read_text())
        assert addr in config["auths"]
        out = ok(daemon.cli("push", ref, timeout=120))
        assert re.search(r"v1: digest: sha256:[0-9a-f]{64} size: \d+", out), out
        ok(daemon.cli("rmi", ref))
        out = ok(daemon.cli("pull", ref, timeout=120))
        assert f"Status: Downloaded newer image for {ref}" in out or f"Image is up to date for {ref}" in out
        ok(daemon.cli("logout", addr))
        assert addr not in json.loads((daemon.config_dir / "config.json").read_text()).get("auths", {})
    finally:
        daemon.cli("logout", addr)
        cleanup(daemon, ref)


def test_auth_endpoint(daemon: Daemon, auth_registry: Registry, registry: Registry) -> None:
    addr = auth_registry.address
    resp = daemon.raw("POST", "/auth", json.dumps({"username": "alice", "password": "s3cret",
                                                   "serveraddress": addr}))
    assert resp.status == 200 and resp.json() == {"IdentityToken": "", "Status": "Login Succeeded"}
    resp = daemon.raw("POST", "/auth", json.dumps({"username": "alice", "password": "nope",
                                                   "serveraddress": addr}))
    assert resp.message == f"login attempt to http://{addr}/v2/ failed with status: 401 Unauthorized"
    resp = daemon.raw("POST", "/auth", json.dumps({"serveraddress": addr}))
    assert (resp.status, resp.message) == (500, f'Get "http://{addr}/v2/": no basic auth credentials')
    # a registry without auth accepts anything
    resp = daemon.raw("POST", "/auth", json.dumps({"username": "x", "password": "y",
                                                   "serveraddress": registry.address}))
    assert resp.status == 200 and resp.json()["Status"] == "Login Succeeded"


@pytest.mark.reference_differs("dockerd 20.10 answers a failed login with 500; newer Docker with 401")
def test_auth_wrong_password_is_401(daemon: Daemon, auth_registry: Registry) -> None:
    resp = daemon.raw("POST", "/auth", json.dumps({"username": "alice", "password": "nope",
                                                   "serveraddress": auth_registry.address}))
    assert resp.status == 401


def test_docker_py_login_push_pull(client: Any, daemon: Daemon, busybox: str, auth_registry: Registry) -> None:
    addr = auth_registry.address
    repo = f"{addr}/conf/py{uuid.uuid4().hex[:6]}"
    ok(daemon.cli("tag", "busybox", f"{repo}:v1"))
    try:
        result = client.login(username="alice", password="s3cret", registry=addr)
        assert result["Status"] == "Login Succeeded"
        lines = list(client.images.push(repo, tag="v1", stream=True, decode=True))
        assert not any("error" in m for m in lines), lines
        digest = lines[-1]["aux"]["Digest"]
        ok(daemon.cli("rmi", f"{repo}:v1"))
        image = client.images.pull(repo, tag="v1")
        assert image.id == busybox and f"{repo}@{digest}" in image.attrs["RepoDigests"]
        with pytest.raises(Exception) as err:
            import docker
            docker.DockerClient(base_url=daemon.host, version="auto").login(
                username="alice", password="bad", registry=addr, reauth=True)
        assert "401 Unauthorized" in str(err.value)
    finally:
        cleanup(daemon, f"{repo}:v1")


# ============================================================================ search

def test_search_docker_hub_unreachable(daemon: Daemon) -> None:
    # No outside network here: dockerd fails to resolve the index; pydockerd answers the same without trying.
    resp = daemon.raw("GET", "/images/search?term=foo&limit=5")
    assert resp.status == 500
    assert re.fullmatch(r'Get "https://index\.docker\.io/v1/search\?q=foo&n=5": dial tcp: lookup index\.docker\.io'
                        r'( on [0-9a-f.:\[\]]+)?: no such host', resp.message), resp.message
    proc = daemon.cli("search", "busybox", timeout=60)
    assert proc.returncode == 1 and 'Get "https://index.docker.io/v1/search?q=busybox&n=25"' in proc.stderr


def test_search_bad_limit(daemon: Daemon) -> None:
    for limit in ("0", "101"):
        resp = daemon.raw("GET", f"/images/search?term=foo&limit={limit}")
        assert resp.status == 400
        assert resp.message.lower() == f"limit {limit} is outside the range of [1, 100]"


def test_search_private_registry(daemon: Daemon, registry: Registry) -> None:
    # docker-registry (v2) has no v1 search API
    resp = daemon.raw("GET", f"/images/search?term={registry.address}/conf")
    assert (resp.status, resp.message) == (500, "Unexpected status code 404")
    port = free_port()
    resp = daemon.raw("GET", f"/images/search?term=127.0.0.1:{port}/conf")
    assert resp.status == 500
    refused = f"dial tcp 127.0.0.1:{port}: connect: connection refused"
    assert resp.message == (f'invalid registry endpoint "http://127.0.0.1:{port}/v1/". '
                            f'HTTPS attempt: Get "https://127.0.0.1:{port}/v1/_ping": {refused}. '
                            f'HTTP attempt: Get "http://127.0.0.1:{port}/v1/_ping": {refused}')


# ============================================================================ TLS and token auth

@pytest.fixture(scope="module")
def tls_registry(daemon: Daemon) -> Iterator[Registry]:
    reg = start_registry(daemon.root / f"registry-tls-{uuid.uuid4().hex[:6]}", tls=True)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def token_registry(daemon: Daemon) -> Iterator[Registry]:
    reg = start_registry(daemon.root / f"registry-token-{uuid.uuid4().hex[:6]}", token_users={"bob": "pw"})
    try:
        yield reg
    finally:
        reg.stop()


def test_tls_registry_push_pull(daemon: Daemon, busybox: str, tls_registry: Registry) -> None:
    # Loopback registries are insecure by default: HTTPS is tried first, without verifying the certificate.
    ref = f"{tls_registry.address}/conf/tls:v1"
    ok(daemon.cli("tag", "busybox", ref))
    try:
        out = ok(daemon.cli("push", ref, timeout=120))
        digest = re.search(r"v1: digest: (sha256:[0-9a-f]{64})", out).group(1)  # type: ignore[union-attr]
        req = urllib.request.Request(f"https://{tls_registry.address}/v2/conf/tls/manifests/v1",
                                     headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        with urllib.request.urlopen(req, timeout=10, context=tls_registry.ssl_context()) as resp:
            assert resp.headers["Docker-Content-Digest"] == digest
        ok(daemon.cli("rmi", ref))
        out = ok(daemon.cli("pull", ref, timeout=120))
        assert f"Digest: {digest}" in out
        assert inspect(daemon, ref, "image")["Id"] == busybox
    finally:
        cleanup(daemon, ref)


def b64_auth(**kw: str) -> dict[str, str]:
    import base64
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(kw).encode()).decode()}


def test_token_registry_login_push_pull(daemon: Daemon, busybox: str, token_registry: Registry) -> None:
    addr = token_registry.address
    repo = f"{addr}/conf/tok{uuid.uuid4().hex[:6]}"
    path = repo.split("/", 1)[1]
    ok(daemon.cli("tag", "busybox", f"{repo}:v1"))
    try:
        # anonymous: the token server grants pull only
        msgs = stream(push_raw(daemon, repo, "v1").body)
        text = "denied: requested access to the resource is denied"
        assert msgs[-1] == {"errorDetail": {"message": text}, "error": text}
        # wrong password: the token server's details, as dockerd reports them
        msgs = stream(push_raw(daemon, repo, "v1", headers=b64_auth(username="bob", password="bad")).body)
        text = "unauthorized: incorrect username or password"
        assert msgs[-1] == {"errorDetail": {"message": text}, "error": text}
        resp = daemon.raw("POST", "/auth", json.dumps({"username": "bob", "password": "bad", "serveraddress": addr}))
        assert resp.message == f'Get "http://{addr}/v2/": unauthorized: incorrect username or password'

        out = ok(daemon.cli("login", "-u", "bob", "--password-stdin", addr, input="pw\n"))
        assert "Login Succeeded" in out
        out = ok(daemon.cli("push", f"{repo}:v1", timeout=120))
        assert re.search(r"v1: digest: sha256:[0-9a-f]{64} size: \d+", out), out
        # the CLI keeps the refresh token the login returned, and the daemon trades it for tokens
        asked = token_registry.token_server.requests  # type: ignore[union-attr]
        assert ("refresh:bob", [f"repository:{path}:push,pull"]) in asked, asked
        ok(daemon.cli("logout", addr))
        ok(daemon.cli("rmi", f"{repo}:v1"))
        out = ok(daemon.cli("pull", f"{repo}:v1", timeout=120))  # anonymous pull is allowed
        assert f"Status: Downloaded newer image for {repo}:v1" in out
        assert ("", [f"repository:{path}:pull"]) in token_registry.token_server.requests  # type: ignore[union-attr]
        resp = pull_raw(daemon, repo, "v1", headers=b64_auth(username="bob", password="bad"))
        assert (resp.status, resp.message) == (
            500, f'Head "http://{addr}/v2/{path}/manifests/v1": unauthorized: incorrect username or password')
    finally:
        daemon.cli("logout", addr)
        cleanup(daemon, f"{repo}:v1")


# ============================================================================ crash

def test_kill9_during_pull_then_pull_completes(daemon: Daemon, busybox: str, registry: Registry) -> None:
    from conformance_tests.harness import UnixHTTPConnection, socket_path_of
    daemon.require_private()
    s = seed_busybox_plus(daemon, registry, [{"small": b"small\n"}, {"big": os.urandom(12_000_000)},
                                              {"last": b"last\n"}])
    conn = UnixHTTPConnection(socket_path_of(daemon.host), timeout=60)
    try:
        conn.request("POST", "/images/create?" + urllib.parse.urlencode({"fromImage": s.repo, "tag": s.tag}))
        resp = conn.getresponse()
        assert resp.status == 200
        first = json.loads(resp.readline())
        assert first["status"].startswith("Pulling from")
        daemon.restart(kill9=True)  # in the middle of the downloads
    finally:
        conn.close()
    try:
        # the store still works, and whatever was half-done does not get in the way
        assert busybox in ok(daemon.cli("images", "-q", "--no-trunc"))
        out = ok(daemon.cli("pull", s.ref, timeout=120))
        assert f"Digest: {s.digest}" in out
        assert inspect(daemon, s.ref, "image")["Id"] == s.image_id
        assert ok(daemon.cli("run", "--rm", s.ref, "cat", "/last", timeout=60)) == "last\n"
    finally:
        cleanup(daemon, s.ref)


# ============================================================================ a second daemon

@pytest.fixture
def second_daemon(daemon: Daemon) -> Iterator[Daemon]:
    """Another private daemon of the same kind, with its own root and no default bridge."""
    from conformance_tests.harness import private_daemon
    if not daemon.private:
        pytest.skip("needs private daemons")
    d = private_daemon(daemon.kind, bridge="none")
    try:
        yield d
    finally:
        d.teardown()


def test_push_then_pull_in_a_fresh_daemon(daemon: Daemon, busybox: str, registry: Registry,
                                          second_daemon: Daemon) -> None:
    ref = f"{registry.address}/conf/fresh{uuid.uuid4().hex[:6]}:v1"
    ok(daemon.cli("tag", "busybox", ref))
    try:
        digest = re.search(r"v1: digest: (sha256:[0-9a-f]{64})",  # type: ignore[union-attr]
                           ok(daemon.cli("push", ref, timeout=120))).group(1)
        out = ok(second_daemon.cli("pull", ref, timeout=120))
        assert "Pull complete" in out and f"Digest: {digest}" in out
        assert inspect(second_daemon, ref, "image")["Id"] == busybox
        assert ok(second_daemon.cli("run", "--rm", "--network", "none", ref, "echo", "fresh", timeout=60)) == "fresh\n"
    finally:
        cleanup(daemon, ref)


def test_token_registry_identity_token(daemon: Daemon, busybox: str, token_registry: Registry) -> None:
    addr = token_registry.address
    repo = f"{addr}/private/id{uuid.uuid4().hex[:6]}"
    ok(daemon.cli("tag", "busybox", f"{repo}:v1"))
    try:
        resp = daemon.raw("POST", "/auth", json.dumps({"username": "bob", "password": "pw", "serveraddress": addr}))
        assert resp.status == 200
        identity = resp.json()["IdentityToken"]
        assert identity.startswith("refresh-")  # the token server's refresh token, for the client to keep
        msgs = stream(push_raw(daemon, repo, "v1", headers=b64_auth(identitytoken=identity,
                                                                   serveraddress=addr)).body)
        assert "aux" in msgs[-1], msgs
        ok(daemon.cli("rmi", f"{repo}:v1"))
        resp = pull_raw(daemon, repo, "v1")  # anonymous: no access to private/
        assert (resp.status, resp.message) == (
            404, f"pull access denied for {repo}, repository does not exist or may require 'docker login': "
                 "denied: requested access to the resource is denied")
        resp = pull_raw(daemon, repo, "v1", headers=b64_auth(identitytoken=identity))
        assert stream(resp.body)[-1] == {"status": f"Status: Downloaded newer image for {repo}:v1"}
        path = repo.split("/", 1)[1]
        assert ("refresh:bob", [f"repository:{path}:pull"]) in token_registry.token_server.requests  # type: ignore[union-attr]
    finally:
        cleanup(daemon, f"{repo}:v1")


def test_push_committed_multilayer_image_again_then_run_in_a_fresh_daemon(
        daemon: Daemon, busybox: str, registry: Registry, second_daemon: Daemon, name: str) -> None:
    """The issue's round trip: an image of three layers made with `docker commit`, pushed, pushed
    again (every layer already there), pulled by a second fresh daemon and run there."""
    ref = f"{registry.address}/conf/committed{uuid.uuid4().hex[:6]}:v1"
    step1, step2 = f"{name}-s1", f"{name}-s2"
    try:
        ok(daemon.cli("run", "--name", step1, "busybox", "sh", "-c", "echo one > /one; rm /bin/ls"))
        ok(daemon.cli("commit", step1, f"{name}:s1"))
        ok(daemon.cli("run", "--name", step2, f"{name}:s1", "sh", "-c", "mkdir -p /data && echo two > /data/two"))
        ok(daemon.cli("commit", "-c", 'CMD ["cat", "/one", "/data/two"]', step2, ref))
        assert len(inspect(daemon, ref, "image")["RootFS"]["Layers"]) == 3
        first = ok(daemon.cli("push", ref, timeout=120))
        assert first.count("Pushed") >= 2, first
        digest = re.search(r"v1: digest: (sha256:[0-9a-f]{64})", first).group(1)  # type: ignore[union-attr]
        again = ok(daemon.cli("push", ref, timeout=120))
        assert again.count("Layer already exists") == 3 and "Pushed" not in again, again
        assert f"v1: digest: {digest}" in again
        out = ok(second_daemon.cli("pull", ref, timeout=120))
        assert f"Digest: {digest}" in out
        assert ok(second_daemon.cli("run", "--rm", "--network", "none", ref, timeout=60)) == "one\ntwo\n"
        gone = second_daemon.cli("run", "--rm", "--network", "none", ref, "ls", "/", timeout=60)
        assert gone.returncode != 0, "the whiteout of /bin/ls travelled with the layer"
    finally:
        daemon.cli("rm", "-f", step1, step2)
        cleanup(daemon, ref, f"{name}:s1")
        cleanup(second_daemon, ref)
