"""Unpack one image layer (a tar stream, maybe compressed) into a snapshot.

Written against the directory file descriptor of the snapshot's root: every
path component is opened with O_NOFOLLOW, so no entry can write through a
symlink; absolute names and ``..`` stay inside the root, as dockerd's chrooted apply keeps them.
Deletions in the layer (``.wh.<name>`` whiteouts and ``.wh..wh..opq`` opaque
markers) become overlayfs whiteouts (a 0:0 character device, the
``trusted.overlay.opaque`` xattr) in "overlay" mode, or real deletions from the
full copy in "copy" mode.

The uncompressed tar bytes are hashed while reading (the layer's diff ID) and
can be teed to a sink (the content store) so the layer can be saved later.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .layer_streams import (
    HashingReader,
    LayerError,
    confined_parts,
    decompressed,
    go_tar_message,
)

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_META_PREFIX = ".wh..wh."
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class ApplyResult:
    diff_id: str        # sha256 of the uncompressed tar
    size: int           # bytes of regular file content (dockerd's layer size)
    tar_size: int       # length of the uncompressed tar


class _Applier:
    def __init__(self, root: Path, mode: str, lowers: list[Path]) -> None:
        if mode not in ("overlay", "copy"):
            raise ValueError(f"unknown apply mode {mode!r}")
        self.mode = mode
        self.lowers = lowers
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.written: set[tuple[str, ...]] = set()
        self.dir_times: list[tuple[tuple[str, ...], int, int]] = []
        self.size = 0
        self.src_fd: int | None = None   # the tar is this seekable file: copy contents in the kernel

    def close(self) -> None:
        os.close(self.root_fd)

    # -- directory walking ---------------------------------------------------
    def open_dir(self, parts: list[str] | tuple[str, ...], name: str, create: bool) -> int:
        fd = os.dup(self.root_fd)
        try:
            for i, comp in enumerate(parts):
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise LayerError(
                            f"invalid tar entry {name!r}: {'/'.join(parts[: i + 1])} does not exist"
                        ) from None
                    self._implicit_dir(fd, tuple(parts[:i + 1]))
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except OSError as err:
                    if err.errno in (errno.ELOOP, errno.ENOTDIR):
                        st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                        if stat.S_ISLNK(st.st_mode):
                            raise LayerError(f"invalid tar entry {name!r}: path goes through symlink "
                                             f"{'/'.join(parts[:i + 1])}") from None
                        raise LayerError(f"invalid tar entry {name!r}: {'/'.join(parts[:i + 1])} "
                                         "is not a directory") from None
                    raise
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _implicit_dir(self, parent_fd: int, rel: tuple[str, ...]) -> None:
        """A directory the tar uses without an entry for it.  In overlay mode it
        shadows the lower layers' directory, so it copies that one's metadata."""
        os.mkdir(rel[-1], 0o755, dir_fd=parent_fd)
        for lower in self.lowers:
            try:
                st = os.lstat(lower.joinpath(*rel))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                os.chown(rel[-1], st.st_uid, st.st_gid, dir_fd=parent_fd, follow_symlinks=False)
                os.chmod(rel[-1], stat.S_IMODE(st.st_mode), dir_fd=parent_fd)
                self.dir_times.append((rel, st.st_atime_ns, st.st_mtime_ns))
            break

    def _remove(self, pfd: int, leaf: str) -> None:
        try:
            st = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(leaf, dir_fd=pfd)
        else:
            os.unlink(leaf, dir_fd=pfd)

    # -- entries -------------------------------------------------------------
    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = confined_parts(member.name)
        if not parts:
            return  # the root itself: the snapshot's directory keeps its own metadata
        leaf = parts[-1]
        pfd = self.open_dir(parts[:-1], member.name, create=True)
        try:
            if leaf == OPAQUE_MARKER:
                self._opaque(pfd, tuple(parts[:-1]))
            elif leaf.startswith(_META_PREFIX):
                pass  # aufs bookkeeping (.wh..wh.plnk etc.): not part of the image
            elif leaf.startswith(WHITEOUT_PREFIX):
                self._whiteout(pfd, leaf[len(WHITEOUT_PREFIX):], tuple(parts[:-1]), member.name)
            else:
                self._entry(tar, member, pfd, leaf, tuple(parts))
        finally:
            os.close(pfd)

    def _opaque(self, pfd: int, dir_rel: tuple[str, ...]) -> None:
        if self.mode == "overlay":
            os.setxattr(pfd, "trusted.overlay.opaque", b"y")
            return
        for child in os.listdir(pfd):
            if dir_rel + (child,) not in self.written:
                self._remove(pfd, child)

    def _whiteout(self, pfd: int, target: str, dir_rel: tuple[str, ...], name: str) -> None:
        if not target or target in (".", "..") or "/" in target:
            raise LayerError(f"invalid whiteout {name!r}")
        self._remove(pfd, target)
        if self.mode == "overlay":
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
        self.written.add(dir_rel + (target,))

    def _entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, leaf: str, rel: tuple[str, ...]) -> None:
        try:
            existing = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and not (m.isdir() and stat.S_ISDIR(existing.st_mode)):
            self._remove(pfd, leaf)
        self.written.add(rel)
        mode = m.mode & 0o7777
        # trusted.overlay.* is overlayfs's own bookkeeping (opaque dirs, redirects): a layer must
        # not be able to forge it; deletions come only from whiteout entries.
        xattrs = {k[len("SCHILY.xattr."):]: v for k, v in m.pax_headers.items()
                  if k.startswith("SCHILY.xattr.") and not k.startswith("SCHILY.xattr.trusted.overlay.")}
        mtime_ns = int(m.mtime * 1_000_000_000)
        atime_ns = _pax_time(m.pax_headers.get("atime"), mtime_ns)

        if m.isreg():
            fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=pfd)
            try:
                if self.src_fd is not None:
                    _copy_range(self.src_fd, fd, m.offset_data, m.size, m.name)
                else:
                    src = tar.extractfile(m)
                    assert src is not None
                    remaining = m.size
                    while remaining > 0:
                        chunk = src.read(min(_CHUNK, remaining))
                        if not chunk:
                            raise LayerError(f"unexpected EOF in {m.name!r}")
                        _write_all(fd, chunk)
                        remaining -= len(chunk)
                self.size += m.size
                os.fchown(fd, m.uid, m.gid)
                os.fchmod(fd, mode)
                _set_xattrs(fd, xattrs)
                os.utime(fd, ns=(atime_ns, mtime_ns))
            finally:
                os.close(fd)
        elif m.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(leaf, 0o700, dir_fd=pfd)
            fd = os.open(leaf, _DIR_FLAGS, dir_fd=pfd)
            try:
                os.fchown(fd, m.uid, m.gid)
                os.fchmod(fd, mode)
                _set_xattrs(fd, xattrs)
            finally:
                os.close(fd)
            self.dir_times.append((rel, atime_ns, mtime_ns))
        elif m.issym():
            os.symlink(m.linkname, leaf, dir_fd=pfd)
            self.size += len(os.fsencode(m.linkname))  # dockerd counts a symlink's st_size too
            os.chown(leaf, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            if xattrs:
                _set_xattrs(f"/proc/self/fd/{pfd}/{leaf}", xattrs)
            os.utime(leaf, ns=(atime_ns, mtime_ns), dir_fd=pfd, follow_symlinks=False)
        elif m.islnk():
            tparts = confined_parts(m.linkname)
            if not tparts:
                raise LayerError(f"invalid hardlink {m.name!r} -> {m.linkname!r}")
            tfd = self.open_dir(tparts[:-1], m.name, create=False)
            try:
                os.link(tparts[-1], leaf, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                raise LayerError(f"invalid hardlink {m.name!r} -> {m.linkname!r}: target does not exist") from None
            finally:
                os.close(tfd)
        elif m.ischr() or m.isblk() or m.isfifo():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            dev = os.makedev(m.devmajor, m.devminor) if not m.isfifo() else 0
            os.mknod(leaf, kind | mode, dev, dir_fd=pfd)
            os.chown(leaf, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            os.chmod(leaf, mode, dir_fd=pfd)
            if xattrs:
                _set_xattrs(f"/proc/self/fd/{pfd}/{leaf}", xattrs)
            os.utime(leaf, ns=(atime_ns, mtime_ns), dir_fd=pfd, follow_symlinks=False)
        else:
            # Docker skips other types (sockets cannot be in a tar; contiguous files etc.).
            self.written.discard(rel)

    def finish(self) -> None:
        # Directory times last: creating their children changed them.
        for rel, atime_ns, mtime_ns in reversed(self.dir_times):
            try:
                fd = self.open_dir(rel, "/".join(rel), create=False)
            except LayerError:
                continue  # replaced by a later entry
            try:
                os.utime(fd, ns=(atime_ns, mtime_ns))
            finally:
                os.close(fd)


def _copy_range(src_fd: int, dst_fd: int, offset: int, size: int, name: str) -> None:
    """Copy ``size`` bytes at ``offset`` of ``src_fd`` to ``dst_fd`` without user-space buffers."""
    done = 0
    while done < size:
        try:
            n = os.copy_file_range(src_fd, dst_fd, size - done, offset + done)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            n = _copy_range_fallback(src_fd, dst_fd, offset + done, size - done)
        if n == 0:
            raise LayerError(f"unexpected EOF in {name!r}")
        done += n


def _copy_range_fallback(src_fd: int, dst_fd: int, offset: int, size: int) -> int:
    data = os.pread(src_fd, min(size, _CHUNK), offset)
    if data:
        _write_all(dst_fd, data)
    return len(data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _pax_time(value: str | None, default: int) -> int:
    if not value:
        return default
    try:
        return int(float(value) * 1_000_000_000)
    except ValueError:
        return default


def _set_xattrs(target: int | str, xattrs: dict[str, str]) -> None:
    for key, value in xattrs.items():
        raw = value.encode("utf-8", "surrogateescape")
        try:
            os.setxattr(target, key, raw, follow_symlinks=False) if isinstance(target, str) \
                else os.setxattr(target, key, raw)
        except OSError as err:
            # Filesystems without xattr support (or user.* on a symlink): Docker ignores these too.
            if err.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP):
                raise


def apply_file(src: BinaryIO, root: Path, mode: str, *, lowers: list[Path] | None = None,
               progress: Callable[[int], None] | None = None) -> ApplyResult:
    """Unpack an uncompressed layer tar held in a regular file whose digest the caller
    already verified: headers are read with seeks, contents copied by the kernel."""
    applier = _Applier(root, mode, lowers or [])
    applier.src_fd = src.fileno()
    size = os.fstat(src.fileno()).st_size
    try:
        try:
            with tarfile.open(fileobj=src, mode="r:", errorlevel=2) as tar:
                for member in tar:
                    applier.apply(tar, member)
                    if progress is not None:
                        progress(member.offset_data + member.size)
        except tarfile.ReadError as err:
            if not (str(err) == "empty file" and size == 0):
                raise LayerError(go_tar_message(err)) from None
        except tarfile.TarError as err:
            raise LayerError(go_tar_message(err)) from None
        if size % 512:
            raise LayerError("unexpected EOF")
        applier.finish()
    finally:
        applier.close()
    return ApplyResult("", applier.size, size)


def apply_layer(raw: BinaryIO, root: Path, mode: str, *, lowers: list[Path] | None = None,
                sink: Callable[[bytes], None] | None = None, hashing: bool = True) -> ApplyResult:
    """Unpack the tar stream ``raw`` (plain, gzip, bzip2 or xz) into ``root``.

    ``mode`` is the snapshotter's apply mode ("overlay" or "copy"); ``lowers``
    are the parent layers' directories, nearest first (overlay mode only).
    ``sink`` receives the uncompressed tar bytes.  ``hashing=False`` skips the
    diff ID (the caller verified the bytes already; ``diff_id`` is then "").  On error the caller must
    throw ``root`` away: it holds a partial layer (but nothing outside it).
    """
    reader = HashingReader(decompressed(raw), sink, hashing)
    applier = _Applier(root, mode, lowers or [])
    try:
        try:
            with tarfile.open(fileobj=reader, mode="r|", errorlevel=2, bufsize=_CHUNK) as tar:  # type: ignore[call-overload]  # a read()-only stream is all "r|" needs
                for member in tar:
                    applier.apply(tar, member)
        except tarfile.ReadError as err:
            if str(err) == "empty file" and reader.count == 0:
                pass  # an empty stream is an empty layer
            else:
                raise LayerError(go_tar_message(err)) from None
        except tarfile.TarError as err:
            raise LayerError(go_tar_message(err)) from None
        reader.drain()
        if reader.count % 512:
            raise LayerError("unexpected EOF")
        applier.finish()
    finally:
        applier.close()
    return ApplyResult("sha256:" + reader.hash.hexdigest() if hashing else "", applier.size, reader.count)
