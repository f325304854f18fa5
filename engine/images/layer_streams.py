"""The streams and names of a layer tar: decompression, hashing, and member names
confined to the layer root; Go's archive/tar words for tar errors."""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
from collections.abc import Callable
from typing import BinaryIO

from ..errors import InvalidParameter

_CHUNK = 1 << 20


class LayerError(InvalidParameter):
    """The layer tar is malformed or tries to write outside its root."""



# --- streams -------------------------------------------------------------------

class _Prefixed:
    """A reader that first returns ``head`` and then the rest of ``raw``."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                out, self._head = self._head + self._raw.read(), b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._raw.read(n)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the decompressors ask; a stream is read once, front to back
        return False

    def seek(self, offset: int, whence: int = 0) -> int:
        raise io.UnsupportedOperation("seek")


def compression_of(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return None


def decompressed(raw: BinaryIO) -> BinaryIO:
    """``raw`` itself, or a decompressing reader over it (gzip, bzip2, xz)."""
    head = raw.read(6)
    src = _Prefixed(head, raw)
    kind = compression_of(head)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[return-value]  # a read-only binary stream; BinaryIO in typeshed wants the whole IO API
    if kind == "bzip2":
        return bz2.BZ2File(src, "rb")  # type: ignore[return-value]  # a read-only binary stream; BinaryIO in typeshed wants the whole IO API
    if kind == "xz":
        # LZMAFile only calls read() on src, which _Prefixed has
        return lzma.LZMAFile(src, "rb")  # type: ignore[arg-type, return-value]  # a read-only binary stream; BinaryIO in typeshed wants the whole IO API
    if kind == "zstd":
        raise LayerError("zstd-compressed layers are not supported")
    return src  # type: ignore[return-value]  # a read-only binary stream; BinaryIO in typeshed wants the whole IO API


class HashingReader:
    def __init__(self, raw: BinaryIO, sink: Callable[[bytes], None] | None, hashing: bool = True) -> None:
        self._raw = raw
        self._sink = sink
        self.hash = hashlib.sha256()
        self._hashing = hashing
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n)
        except (EOFError, OSError, lzma.LZMAError) as err:
            raise LayerError(f"unexpected EOF: {err}") from None
        if data:
            if self._hashing:
                self.hash.update(data)
            self.count += len(data)
            if self._sink is not None:
                self._sink(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


# --- paths ---------------------------------------------------------------------

def clean_parts(name: str) -> list[str]:
    """Split an archive member name into components, refusing anything that leaves the root."""
    if name.startswith("/"):
        raise LayerError(f"invalid tar entry {name!r}: absolute path is outside of the layer root")
    parts: list[str] = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            raise LayerError(f"invalid tar entry {name!r}: path is outside of the layer root")
        parts.append(p)
    return parts


def confined_parts(name: str) -> list[str]:
    """Split a layer entry's name (or hardlink target) into components inside the layer root.

    dockerd 20.10 applies a layer chrooted into it: an absolute name or one climbing
    out with ``..`` lands inside the root, as if the root were ``/`` (``../../etc/x``
    is ``etc/x``).  Names are resolved lexically, like Go's filepath.Clean; escapes
    through symlinks are refused when the components are opened.
    """
    parts: list[str] = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return parts


def go_tar_message(err: BaseException) -> str:
    """Phrase a tarfile error as Go's archive/tar does (the words dockerd reports)."""
    text = str(err)
    if "unexpected end of data" in text or "truncated" in text or "EOF" in text:
        return "unexpected EOF"
    if "invalid header" in text or "bad checksum" in text or "empty header" in text:
        return "archive/tar: invalid tar header"
    return f"archive/tar: {text}"
