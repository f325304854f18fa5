"""A minimal one-pass tar reader for ``docker load`` archives.

Python's tarfile in stream mode copies every data block several times (its
internal buffer joins); a load archive is mostly a few big layer files, so this
reader parses headers with tarfile's own header decoder and hands member data
to the caller as the chunks the source produced, without joining them.

Handles ustar/GNU headers, PAX extended headers (``path``, ``linkpath``,
``size``) and GNU long names; anything malformed is reported with Go's
archive/tar words (what dockerd says).
"""
from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

BLOCK = 512


class Source(Protocol):
    def read(self, n: int = -1) -> bytes: ...


class TarFormatError(Exception):
    """The stream is not a well-formed tar; the message is Go's."""


@dataclass(frozen=True)
class Member:
    name: str
    type: bytes           # tarfile.REGTYPE, DIRTYPE, SYMTYPE, LNKTYPE, ...
    size: int
    linkname: str

    def isreg(self) -> bool:
        return self.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)


class _Buffered:
    """Exact reads and chunked copies over a source that returns chunks of any size."""

    def __init__(self, src: Source) -> None:
        self._src = src
        self._head = b""
        self.count = 0

    def _chunk(self, n: int) -> bytes:
        if self._head:
            out, self._head = self._head[:n], self._head[n:]
            return out
        data = self._src.read(n)
        self.count += len(data)
        return data

    def exactly(self, n: int) -> bytes:
        parts = []
        left = n
        while left:
            data = self._chunk(left)
            if not data:
                raise TarFormatError("unexpected EOF")
            parts.append(data)
            left -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def at_eof(self) -> bool:
        if self._head:
            return False
        self._head = self._src.read(BLOCK)
        self.count += len(self._head)
        return not self._head

    def copy(self, n: int, out: Callable[[bytes], None]) -> None:
        left = n
        while left:
            data = self._chunk(min(left, 1 << 20))
            if not data:
                raise TarFormatError("unexpected EOF")
            out(data)
            left -= len(data)

    def skip(self, n: int) -> None:
        self.copy(n, lambda _d: None)


def _pad(size: int) -> int:
    return -size % BLOCK


def _parse_pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            break
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise TarFormatError("archive/tar: invalid tar header") from None
        if length <= 0 or pos + length > len(data):
            raise TarFormatError("archive/tar: invalid tar header")
        record = data[sp + 1:pos + length - 1]
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def members(src: Source) -> Iterator[tuple[Member, _Buffered]]:
    """Yield each member with the reader positioned at its data.  The caller must
    consume exactly ``member.size`` bytes (``copy`` or ``skip``) before the next."""
    buf = _Buffered(src)
    pax: dict[str, str] = {}
    long_name: str | None = None
    long_link: str | None = None
    first = True
    while True:
        if first and buf.at_eof():
            return  # an empty stream: no members
        first = False
        header = buf.exactly(BLOCK)
        if header == bytes(BLOCK):
            # End of archive (Go stops at the first zero block pair; a lone one is EOF too).
            try:
                buf.exactly(BLOCK)
            except TarFormatError:
                pass
            return
        try:
            info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
        except tarfile.HeaderError:
            raise TarFormatError("archive/tar: invalid tar header") from None
        size = info.size
        if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE):
            data = buf.exactly(size)
            buf.skip(_pad(size))
            if info.type != tarfile.XGLTYPE:
                pax = _parse_pax(data)
            continue
        if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            data = buf.exactly(size)
            buf.skip(_pad(size))
            text = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            if info.type == tarfile.GNUTYPE_LONGNAME:
                long_name = text
            else:
                long_link = text
            continue
        name = pax.get("path") or long_name or info.name
        linkname = pax.get("linkpath") or long_link or info.linkname
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise TarFormatError("archive/tar: invalid tar header") from None
        if info.type in (tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                         tarfile.FIFOTYPE):
            size = 0 if info.type != tarfile.LNKTYPE else size
        if info.type == tarfile.DIRTYPE and not name.endswith("/"):
            pass
        pax, long_name, long_link = {}, None, None
        member = Member(name, info.type, size, linkname)
        yield member, buf
        buf.skip(_pad(size))


def read_all(member: Member, buf: _Buffered) -> bytes:
    return buf.exactly(member.size) if member.size else b""
