"""Content-addressed blob store.

Blobs live at ``<root>/blobs/sha256/<hex>``.  Every write goes to a private
file in the scratch directory first, is hashed while it is written, verified
against the expected digest, fsynced, and only then renamed into place.  A
``kill -9`` at any moment therefore leaves at most a stale ``ingest-*`` file,
which the constructor removes; a blob under ``blobs/`` is always complete.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import InvalidParameter, NotFound

_CHUNK = 1 << 20
_INGEST_PREFIX = "ingest-"


@dataclass(frozen=True)
class Descriptor:
    digest: str  # "sha256:<hex>"
    size: int


def _hex_of(digest: str) -> str:
    algo, sep, hexpart = digest.partition(":")
    if not sep or algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidParameter(f"invalid digest {digest!r}")
    return hexpart


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Writer:
    """One ingest in progress: ``write`` chunks, then ``commit`` or ``abort``.

    Use as a context manager; leaving the block without ``commit`` aborts.
    """

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self.size = 0
        self._path = store.tmp / f"{_INGEST_PREFIX}{secrets.token_hex(8)}"
        self._file: BinaryIO | None = open(self._path, "xb")

    def write(self, data: bytes) -> None:
        assert self._file is not None, "writer already finished"
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str | None = None) -> Descriptor:
        assert self._file is not None, "writer already finished"
        digest = self.digest
        if expected is not None and expected != digest:
            self.abort()
            raise InvalidParameter(f"unexpected commit digest {digest}, expected {expected}: failed precondition")
        f, self._file = self._file, None
        try:
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        target = self._store.path(digest)
        if target.exists():
            # Same bytes already stored: the new copy is redundant.
            self._path.unlink(missing_ok=True)
        else:
            os.chmod(self._path, 0o444)
            os.rename(self._path, target)
            _fsync_dir(target.parent)
        return Descriptor(digest, self.size)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class ContentStore:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = Path(root)
        self.tmp = Path(tmp)
        self.blobs = self.root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.gc_tmp()

    def gc_tmp(self) -> int:
        """Remove ingests left by an interrupted process.  Call only when none run."""
        removed = 0
        for entry in self.tmp.iterdir():
            if entry.name.startswith(_INGEST_PREFIX):
                entry.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- writing -------------------------------------------------------------
    def writer(self) -> Writer:
        return Writer(self)

    def ingest(self, data: bytes | BinaryIO | Iterable[bytes], expected: str | None = None) -> Descriptor:
        """Store ``data`` (bytes, a readable file, or an iterable of chunks).

        With ``expected`` set, a digest mismatch raises InvalidParameter and
        stores nothing.
        """
        if expected is not None:
            _hex_of(expected)
        with self.writer() as w:
            if isinstance(data, (bytes, bytearray, memoryview)):
                w.write(bytes(data))
            elif hasattr(data, "read"):
                reader: BinaryIO = data  # type: ignore[assignment]  # narrowed by hasattr(read), which mypy cannot see
                while True:
                    chunk = reader.read(_CHUNK)
                    if not chunk:
                        break
                    w.write(chunk)
            else:
                for chunk in data:
                    w.write(chunk)
            return w.commit(expected)

    def adopt(self, path: Path, digest: str) -> Descriptor:
        """Move a finished file whose sha256 the caller computed while writing it into
        the store under ``digest`` (no second copy); the file is fsynced first."""
        target = self.path(digest)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if target.exists():
            os.unlink(path)
            return Descriptor(digest, size)
        os.chmod(path, 0o444)
        try:
            os.rename(path, target)
        except OSError as err:
            if err.errno != 18:  # EXDEV: copy through an ingest instead
                raise
            with open(path, "rb") as f:
                desc = self.ingest(f, expected=digest)
            os.unlink(path)
            return desc
        _fsync_dir(target.parent)
        return Descriptor(digest, size)

    # -- reading -------------------------------------------------------------
    def path(self, digest: str) -> Path:
        return self.blobs / _hex_of(digest)

    def exists(self, digest: str) -> bool:
        try:
            return self.path(digest).is_file()
        except InvalidParameter:
            return False

    def info(self, digest: str) -> Descriptor:
        try:
            st = self.path(digest).stat()
        except FileNotFoundError:
            raise NotFound(f"content digest {digest}: not found") from None
        return Descriptor(digest, st.st_size)

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"content digest {digest}: not found") from None

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def delete(self, digest: str) -> bool:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def walk(self) -> Iterator[Descriptor]:
        for entry in os.scandir(self.blobs):
            if entry.is_file(follow_symlinks=False) and len(entry.name) == 64:
                yield Descriptor("sha256:" + entry.name, entry.stat(follow_symlinks=False).st_size)
