"""An in-memory registry (the ``RegistryAPI`` Protocol), with docker-registry's rules and words:
blobs belong to a repository (a mount links one from another), a manifest is refused while a
blob it references is missing, unknown names get the registry's error codes."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ..registry.client import RegistryError, RegistryNotFound

MANIFEST_LIST_TYPES = ("application/vnd.docker.distribution.manifest.list.v2+json",
                       "application/vnd.oci.image.index.v1+json")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class _Repo:
    tags: dict[str, str] = field(default_factory=dict)                    # tag -> manifest digest
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # digest -> (media, body)
    blobs: set[str] = field(default_factory=set)


class FakeRepository:
    def __init__(self, registry: FakeRegistry, path: str) -> None:
        self._registry = registry
        self.path = path

    def _repo(self, create: bool = False) -> _Repo:
        repo = self._registry.repos.get(self.path)
        if repo is None:
            if not create:
                raise RegistryNotFound("name unknown: repository name not known to registry", 404, "NAME_UNKNOWN")
            repo = self._registry.repos[self.path] = _Repo()
        return repo

    def tags(self) -> list[str]:
        return sorted(self._repo().tags)

    def get_manifest(self, ref: str) -> tuple[bytes, str, str]:
        repo = self._registry.repos.get(self.path)
        digest = ref if ref.startswith("sha256:") else (repo.tags.get(ref) if repo else None)
        if repo is None or digest is None or digest not in repo.manifests:
            raise RegistryNotFound("manifest unknown: manifest unknown", 404, "MANIFEST_UNKNOWN")
        media, body = repo.manifests[digest]
        return body, media, digest

    def put_manifest(self, ref: str, media_type: str, body: bytes) -> str:
        repo = self._repo(create=True)
        doc = json.loads(body)
        if media_type in MANIFEST_LIST_TYPES:
            missing = [m["digest"] for m in doc.get("manifests") or [] if m["digest"] not in repo.manifests]
            if missing:
                raise RegistryError("manifest blob unknown: blob unknown to registry", 400, "MANIFEST_BLOB_UNKNOWN")
        else:
            wanted = [doc.get("config", {}).get("digest")] + [layer.get("digest") for layer in doc.get("layers") or []]
            if any(d not in repo.blobs for d in wanted):
                raise RegistryError("manifest blob unknown: blob unknown to registry", 400, "MANIFEST_BLOB_UNKNOWN")
        digest = _digest(body)
        repo.manifests[digest] = (media_type, body)
        if not ref.startswith("sha256:"):
            repo.tags[ref] = digest
        return digest

    def blob_size(self, digest: str) -> int | None:
        repo = self._registry.repos.get(self.path)
        if repo is None or digest not in repo.blobs:
            return None
        return len(self._registry.blobs[digest])

    def get_blob(self, digest: str) -> bytes:
        if self.blob_size(digest) is None:
            raise RegistryNotFound("blob unknown: blob unknown to registry", 404, "BLOB_UNKNOWN")
        return self._registry.blobs[digest]

    def put_blob(self, data: bytes) -> str:
        digest = _digest(data)
        self._registry.blobs.setdefault(digest, data)
        self._repo(create=True).blobs.add(digest)
        return digest

    def mount_blob(self, digest: str, from_repo: str) -> bool:
        source = self._registry.repos.get(from_repo)
        if source is None or digest not in source.blobs:
            return False
        self._repo(create=True).blobs.add(digest)
        return True


class FakeRegistry:
    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.blobs: dict[str, bytes] = {}      # content, shared by the repositories that link it

    def ping(self) -> None:
        return None

    def repository(self, path: str) -> FakeRepository:
        return FakeRepository(self, path)

    def close(self) -> None:
        return None
