"""The build context: received once, hashed while it arrives, written to disk only if needed.

The context tar (plain or compressed) is read in one pass.  Its uncompressed
bytes are kept in a spool (memory up to a budget, then a scratch file), and
every member is indexed: its cleaned name, type, mode and, for regular files,
the sha256 of its content.  A fully cached rebuild needs nothing more: the
Dockerfile is read from the spool and COPY/ADD sources are hashed from the
index, so the context is never unpacked.  The first step that needs real files
(a cache miss on COPY/ADD, a wildcard, a path through a symlink) unpacks the
spool into the context directory exactly as an eager unpack would have, and
from then on everything works on that directory.

The index answers only for contexts it can describe exactly (each name once,
no hard links or device nodes, every directory sent as an entry, nothing under
a symlink); anything else is unpacked right away (so its errors come where
they always did), and a path through a symlink is looked up on disk.  Its
checksums are the same as ``fsutil.checksum`` of the unpacked tree.
"""
from __future__ import annotations

import hashlib
import io
import os
import posixpath
import stat
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import EngineError
from ..images.layer_streams import LayerError, decompressed
from . import fsutil

# Context bytes kept in memory; the rest of a bigger context goes to a scratch file.
MEMORY_BUDGET = 64 << 20
_CHUNK = 1 << 20


class Spool:
    """Bytes appended once, then read back at any offset (memory first, then a file)."""

    def __init__(self, spill_path: Path, budget: int = MEMORY_BUDGET) -> None:
        self._mem = bytearray()
        self._budget = budget
        self._spill_path = spill_path
        self._file: BinaryIO | None = None
        self.size = 0

    def write(self, data: bytes) -> None:
        if self._file is None and len(self._mem) + len(data) <= self._budget:
            self._mem += data
        else:
            if self._file is None:
                self._file = open(self._spill_path, "w+b")
            self._file.write(data)
        self.size += len(data)

    def pread(self, offset: int, size: int) -> bytes:
        mem = len(self._mem)
        out = bytes(self._mem[offset:offset + size]) if offset < mem else b""
        if len(out) < size and self._file is not None:
            self._file.flush()
            start = max(offset, mem) - mem
            out += os.pread(self._file.fileno(), size - len(out), start)
        return out

    def reader(self) -> BinaryIO:
        return io.BufferedReader(_SpoolReader(self), _CHUNK)

    def close(self) -> None:
        self._mem = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None
            self._spill_path.unlink(missing_ok=True)


class _SpoolReader(io.RawIOBase):
    def __init__(self, spool: Spool) -> None:
        super().__init__()
        self._spool = spool
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]  # RawIOBase's buffer type
        data = self._spool.pread(self._pos, len(b))
        b[:len(data)] = data
        self._pos += len(data)
        return len(data)


class _Tee:
    """Reads from ``raw`` and appends what it returns to ``spool``."""

    def __init__(self, raw: BinaryIO, spool: Spool) -> None:
        self._raw = raw
        self._spool = spool

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n)
        except (EOFError, OSError, LayerError) as err:
            raise tarfile.ReadError(f"unexpected end of data: {err}") from None
        if data:
            self._spool.write(data)
        return data


@dataclass(frozen=True)
class Entry:
    kind: int                # stat.S_IFREG / S_IFDIR / S_IFLNK
    mode: int                # permission bits as unpacked (mode & 0o7777)
    offset: int = 0          # regular files: where the content is in the spool
    size: int = 0
    digest: str = ""         # regular files: sha256 hex of the content
    linkname: str = ""


