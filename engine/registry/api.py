"""The registry's contract as a client sees it: one repository's manifests, tags and blobs
(the distribution spec's /v2/<name>/... endpoints).

``HttpRegistry`` (distribution.py) speaks the protocol over ``RegistryClient`` (auth,
TLS, mirrors, dockerd's error words); ``engine.testing.registry.FakeRegistry`` keeps
repositories in memory.  Both run tests/contracts/test_registry_contract.py, the first
against a real docker-registry on loopback.

Errors: an unknown manifest, blob or repository raises ``NotFound`` with the
registry's error code words ("manifest unknown: ...", "blob unknown: ...",
"name unknown: ..."); a manifest that references blobs the repository lacks is refused
with ``RegistryError`` ("manifest blob unknown: ...").
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class RepositoryAPI(Protocol):
    def tags(self) -> list[str]:
        """The repository's tags, sorted."""
        ...

    def get_manifest(self, ref: str) -> tuple[bytes, str, str]:
        """(body, media type, digest) by tag or digest; a digest is verified."""
        ...

    def put_manifest(self, ref: str, media_type: str, body: bytes) -> str:
        """Store a manifest under a tag (or its digest); returns its digest."""
        ...

    def blob_size(self, digest: str) -> int | None:
        """The blob's size, or None when the repository does not have it."""
        ...

    def get_blob(self, digest: str) -> bytes: ...

    def put_blob(self, data: bytes) -> str:
        """Upload (skipped when present); returns the digest."""
        ...

    def mount_blob(self, digest: str, from_repo: str) -> bool:
        """Link a blob of another repository of the same registry; False when it cannot."""
        ...


@runtime_checkable
class RegistryAPI(Protocol):
    def ping(self) -> None:
        """Is this a registry we can talk to (with the configured scheme and credentials)?"""
        ...

    def repository(self, path: str) -> RepositoryAPI:
        """``path`` is the repository's path in the registry (``library/busybox``)."""
        ...

    def close(self) -> None: ...
