"""The content store's contract: blobs by sha256 digest, verified on the way in.

``ContentStore`` (store.py) keeps them on disk with atomic ingest;
``engine.testing.content.FakeContentStore`` keeps them in memory.  Both run
tests/contracts/test_content_contract.py.  (``ContentStore.path`` and
``adopt`` are about files on disk and stay outside the Protocol.)
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol, Self, runtime_checkable

from .store import Descriptor

__all__ = ["ContentStoreAPI", "ContentWriter", "Descriptor"]


@runtime_checkable
class ContentWriter(Protocol):
    """One ingest: ``write`` chunks, then ``commit`` (or ``abort``: nothing is stored)."""

    size: int

    def write(self, data: bytes) -> None: ...

    @property
    def digest(self) -> str: ...

    def commit(self, expected: str | None = None) -> Descriptor:
        """Store the blob; a digest other than ``expected`` raises InvalidParameter
        ("unexpected commit digest ...") and stores nothing."""
        ...

    def abort(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None:
        """Leaving the block without a commit aborts."""
        ...


@runtime_checkable
class ContentStoreAPI(Protocol):
    def writer(self) -> ContentWriter: ...

    def ingest(self, data: bytes | BinaryIO | Iterable[bytes], expected: str | None = None) -> Descriptor:
        """``expected`` that is not a sha256 digest raises InvalidParameter before anything is read."""
        ...

    def exists(self, digest: str) -> bool:
        """False for an unknown or malformed digest."""
        ...

    def info(self, digest: str) -> Descriptor:
        """NotFound: "content digest <digest>: not found"."""
        ...

    def open(self, digest: str) -> BinaryIO: ...

    def read_bytes(self, digest: str) -> bytes: ...

    def delete(self, digest: str) -> bool:
        """True when a blob was removed."""
        ...

    def walk(self) -> Iterator[Descriptor]: ...
