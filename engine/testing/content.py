"""An in-memory content store (the ``ContentStoreAPI`` Protocol)."""
from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Self

from ..content.store import Descriptor
from ..errors import InvalidParameter, NotFound

_HEX = set("0123456789abcdef")


def _check(digest: str) -> None:
    algo, sep, hexpart = digest.partition(":")
    if not sep or algo != "sha256" or len(hexpart) != 64 or not set(hexpart) <= _HEX:
        raise InvalidParameter(f"invalid digest {digest!r}")


class FakeWriter:
    def __init__(self, store: FakeContentStore) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self._buf: bytearray | None = bytearray()
        self.size = 0

    def write(self, data: bytes) -> None:
        assert self._buf is not None, "writer already finished"
        self._buf += data
        self._hash.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str | None = None) -> Descriptor:
        assert self._buf is not None, "writer already finished"
        digest = self.digest
        if expected is not None and expected != digest:
            self.abort()
            raise InvalidParameter(f"unexpected commit digest {digest}, expected {expected}: failed precondition")
        self._store.blobs.setdefault(digest, bytes(self._buf))
        self._buf = None
        return Descriptor(digest, self.size)

    def abort(self) -> None:
        self._buf = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class FakeContentStore:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def writer(self) -> FakeWriter:
        return FakeWriter(self)

    def ingest(self, data: bytes | BinaryIO | Iterable[bytes], expected: str | None = None) -> Descriptor:
        if expected is not None:
            _check(expected)
        with self.writer() as w:
            if isinstance(data, (bytes, bytearray, memoryview)):
                w.write(bytes(data))
            elif isinstance(data, io.IOBase) or hasattr(data, "read"):
                w.write(data.read())
            else:
                for chunk in data:
                    w.write(chunk)
            return w.commit(expected)

    def exists(self, digest: str) -> bool:
        return digest in self.blobs

    def info(self, digest: str) -> Descriptor:
        return Descriptor(digest, len(self._get(digest)))

    def _get(self, digest: str) -> bytes:
        _check(digest)
        try:
            return self.blobs[digest]
        except KeyError:
            raise NotFound(f"content digest {digest}: not found") from None

    def open(self, digest: str) -> BinaryIO:
        return io.BytesIO(self._get(digest))

    def read_bytes(self, digest: str) -> bytes:
        return self._get(digest)

    def delete(self, digest: str) -> bool:
        return self.blobs.pop(digest, None) is not None

    def walk(self) -> Iterator[Descriptor]:
        for digest, data in list(self.blobs.items()):
            yield Descriptor(digest, len(data))
