"""A container's own filesystem changes: ``docker diff`` and the layer ``docker commit`` makes.

With the overlay snapshotter the container's changes are its upper directory:
new and copied-up files, whiteouts (character devices 0/0) for deletions and
directories marked opaque (``trusted.overlay.opaque=y``) that hide everything
below them.  Whether an upper entry is an addition or a modification depends
on the merged view of the image layers beneath (the "lowers", nearest first,
in the same overlay format).

dockerd keeps the files it mounts over (``/etc/hosts``, ``/proc``, ...) in a
separate "init" layer between the image and the container, so they never
show up as changes.  Our runtime creates those mount points in the upper
directory instead; they are treated here as if a lower layer held them.
"""
from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import EngineError

KIND_MODIFY = 0
KIND_ADD = 1
KIND_DELETE = 2

_OPAQUE_XATTR = "trusted.overlay.opaque"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"

# What dockerd's init layer holds (mount points and a few files): never a change.
INIT_DIRS = frozenset({"/dev", "/dev/pts", "/dev/shm", "/proc", "/sys", "/etc"})
INIT_FILES = frozenset({"/.dockerenv", "/dev/console", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
                        "/etc/mtab"})


@dataclass(frozen=True)
class Change:
    path: str        # absolute in the container: "/etc/passwd"
    kind: int        # KIND_MODIFY, KIND_ADD or KIND_DELETE


@dataclass(frozen=True)
class _Entry:
    """A change plus what the layer tar needs to reproduce it."""
    path: str
    kind: int
    opaque: bool = False        # a directory that hides the lower one's contents
    implied: bool = False       # a deletion implied by an opaque parent (no whiteout needed)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _check_plain_upper(path: str) -> None:
    """Renamed directories (redirect_dir) and metadata-only copy-ups (metacopy) keep
    their data in a lower layer; reading the upper directory alone would lose it."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return
    for attr in ("trusted.overlay.redirect", "trusted.overlay.metacopy"):
        if attr in names:
            raise EngineError(f"cannot compute the changes of {path}: overlay {attr.rsplit('.', 1)[1]} "
                              "is not supported (mount overlay with redirect_dir=off,metacopy=off)")


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


class _LowerView:
    """Lookups in the merged, read-only view of the image layers (overlay format)."""

    def __init__(self, lowers: list[Path]) -> None:
        self.lowers = [str(p) for p in lowers]

    def _hidden_below(self, layer: str, rel: str) -> bool:
        """Whether ``layer`` hides ``rel`` of the layers under it: an ancestor that
        is a whiteout, not a directory, or an opaque directory."""
        parts = rel.strip("/").split("/")[:-1]
        cur = layer
        for comp in parts:
            cur = os.path.join(cur, comp)
            st = _lstat(cur)
            if st is None:
                return False
            if not stat.S_ISDIR(st.st_mode) or _is_opaque(cur):
                return True
        return False

    def stat(self, rel: str) -> os.stat_result | None:
        for layer in self.lowers:
            st = _lstat(layer + rel)
            if st is not None:
                return None if _is_whiteout(st) else st
            if self._hidden_below(layer, rel):
                return None
        return None

    def listdir(self, rel: str) -> set[str]:
        names: set[str] = set()
        gone: set[str] = set()
        for layer in self.lowers:
            d = layer + rel if rel != "/" else layer
            st = _lstat(d)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                break
            if st is not None:
                for name in os.listdir(d):
                    if name in names or name in gone:
                        continue
                    cst = _lstat(os.path.join(d, name))
                    if cst is not None and _is_whiteout(cst):
                        gone.add(name)
                    else:
                        names.add(name)
                if _is_opaque(d):
                    break
            elif rel != "/" and self._hidden_below(layer, rel):
                break
        return names


def _join(parent: str, name: str) -> str:
    return ("" if parent == "/" else parent) + "/" + name


def _meta_differs(a: os.stat_result, b: os.stat_result) -> bool:
    return (stat.S_IMODE(a.st_mode) != stat.S_IMODE(b.st_mode) or a.st_uid != b.st_uid
            or a.st_gid != b.st_gid)


def _entries(upper: Path, lowers: list[Path]) -> list[_Entry]:
    view = _LowerView(lowers)
    root = str(upper)

    def walk(rel_dir: str, lower_hidden: bool) -> list[_Entry]:
        out: list[_Entry] = []
        for name in sorted(os.listdir(root + rel_dir if rel_dir != "/" else root)):
            rel = _join(rel_dir, name)
            st = os.lstat(root + rel)
            if not stat.S_ISLNK(st.st_mode):
                _check_plain_upper(root + rel)
            lower = None if lower_hidden else view.stat(rel)
            virtual = not lower_hidden and lower is None and (rel in INIT_DIRS or rel in INIT_FILES)
            if _is_whiteout(st):
                if lower is not None:
                    out.append(_Entry(rel, KIND_DELETE))
                continue
            if stat.S_ISDIR(st.st_mode):
                opaque = _is_opaque(root + rel)
                if lower is None and not virtual:
                    out.append(_Entry(rel, KIND_ADD, opaque=True))
                    out.extend(walk(rel, True))
                elif opaque or (lower is not None and not stat.S_ISDIR(lower.st_mode)):
                    children = walk(rel, True)
                    present = set(os.listdir(root + rel))
                    if lower is not None and stat.S_ISDIR(lower.st_mode):
                        children += [_Entry(_join(rel, n), KIND_DELETE, implied=True)
                                     for n in view.listdir(rel) - present]
                    out.append(_Entry(rel, KIND_MODIFY, opaque=True))
                    out.extend(sorted(children, key=lambda e: e.path))
                else:
                    children = walk(rel, False)
                    if children or (lower is not None and _meta_differs(st, lower)):
                        out.append(_Entry(rel, KIND_MODIFY))
                        out.extend(children)
                continue
            if rel in INIT_FILES and not lower_hidden and (
                    (stat.S_ISREG(st.st_mode) and st.st_size == 0) or stat.S_ISLNK(st.st_mode)):
                continue  # a mount point our runtime made: dockerd's init layer has it
            out.append(_Entry(rel, KIND_ADD if lower is None and not virtual else KIND_MODIFY))
        return out

    return walk("/", False)


def _full_tree_entries(tree: Path, parent: Path | None) -> list[_Entry]:
    """Changes between two complete trees (the copy snapshotter): compares
    type, size, mode, owner and mtime like dockerd's naive diff."""
    root, base = str(tree), str(parent) if parent is not None else None

    def walk(rel_dir: str) -> list[_Entry]:
        out: list[_Entry] = []
        here = os.listdir(root + rel_dir if rel_dir != "/" else root)
        before = set()
        if base is not None:
            bdir = base + rel_dir if rel_dir != "/" else base
            if os.path.isdir(bdir) and not os.path.islink(bdir):
                before = set(os.listdir(bdir))
        for name in sorted(set(here) | before):
            rel = _join(rel_dir, name)
            st = _lstat(root + rel)
            old = _lstat(base + rel) if base is not None and name in before else None
            if st is None:
                if not (rel in INIT_DIRS or rel in INIT_FILES):
                    out.append(_Entry(rel, KIND_DELETE))
                continue
            virtual = old is None and (rel in INIT_DIRS or rel in INIT_FILES)
            if stat.S_ISDIR(st.st_mode):
                if old is None and not virtual:
                    out.append(_Entry(rel, KIND_ADD))
                    out.extend(walk(rel))
                    continue
                children = walk(rel)
                if old is not None and not stat.S_ISDIR(old.st_mode):
                    out.append(_Entry(rel, KIND_MODIFY, opaque=True))
                    out.extend(children)
                elif children or (old is not None and _meta_differs(st, old)):
                    out.append(_Entry(rel, KIND_MODIFY))
                    out.extend(children)
                continue
            if virtual:
                if (stat.S_ISREG(st.st_mode) and st.st_size == 0) or stat.S_ISLNK(st.st_mode):
                    continue
                out.append(_Entry(rel, KIND_ADD))
                continue
            if old is None:
                out.append(_Entry(rel, KIND_ADD))
            elif (stat.S_IFMT(st.st_mode) != stat.S_IFMT(old.st_mode) or st.st_size != old.st_size
                  or st.st_mtime_ns != old.st_mtime_ns or _meta_differs(st, old)
                  or (stat.S_ISLNK(st.st_mode) and base is not None
                      and os.readlink(root + rel) != os.readlink(base + rel))):
                out.append(_Entry(rel, KIND_MODIFY))
        return out

    return walk("/")


