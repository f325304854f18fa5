"""The Snapshotter contract and the bookkeeping both implementations share.

Lifecycle (as in containerd): a layer is unpacked by ``prepare(tmp_key,
parent)`` -> write into ``upper_dir(tmp_key)`` -> ``commit(chain_id,
tmp_key)``.  A container gets ``prepare(container_id, parent=top_chain_id)``
and mounts what ``mounts(container_id)`` returns.  ``view`` is a read-only
variant.  Committed snapshots are immutable and can only be parents.

On disk each snapshot is ``<root>/snapshots/<n>/`` (``fs`` and, for overlay,
``work``), with ``n`` a small integer so that overlay option strings stay
short.  A directory is built under a ``tmp-*`` name, recorded in SQLite, then
renamed to its number; ``remove`` deletes the record first.  The constructor
reconciles the two after a crash: records without a directory and
directories without a record (or still named ``tmp-*``/``rm-*``) are dropped.
"""
from __future__ import annotations

import builtins
import os
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import Conflict, InvalidParameter, NotFound
from ..state.db import Database
from .mount import Mount
from .mount import mount_all as _mount_all
from .mount import unmount as _unmount

KIND_ACTIVE = "active"
KIND_VIEW = "view"
KIND_COMMITTED = "committed"

_MIGRATIONS = [
    """
    CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        driver TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        parent TEXT,
        created_ns INTEGER NOT NULL,
        UNIQUE(driver, key)
    );
    """,
]


@dataclass(frozen=True)
class SnapshotInfo:
    key: str
    kind: str            # "active" | "view" | "committed"
    parent: str | None
    id: int
    created_ns: int


class Snapshotter(Protocol):
    """What the image store and the container service need from a snapshotter."""

    driver: str
    # How a layer's deletions must be written into upper_dir(): "overlay" (whiteout
    # devices and opaque xattrs) or "copy" (really delete from a full copy).
    apply_mode: str

    def prepare(self, key: str, parent: str | None) -> list[Mount]: ...
    def view(self, key: str, parent: str | None) -> list[Mount]: ...
    def mounts(self, key: str) -> list[Mount]: ...
    def commit(self, name: str, key: str) -> None: ...
    def remove(self, key: str) -> None: ...
    def stat(self, key: str) -> SnapshotInfo: ...
    def exists(self, key: str) -> bool: ...
    def list(self) -> list[SnapshotInfo]: ...
    def children(self, key: str) -> builtins.list[str]: ...
    def usage(self, key: str) -> int: ...
    def upper_dir(self, key: str) -> Path: ...
    def describe(self, key: str) -> dict[str, str]: ...
    def mount_all(self, mounts: builtins.list[Mount], target: str) -> None: ...
    def unmount(self, target: str) -> None: ...


