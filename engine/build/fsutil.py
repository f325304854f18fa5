"""File-system work of a build, always scoped to one root.

Every path the builder writes or reads is resolved inside a root directory
(the extracted context, a step's mounted rootfs, another stage's rootfs):
symlinks are followed as if the root were ``/``, so neither ``..`` nor an
absolute or escaping link can reach outside it.  Tar extraction (the build
context, ``ADD`` of a local archive) goes through the same resolution, so a
hostile archive writes nothing outside its destination root.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import InvalidParameter

_MAX_LINKS = 255


def clean(path: str) -> str:
    """Go's path.Clean of an absolute version of ``path``: "/a/b"."""
    return posixpath.normpath("/" + path.lstrip("/")) if path else "/"


def resolve(root: Path, path: str, *, follow_last: bool = True) -> Path:
    """``path`` inside ``root`` with symlinks resolved as if ``root`` were ``/``."""
    parts = [p for p in clean(path).split("/") if p]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        if part == ".":
            continue
        candidate = root.joinpath(*done, part)
        if (parts or follow_last) and candidate.is_symlink():
            links += 1
            if links > _MAX_LINKS:
                raise InvalidParameter(f"too many levels of symbolic links: {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        done.append(part)
    return root.joinpath(*done)


def mkdir_all(root: Path, path: str, uid: int = 0, gid: int = 0, mode: int = 0o755) -> Path:
    """Create ``path`` and missing parents inside ``root``; new ones get uid/gid."""
    target = resolve(root, path)
    missing: list[Path] = []
    p = target
    while p != root and not p.exists() and not p.is_symlink():
        missing.append(p)
        p = p.parent
    if p.is_symlink() or (p.exists() and not p.is_dir()):
        raise InvalidParameter(f"mkdir {clean(str(p.relative_to(root)))}: not a directory")
    for d in reversed(missing):
        os.mkdir(d, mode)
        os.chown(d, uid, gid)
    if target.exists() and not target.is_dir():
        raise InvalidParameter(f"mkdir {clean(path)}: not a directory")
    return target


def _remove_existing(path: Path, keep_dir: bool) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir() and not keep_dir:
        import shutil
        shutil.rmtree(path)


# --------------------------------------------------------------- extraction
def open_archive(fileobj: BinaryIO) -> tarfile.TarFile:
    """A tar stream in any of the compressions the daemon accepts (plain, gzip, bzip2, xz)."""
    # Big reads: the stream reader's default 10 KiB records make a 100 MB context crawl.
    return tarfile.open(fileobj=fileobj, mode="r|*", bufsize=1 << 20)


def extract(tar: tarfile.TarFile, root: Path, dest: str = "/", *, keep_owner: bool = True,
            uid: int = 0, gid: int = 0) -> None:
    """Unpack ``tar`` at ``dest`` inside ``root``; nothing lands outside ``root``."""
    dirs: list[tuple[Path, tarfile.TarInfo]] = []
    for member in iter_members(tar):
        # As if chrooted into dest (dockerd's untar): "..", absolute names and links all stay in it.
        rel = clean(member.name).lstrip("/")
        if not rel:
            continue
        full = posixpath.join(clean(dest), rel)
        parent = mkdir_all(root, posixpath.dirname(full))
        target = parent / posixpath.basename(full)
        owner = (member.uid, member.gid) if keep_owner else (uid, gid)
        if member.isdir():
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()
            if not target.exists():
                os.mkdir(target, 0o700)
            dirs.append((target, member))
            os.chown(target, *owner)
            continue
        _remove_existing(target, keep_dir=False)
        if member.isreg():
            src = tar.extractfile(member)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                if src is not None:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
        elif member.issym():
            os.symlink(member.linkname, target)
        elif member.islnk():
            source = resolve(root, posixpath.join(clean(dest), clean(member.linkname).lstrip("/")),
                             follow_last=False)
            if not source.is_file() or source.is_symlink():
                raise InvalidParameter(f"invalid hardlink {member.name!r} -> {member.linkname!r}")
            os.link(source, target)
            continue
        elif member.isfifo():
            os.mkfifo(target, 0o600)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(target, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        else:
            continue
        os.lchown(target, *owner)
        if not member.issym():
            os.chmod(target, member.mode & 0o7777)
        os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
    for path, member in reversed(dirs):
        os.chmod(path, member.mode & 0o7777)
        os.utime(path, (member.mtime, member.mtime))


def iter_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members; a stream that ends at a header boundary without the two zero blocks is
    complete (Go's tar reader accepts it, and the CLI sends such streams for ``-f -``)."""
    while True:
        try:
            member = tar.next()
        except tarfile.ReadError as err:
            if str(err) in ("unexpected end of data", "empty file"):
                return
            raise
        if member is None:
            return
        yield member


def is_archive(path: Path) -> bool:
    """What ADD auto-extracts: a tar, maybe gzip/bzip2/xz compressed."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        try:
            with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as t:
                t.next()
            return True
        except (tarfile.TarError, OSError, EOFError):
            return False
    return len(head) >= 262 and head[257:262] == b"ustar"


# ------------------------------------------------------------------ copying
def walk(path: Path) -> Iterator[Path]:
    """``path`` and everything below it, parents first, without following links."""
    yield path
    if path.is_dir() and not path.is_symlink():
        for name in sorted(os.listdir(path)):
            yield from walk(path / name)


def copy_entry(src: Path, dst: Path, uid: int, gid: int) -> None:
    """One file, link or directory (not its contents) from ``src`` to ``dst``."""
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
            dst.unlink()
        if not dst.exists():
            os.mkdir(dst, 0o700)
    else:
        _remove_existing(dst, keep_dir=False)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
                while chunk := fin.read(1 << 20):
                    fout.write(chunk)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(dst, 0o600)
        else:
            return
    os.lchown(dst, uid, gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_tree(src: Path, dst_root: Path, dst: str, uid: int, gid: int, *, contents: bool) -> None:
    """Copy ``src`` to path ``dst`` inside ``dst_root``; a directory's contents when ``contents``."""
    if contents and src.is_dir() and not src.is_symlink():
        mkdir_all(dst_root, dst, uid, gid)
        base = resolve(dst_root, dst)
        entries = list(walk(src))[1:]
        for entry in entries:
            rel = entry.relative_to(src)
            target = resolve(dst_root, posixpath.join(clean(dst), str(rel).replace(os.sep, "/")),
                             follow_last=False)
            copy_entry(entry, target, uid, gid)
        # Directory times after their contents are in.
        for entry in reversed(entries):
            if entry.is_dir() and not entry.is_symlink():
                st = os.stat(entry)
                target = resolve(dst_root, posixpath.join(clean(dst), str(entry.relative_to(src))))
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        _ = base
        return
    parent = mkdir_all(dst_root, posixpath.dirname(clean(dst)), uid, gid)
    target = parent / posixpath.basename(clean(dst))
    copy_entry(src, target, uid, gid)
    if src.is_dir() and not src.is_symlink():
        copy_tree(src, dst_root, dst, uid, gid, contents=True)


# ---------------------------------------------------------------- checksums
def checksum(path: Path) -> str:
    """A content hash of a file or tree (names, modes, link targets, each file's sha256; not times or
    owners), so an unchanged context gives the same cache key after any re-upload.  The build
    context's index (context.py) computes the same value without unpacking."""
    h = hashlib.sha256()
    base = path
    for entry in walk(path):
        st = os.lstat(entry)
        rel = "." if entry == base else str(entry.relative_to(base))
        h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(entry).encode())
        elif stat.S_ISREG(st.st_mode):
            content = hashlib.sha256()
            with open(entry, "rb") as f:
                while chunk := f.read(1 << 20):
                    content.update(chunk)
            h.update(content.digest())
        h.update(b"\0")
    return h.hexdigest()