class RWLayer:
    """The changes of one container's writable snapshot over its image."""

    def __init__(self, upper: Path, lowers: list[Path], *, full_tree: bool = False) -> None:
        self.upper = upper
        self.lowers = lowers
        self.full_tree = full_tree   # copy snapshotter: ``upper`` is the whole tree, lowers[0] the image's

    def _entries(self) -> list[_Entry]:
        if self.full_tree:
            return _full_tree_entries(self.upper, self.lowers[0] if self.lowers else None)
        return _entries(self.upper, self.lowers)

    def changes(self) -> list[Change]:
        return [Change(e.path, e.kind) for e in self._entries()]

    def write_tar(self, out: BinaryIO) -> None:
        """The changes as an image layer tar: files and directories as they are
        now, deletions as ``.wh.<name>`` files and opaque directories with a
        ``.wh..wh..opq`` marker (the OCI layer format)."""
        root = str(self.upper)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for e in self._entries():
                name = e.path.lstrip("/")
                if e.kind == KIND_DELETE:
                    if e.implied:
                        continue
                    parent, _, leaf = name.rpartition("/")
                    ti = tarfile.TarInfo((parent + "/" if parent else "") + WHITEOUT_PREFIX + leaf)
                    ti.mode = 0o600
                    ti.mtime = int(os.lstat(root + e.path).st_mtime) if not self.full_tree else 0
                    tar.addfile(ti)
                    continue
                _add(tar, root + e.path, name)
                if e.opaque and e.kind == KIND_MODIFY:
                    ti = tarfile.TarInfo(name + "/" + OPAQUE_MARKER)
                    ti.mode = 0o755
                    tar.addfile(ti)


def add_capability_xattr(ti: tarfile.TarInfo, path: str) -> None:
    """File capabilities travel in the tar like dockerd writes them (the only xattr it keeps)."""
    if not ti.isreg():
        return
    try:
        cap = os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError:
        return
    ti.pax_headers = dict(ti.pax_headers)
    ti.pax_headers["SCHILY.xattr.security.capability"] = cap.decode("utf-8", "surrogateescape")


def _add(tar: tarfile.TarFile, path: str, name: str) -> None:
    ti = tar.gettarinfo(path, arcname=name)
    if ti is None:
        return  # a unix socket: tar cannot hold one (Go's tar writer skips them too)
    ti.uname = ti.gname = ""
    ti.mtime = int(ti.mtime)
    add_capability_xattr(ti, path)
    if ti.isreg():
        with open(path, "rb") as f:
            tar.addfile(ti, f)
    else:
        tar.addfile(ti)