class BaseSnapshotter:
    driver = "base"
    apply_mode = "copy"

    def __init__(self, root: Path, db: Database) -> None:
        self.root = Path(root)
        self.dir = self.root / "snapshots"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._db = db
        self._lock = threading.RLock()
        db.migrate("snapshots", _MIGRATIONS)
        self._rows: dict[str, SnapshotInfo] = {}
        self._recover()

    # -- recovery ------------------------------------------------------------
    def _recover(self) -> None:
        rows = self._db.query_sync(
            "SELECT id, key, kind, parent, created_ns FROM snapshots WHERE driver = ?", (self.driver,))
        present = {e.name for e in os.scandir(self.dir)}
        lost = [r["key"] for r in rows if str(r["id"]) not in present]
        if lost:
            # Only possible for a snapshot whose directory rename was cut short,
            # which nothing can have used yet.
            def _drop(conn: sqlite3.Connection) -> None:
                for key in lost:
                    conn.execute("DELETE FROM snapshots WHERE driver = ? AND key = ?", (self.driver, key))
            self._db.transaction_sync(_drop)
        for r in rows:
            if r["key"] in lost:
                continue
            self._rows[r["key"]] = SnapshotInfo(r["key"], r["kind"], r["parent"], int(r["id"]), int(r["created_ns"]))
        known = {str(info.id) for info in self._rows.values()}
        for name in present - known:
            shutil.rmtree(self.dir / name, ignore_errors=True)

    # -- helpers -------------------------------------------------------------
    def _get(self, key: str) -> SnapshotInfo:
        info = self._rows.get(key)
        if info is None:
            raise NotFound(f"snapshot {key} does not exist: not found")
        return info

    def _path(self, info: SnapshotInfo) -> Path:
        return self.dir / str(info.id)

    def fs_dir(self, key: str) -> Path:
        return self._path(self._get(key)) / "fs"

    def parent_chain(self, key: str | None) -> list[SnapshotInfo]:
        """``key`` and its ancestors, nearest first."""
        out: list[SnapshotInfo] = []
        while key is not None:
            info = self._get(key)
            out.append(info)
            key = info.parent
        return out

    # -- to be specialised ---------------------------------------------------
    def _populate(self, tmpdir: Path, parent: SnapshotInfo | None) -> None:
        raise NotImplementedError

    def _mounts(self, info: SnapshotInfo) -> list[Mount]:
        raise NotImplementedError

    # -- the contract --------------------------------------------------------
    def _create(self, kind: str, key: str, parent: str | None) -> list[Mount]:
        if not key:
            raise InvalidParameter("snapshot key must not be empty")
        with self._lock:
            if key in self._rows:
                raise Conflict(f"snapshot {key} already exists")
            parent_info = None
            if parent is not None:
                parent_info = self._get(parent)
                if parent_info.kind != KIND_COMMITTED:
                    raise InvalidParameter(f"parent snapshot {parent} is not committed")
            tmpdir = self.dir / f"tmp-{secrets.token_hex(6)}"
            tmpdir.mkdir(mode=0o700)
            try:
                self._populate(tmpdir, parent_info)
                created = time.time_ns()

                def _insert(conn: sqlite3.Connection) -> int:
                    cur = conn.execute(
                        "INSERT INTO snapshots(driver, key, kind, parent, created_ns) VALUES(?, ?, ?, ?, ?)",
                        (self.driver, key, kind, parent, created))
                    return int(cur.lastrowid or 0)

                sid = self._db.transaction_sync(_insert)
                os.rename(tmpdir, self.dir / str(sid))
            except BaseException:
                shutil.rmtree(tmpdir, ignore_errors=True)
                raise
            info = SnapshotInfo(key, kind, parent, sid, created)
            self._rows[key] = info
            return self._mounts(info)

    def prepare(self, key: str, parent: str | None) -> list[Mount]:
        return self._create(KIND_ACTIVE, key, parent)

    def view(self, key: str, parent: str | None) -> list[Mount]:
        return self._create(KIND_VIEW, key, parent)

    def mounts(self, key: str) -> list[Mount]:
        with self._lock:
            info = self._get(key)
            if info.kind == KIND_COMMITTED:
                raise InvalidParameter(f"snapshot {key} is committed; prepare or view a child to mount it")
            return self._mounts(info)

    def commit(self, name: str, key: str) -> None:
        with self._lock:
            info = self._get(key)
            if info.kind != KIND_ACTIVE:
                raise InvalidParameter(f"snapshot {key} is not active")
            if name in self._rows:
                raise Conflict(f"snapshot {name} already exists")

            def _commit(conn: sqlite3.Connection) -> None:
                conn.execute("UPDATE snapshots SET key = ?, kind = ? WHERE driver = ? AND key = ?",
                             (name, KIND_COMMITTED, self.driver, key))

            self._db.transaction_sync(_commit)
            del self._rows[key]
            self._rows[name] = SnapshotInfo(name, KIND_COMMITTED, info.parent, info.id, info.created_ns)
            # An overlay work dir is only needed while the snapshot is writable.
            shutil.rmtree(self._path(info) / "work", ignore_errors=True)

    def children(self, key: str) -> list[str]:
        with self._lock:
            return [k for k, i in self._rows.items() if i.parent == key]

    def remove(self, key: str) -> None:
        with self._lock:
            info = self._get(key)
            kids = self.children(key)
            if kids:
                raise Conflict(f"cannot remove snapshot {key}: it has {len(kids)} children")

            def _delete(conn: sqlite3.Connection) -> None:
                conn.execute("DELETE FROM snapshots WHERE driver = ? AND key = ?", (self.driver, key))

            self._db.transaction_sync(_delete)
            del self._rows[key]
            doomed = self.dir / f"rm-{info.id}"
            try:
                os.rename(self._path(info), doomed)
            except FileNotFoundError:
                return
        # Outside the lock: deleting a big tree takes a while.
        shutil.rmtree(doomed, ignore_errors=True)

    def stat(self, key: str) -> SnapshotInfo:
        with self._lock:
            return self._get(key)

    def exists(self, key: str) -> bool:
        return key in self._rows

    def list(self) -> list[SnapshotInfo]:
        with self._lock:
            return list(self._rows.values())

    def upper_dir(self, key: str) -> Path:
        """The directory holding this snapshot's own changes (for unpack and diff)."""
        with self._lock:
            return self._path(self._get(key)) / "fs"

    def usage(self, key: str) -> int:
        """Bytes used by this snapshot's own files (hard links counted once)."""
        return _du(self.upper_dir(key))

    def describe(self, key: str) -> dict[str, str]:
        raise NotImplementedError

    def mount_all(self, mounts: builtins.list[Mount], target: str) -> None:
        _mount_all(mounts, target)

    def unmount(self, target: str) -> None:
        _unmount(target)


def _du(path: Path) -> int:
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(path)]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                    continue
                if st.st_nlink > 1:
                    ident = (st.st_dev, st.st_ino)
                    if ident in seen:
                        continue
                    seen.add(ident)
                total += st.st_size
    return total


def describe_dirs(**dirs: Any) -> dict[str, str]:
    return {k: str(v) for k, v in dirs.items() if v}
