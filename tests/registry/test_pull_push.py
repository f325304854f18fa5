"""The puller and pusher with a real image store (vfs) and a real docker-registry on loopback."""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance_tests.registry import (
    Registry,
    blob_file,
    put_manifest,
    seed_image,
    sha256_digest,
    start_registry,
    upload_oci_image,
)
from engine.content.store import ContentStore
from engine.errors import EngineError, NotFound
from engine.images import reference as refs
from engine.images.store import ImageStore
from engine.registry.auth import AuthConfig
from engine.registry.client import RegistryClient, RegistryConfig
from engine.registry.service import RegistryService
from engine.snapshots import make_snapshotter
from engine.state.db import Database

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry not installed")
    root = Path(tempfile.mkdtemp(prefix="registry2-unit-", dir="/var/tmp"))
    reg = start_registry(root / "reg")
    try:
        yield reg
    finally:
        reg.stop()
        shutil.rmtree(root, ignore_errors=True)


class Env:
    def __init__(self, root: Path, certs: Path | None = None) -> None:
        self.root = root
        self.db = Database(root / "db.sqlite")
        self.content = ContentStore(root / "content", root / "tmp")
        self.snap = make_snapshotter("vfs", root / "vfs", self.db)
        self.images = ImageStore(self.db, self.content, self.snap, root / "tmp")
        self.registry = RegistryService(self.images, self.db, RegistryConfig(certs_dir=certs or root / "certs"))
        self.messages: list[dict[str, Any]] = []

    def pull(self, ref: str, platform: str = "") -> list[str]:
        return self.registry.pull(refs.parse_normalized(ref), AuthConfig(), self.messages.append, platform)


@pytest.fixture
def env() -> Iterator[Env]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    root = Path(tempfile.mkdtemp(prefix="registry2-env-", dir="/var/tmp"))
    e = Env(root)
    try:
        yield e
    finally:
        e.db.close()
        shutil.rmtree(root, ignore_errors=True)


def layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def config_for(layers: list[bytes], arch: str = "amd64") -> bytes:
    return json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
                       "rootfs": {"type": "layers", "diff_ids": [sha256_digest(l) for l in layers]}}).encode()


def oci_image(reg: Registry, repo: str, layers: list[bytes], arch: str) -> dict[str, Any]:
    return upload_oci_image(reg, repo, layers, arch)


def test_oci_index_platform_selection(env: Env, registry: Registry) -> None:
    amd = [layer({"amd": b"x86\n"})]
    arm = [layer({"arm": b"arm\n"})]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        oci_image(registry, "u/multi", arm, "arm64"), oci_image(registry, "u/multi", amd, "amd64")]}).encode()
    index_digest = put_manifest(registry, "u/multi", "v1", index, OCI_INDEX)
    ref = f"{registry.address}/u/multi:v1"
    env.pull(ref)
    image = env.images.get(ref)
    assert image.architecture == "amd64" and image.diff_ids == (sha256_digest(amd[0]),)
    # the digest recorded is the index's, as dockerd records it
    assert f"{registry.address}/u/multi@{index_digest}" in image.repo_digests
    env.pull(ref, platform="linux/arm64")
    assert env.images.get(ref).architecture == "arm64"
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x in the manifest list entries"):
        env.pull(ref, platform="linux/s390x")
    dist = env.registry.inspect_distribution(ref, AuthConfig())
    assert dist["Descriptor"] == {"mediaType": OCI_INDEX, "digest": index_digest, "size": len(index)}
    assert dist["Platforms"] == [{"architecture": "arm64", "os": "linux"}, {"architecture": "amd64", "os": "linux"}]


def test_uncompressed_layers_and_repo_digest(env: Env, registry: Registry) -> None:
    layers = [layer({"a": b"1"}), layer({"b": b"2"})]
    digest = seed_image(registry, "u/plain", "v1", config_for(layers), layers, compress=False)
    env.pull(f"{registry.address}/u/plain:v1")
    image = env.images.get(f"{registry.address}/u/plain:v1")
    assert image.repo_digests == (f"{registry.address}/u/plain@{digest}",)
    # the uncompressed blob is the layer itself: it stays in the store as the layer's tar
    assert env.content.read_bytes(sha256_digest(layers[1])) == layers[1]
    assert [m["status"] for m in env.messages if m.get("id") == sha256_digest(layers[0])[7:19]][-1] == "Pull complete"


def test_corrupt_blob_keeps_nothing(env: Env, registry: Registry) -> None:
    layers = [layer({"ok": b"fine"}), layer({"bad": os.urandom(20_000)})]
    seed_image(registry, "u/corrupt", "v1", config_for(layers), layers)
    blob = gzip.compress(layers[1], compresslevel=1, mtime=0)
    path = blob_file(registry, sha256_digest(blob))
    good = path.read_bytes()
    path.write_bytes(b"\0" * len(good))
    try:
        with pytest.raises(EngineError, match="filesystem layer verification failed for digest"):
            env.pull(f"{registry.address}/u/corrupt:v1")
        assert not env.images.exists(f"{registry.address}/u/corrupt:v1")
        assert not list((env.root / "tmp").glob("ingest-*")), "unverified data left behind"
        assert not env.content.exists(sha256_digest(layers[1]))
    finally:
        path.write_bytes(good)
    env.pull(f"{registry.address}/u/corrupt:v1")
    assert env.images.get(f"{registry.address}/u/corrupt:v1").diff_ids[1] == sha256_digest(layers[1])