class BuildContext:
    """The context of one build: ``root`` is its directory (unpacked on demand)."""

    def __init__(self, root: Path, spool: Spool | None = None) -> None:
        self.root = root
        self._spool = spool
        self._entries: dict[str, Entry] = {}
        self._exact = spool is not None     # the index describes the tree exactly
        self._removed: list[str] = []
        self._lock = threading.Lock()
        self.unpacked = spool is None

    @classmethod
    def from_dir(cls, root: Path) -> BuildContext:
        """A context already on disk (nothing to index)."""
        return cls(root)

    # ------------------------------------------------------------ receiving
    @classmethod
    def receive(cls, fileobj: BinaryIO, root: Path, spill_path: Path) -> BuildContext:
        """Read the whole context tar from ``fileobj`` (blocking); ``root`` exists and is empty."""
        spool = Spool(spill_path)
        ctx = cls(root, spool)
        try:
            ctx._index(fileobj)
            if not ctx._exact:
                ctx.unpack()   # now, so its errors come before the build starts, as always
        except BaseException:
            spool.close()
            raise
        return ctx

    def _index(self, fileobj: BinaryIO) -> None:
        try:
            src = decompressed(fileobj)
        except LayerError:
            raise EngineError("unexpected EOF") from None
        tee = _Tee(src, self._spool)  # type: ignore[arg-type]  # set in receive()
        try:
            tar = tarfile.open(fileobj=tee, mode="r|", bufsize=_CHUNK)  # type: ignore[call-overload]  # read()-only is all "r|" needs
        except tarfile.ReadError as err:
            if str(err) == "empty file":
                return  # no body: an empty context
            raise EngineError("unexpected EOF") from None
        except (tarfile.TarError, EOFError):
            raise EngineError("unexpected EOF") from None
        dirs_seen: set[str] = set()
        parents_needed: set[str] = set()
        try:
            with tar:
                for member in fsutil.iter_members(tar):
                    self._add(tar, member, dirs_seen, parents_needed)
                while tee.read(_CHUNK):   # the rest (end blocks), so the spool is the whole tar
                    pass
        except (tarfile.TarError, EOFError):
            raise EngineError("unexpected EOF") from None
        if not parents_needed <= dirs_seen:
            self._exact = False   # a directory the unpack would create with default modes

    def _add(self, tar: tarfile.TarFile, m: tarfile.TarInfo, dirs_seen: set[str],
             parents_needed: set[str]) -> None:
        rel = fsutil.clean(m.name).lstrip("/")
        if not rel:
            return
        if rel in self._entries or rel in dirs_seen:
            self._exact = False   # a name sent twice: the unpack's replace rules apply
        parent = posixpath.dirname(rel)
        while parent:
            parents_needed.add(parent)
            up = self._entries.get(parent)
            if up is not None and up.kind != stat.S_IFDIR:
                self._exact = False   # under a symlink or a file
            parent = posixpath.dirname(parent)
        mode = m.mode & 0o7777
        if m.isreg():
            h = hashlib.sha256()
            f = tar.extractfile(m)
            if f is not None:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            self._entries[rel] = Entry(stat.S_IFREG, mode, m.offset_data, m.size, h.hexdigest())
        elif m.isdir():
            dirs_seen.add(rel)
            self._entries[rel] = Entry(stat.S_IFDIR, mode)
        elif m.issym():
            self._entries[rel] = Entry(stat.S_IFLNK, 0o777, linkname=m.linkname)
        else:
            self._exact = False   # hard links, fifos, devices: left to the unpack
            self._entries[rel] = Entry(0, mode)

    # -------------------------------------------------------------- queries
    def _usable(self) -> bool:
        return self._exact and not self.unpacked

    def _linked(self, rel: str) -> bool:
        """Whether resolving ``rel`` goes through a symlink the index would have to follow."""
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            e = self._entries.get("/".join(parts[:i]))
            if e is not None and e.kind == stat.S_IFLNK:
                return True
        return False

    def _plain(self, rel: str) -> Entry | None:
        """The entry at ``rel`` when the index can answer for it (exact, not through a symlink)."""
        if not self._usable() or self._linked(rel):
            return None
        e = self._entries.get(rel)
        return e if e is not None and e.kind in (stat.S_IFREG, stat.S_IFDIR) else None

    def read_file(self, rel: str) -> bytes | None:
        """A regular file's bytes, or None: not a plain file here (then unpack and look on disk)."""
        e = self._plain(posixpath.normpath(rel))
        if e is None or e.kind != stat.S_IFREG:
            return None
        assert self._spool is not None
        return self._spool.pread(e.offset, e.size)

    def missing(self, rel: str) -> bool:
        """True when the index knows ``rel`` does not exist (None-safe: False when unsure)."""
        if not self._usable() or rel == "." or self._linked(rel):
            return False
        return rel not in self._entries

    def is_dir(self, rel: str) -> bool | None:
        if rel == "." and self._usable():
            return True
        e = self._plain(rel)
        return None if e is None else e.kind == stat.S_IFDIR

    def checksum(self, rel: str) -> str | None:
        """``fsutil.checksum`` of ``rel`` in the unpacked tree, from the index; None: unpack first."""
        if rel != "." and self._plain(rel) is None:
            return None
        if not self._usable():
            return None
        if rel == ".":
            names = sorted(self._entries, key=lambda n: n.split("/"))
        else:
            below = rel + "/"
            names = [rel, *sorted((n for n in self._entries if n.startswith(below)), key=lambda n: n.split("/"))]
        h = hashlib.sha256()
        if rel == ".":
            st = os.stat(self.root)
            h.update(f".\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0\0".encode())
        for name in names:
            e = self._entries[name]
            shown = "." if name == rel else (name if rel == "." else name[len(rel) + 1:])
            h.update(f"{shown}\0{e.kind}\0{e.mode}\0".encode())
            if e.kind == stat.S_IFLNK:
                h.update(e.linkname.encode())
            elif e.kind == stat.S_IFREG:
                h.update(bytes.fromhex(e.digest))
            h.update(b"\0")
        return h.hexdigest()

    def remove(self, rel: str) -> None:
        """Drop a file from the context (the Dockerfile or .dockerignore the patterns exclude)."""
        if self.unpacked or not self._exact or self._linked(posixpath.dirname(rel)):
            fsutil.resolve(self.unpack(), rel, follow_last=False).unlink(missing_ok=True)
            return
        self._entries.pop(rel, None)
        self._removed.append(rel)

    # ------------------------------------------------------------- unpacking
    def unpack(self) -> Path:
        """The context on disk (unpacked now if it was not yet); blocking."""
        with self._lock:
            if not self.unpacked:
                assert self._spool is not None
                if self._spool.size:
                    with tarfile.open(fileobj=self._spool.reader(), mode="r|", bufsize=_CHUNK) as tar:
                        fsutil.extract(tar, self.root, "/", keep_owner=True)
                for rel in self._removed:
                    fsutil.resolve(self.root, rel, follow_last=False).unlink(missing_ok=True)
                self.unpacked = True
                self._spool.close()
        return self.root

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
