"""The RegistryAPI contract (engine/registry/api.py): HttpRegistry against a real
docker-registry on loopback, and the in-memory FakeRegistry."""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance_tests.registry import Registry, start_registry
from engine.errors import NotFound
from engine.registry.api import RegistryAPI, RepositoryAPI
from engine.registry.auth import AuthConfig
from engine.registry.client import RegistryConfig, RegistryError
from engine.registry.distribution import HttpRegistry
from engine.testing.registry import FakeRegistry

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture(scope="module")
def real_registry() -> Iterator[Registry]:
    if shutil.which("docker-registry") is None:
        pytest.fail("docker-registry (Debian package) is needed for the registry contract")
    root = Path(tempfile.mkdtemp(prefix="registry-contract-", dir="/var/tmp"))
    reg = start_registry(root / "reg")
    try:
        yield reg
    finally:
        reg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["http", "fake"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegistryAPI]:
    impl: RegistryAPI
    if request.param == "fake":
        impl = FakeRegistry()
    else:
        reg = request.getfixturevalue("real_registry")
        impl = HttpRegistry(reg.address, AuthConfig(), RegistryConfig(certs_dir=tmp_path / "certs"))
    try:
        impl.ping()
        yield impl
    finally:
        impl.close()


def repo_name() -> str:
    return f"contract/{uuid.uuid4().hex[:12]}"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_for(config: bytes, layers: list[bytes]) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "size": len(config), "digest": digest(config)},
        "layers": [{"mediaType": LAYER, "size": len(b), "digest": digest(b)} for b in layers],
    }, indent=3).encode()


def push_image(repo: RepositoryAPI, tag: str) -> tuple[bytes, bytes, bytes]:
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"layer bytes " + uuid.uuid4().bytes
    assert repo.put_blob(config) == digest(config)
    assert repo.put_blob(layer) == digest(layer)
    body = manifest_for(config, [layer])
    assert repo.put_manifest(tag, MANIFEST, body) == digest(body)
    return config, layer, body


def test_implements_the_protocol(registry: RegistryAPI) -> None:
    assert isinstance(registry, RegistryAPI)
    assert isinstance(registry.repository(repo_name()), RepositoryAPI)


def test_blobs(registry: RegistryAPI) -> None:
    repo = registry.repository(repo_name())
    data = b"some blob " + uuid.uuid4().bytes
    assert repo.blob_size(digest(data)) is None
    with pytest.raises(NotFound, match="blob unknown"):
        repo.get_blob(digest(data))
    assert repo.put_blob(data) == digest(data)
    assert repo.put_blob(data) == digest(data)         # already there: nothing to upload
    assert repo.blob_size(digest(data)) == len(data)
    assert repo.get_blob(digest(data)) == data


def test_manifests_by_tag_and_digest_and_tags(registry: RegistryAPI) -> None:
    repo = registry.repository(repo_name())
    _, _, body = push_image(repo, "v1")
    push_image(repo, "v2")
    assert repo.get_manifest("v1") == (body, MANIFEST, digest(body))
    assert repo.get_manifest(digest(body)) == (body, MANIFEST, digest(body))
    assert repo.tags() == ["v1", "v2"]
    repo.put_manifest("v3", MANIFEST, body)             # a second tag for the same manifest
    assert repo.get_manifest("v3")[2] == digest(body)


def test_unknown_names(registry: RegistryAPI) -> None:
    repo = registry.repository(repo_name())
    with pytest.raises(NotFound, match="name unknown"):
        repo.tags()
    with pytest.raises(NotFound, match="manifest unknown"):
        repo.get_manifest("latest")
    push_image(repo, "v1")
    with pytest.raises(NotFound, match="manifest unknown"):
        repo.get_manifest("nope")


def test_a_manifest_needs_its_blobs(registry: RegistryAPI) -> None:
    repo = registry.repository(repo_name())
    config = b'{"os":"linux"}'
    repo.put_blob(config)
    body = manifest_for(config, [b"never uploaded " + uuid.uuid4().bytes])
    with pytest.raises(RegistryError, match="manifest blob unknown"):
        repo.put_manifest("v1", MANIFEST, body)
    with pytest.raises(NotFound):
        repo.get_manifest("v1")


def test_an_index_of_pushed_manifests(registry: RegistryAPI) -> None:
    repo = registry.repository(repo_name())
    _, _, body = push_image(repo, "amd64")
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": MANIFEST, "size": len(body), "digest": digest(body),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    assert repo.put_manifest("multi", INDEX, index) == digest(index)
    assert repo.get_manifest("multi") == (index, INDEX, digest(index))


def test_cross_repository_mount(registry: RegistryAPI) -> None:
    source_name = repo_name()
    source, target = registry.repository(source_name), registry.repository(repo_name())
    _, layer, _ = push_image(source, "v1")
    assert target.blob_size(digest(layer)) is None
    assert target.mount_blob(digest(layer), source_name) is True
    assert target.blob_size(digest(layer)) == len(layer)
    missing = digest(b"nowhere " + uuid.uuid4().bytes)
    assert target.mount_blob(missing, source_name) is False
    assert target.blob_size(missing) is None