def test_interrupted_ingest_is_removed_at_start(env: Env) -> None:
    leftover = env.root / "tmp" / "ingest-pull-0123456789abcdef"
    leftover.write_bytes(b"half a layer")
    ContentStore(env.root / "content", env.root / "tmp")
    assert not leftover.exists()


def test_push_then_mount_and_exists(env: Env, registry: Registry) -> None:
    layers = [layer({"p": b"push me"}), layer({"q": os.urandom(3000)})]
    seed_image(registry, "u/src", "v1", config_for(layers), layers)
    env.pull(f"{registry.address}/u/src:v1")
    env.images.tag(f"{registry.address}/u/src:v1", f"{registry.address}/u/dst", "v2")
    msgs: list[dict[str, Any]] = []
    env.registry.push(f"{registry.address}/u/dst", "v2", AuthConfig(), msgs.append)
    assert [m["status"] for m in msgs if m.get("status", "").startswith("Mounted")] == ["Mounted from u/src"] * 2
    assert msgs[-1]["aux"]["Tag"] == "v2"
    msgs.clear()
    env.registry.push(f"{registry.address}/u/dst", "v2", AuthConfig(), msgs.append)
    assert sorted(m["status"] for m in msgs if "id" in m and m["status"] != "Preparing") == ["Layer already exists"] * 2
    # a fresh local image: uploaded (chunked), then found again
    env.images.import_tar(io.BytesIO(layer({"new": os.urandom(5000)})), repo_tag=f"{registry.address}/u/new:v1")
    msgs.clear()
    env.registry.push(f"{registry.address}/u/new", "v1", AuthConfig(), msgs.append)
    assert [m["status"] for m in msgs if m.get("status") == "Pushed"] == ["Pushed"]
    digest = msgs[-1]["aux"]["Digest"]
    assert f"{registry.address}/u/new@{digest}" in env.images.get(f"{registry.address}/u/new:v1").repo_digests


def test_ca_from_certs_dir(env: Env) -> None:
    """A registry that is not insecure is reached over verified TLS with the CA from <certs-dir>/<host:port>/."""
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry not installed")
    reg = start_registry(env.root / "tlsreg", tls=True)
    try:
        certs = env.root / "certs"

        def client() -> RegistryClient:
            c = RegistryClient(reg.address, AuthConfig(), RegistryConfig(certs_dir=certs))
            c.insecure = False  # as if the registry were on another host: no http fallback, verified TLS
            return c

        with client() as c, pytest.raises(EngineError, match="x509: certificate signed by unknown authority"):
            c.ping()
        (certs / reg.address).mkdir(parents=True)
        shutil.copy(reg.root / "ca.crt", certs / reg.address / "ca.crt")
        with client() as c:
            c.ping()
            assert c.base == f"https://{reg.address}"
    finally:
        reg.stop()


def test_client_certificate_from_certs_dir(env: Env) -> None:
    """A registry that wants client certificates gets client.cert/client.key from the certs dir."""
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry not installed")
    reg = start_registry(env.root / "mtls", tls=True, client_certs=True)
    try:
        certs = env.root / "certs"
        d = certs / reg.address
        d.mkdir(parents=True)
        shutil.copy(reg.root / "ca.crt", d / "ca.crt")

        def client() -> RegistryClient:
            c = RegistryClient(reg.address, AuthConfig(), RegistryConfig(certs_dir=certs))
            c.insecure = False
            return c

        with client() as c, pytest.raises(EngineError, match="tls: bad certificate"):
            c.ping()  # no client certificate: the handshake is refused
        shutil.copy(reg.root / "client.cert", d / "client.cert")
        shutil.copy(reg.root / "client.key", d / "client.key")
        with client() as c:
            c.ping()
            assert c.base == f"https://{reg.address}"
    finally:
        reg.stop()


def test_cancelled_pull_keeps_nothing(env: Env, registry: Registry) -> None:
    """The client left: the next progress report stops the pull, and nothing half-made stays."""
    layers = [layer({"a": os.urandom(2_000_000)}), layer({"b": os.urandom(2_000_000)})]
    seed_image(registry, "u/cancel", "v1", config_for(layers), layers)
    seen: list[str] = []

    def emit(msg: dict[str, Any]) -> None:
        seen.append(msg.get("status", ""))
        if msg.get("status") in ("Downloading", "Extracting"):
            raise EngineError("context canceled")

    with pytest.raises(EngineError, match="context canceled"):
        env.registry.pull(refs.parse_normalized(f"{registry.address}/u/cancel:v1"), AuthConfig(), emit)
    assert not env.images.exists(f"{registry.address}/u/cancel:v1")
    assert not env.db.query_sync("SELECT 1 FROM image_layers")
    assert not [i for i in env.snap.list() if i.key.startswith("extract-")]
    env.pull(f"{registry.address}/u/cancel:v1")
    assert env.images.get(f"{registry.address}/u/cancel:v1").diff_ids == tuple(sha256_digest(l) for l in layers)
