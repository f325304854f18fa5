"""SQLite metadata store.

One database file under the data root, in WAL mode.  All statements run on a
single dedicated thread, which gives one writer path and keeps blocking disk
work off the event loop.  Every multi-row change runs in one transaction, so a
``kill -9`` between any two statements leaves either the old or the new state.

Each component owns its tables and declares them as an ordered list of
migrations; ``schema_versions`` records how far each component has come.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sqlite"
        )
        self._conn: sqlite3.Connection | None = None
        self._thread_ident: int | None = None
        self._run_sync(self._open)

    # -- lifecycle -----------------------------------------------------------
    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions ("
            " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        self._conn = conn
        self._thread_ident = threading.get_ident()

    def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._run_sync(_close)
        self._executor.shutdown(wait=True)

    # -- execution -----------------------------------------------------------
    def _run_sync(self, fn: Callable[[], T]) -> T:
        if threading.get_ident() == self._thread_ident:
            return fn()
        return self._executor.submit(fn).result()

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        assert conn is not None, "database is closed"
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def transaction_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one transaction (blocking; for worker threads)."""
        return self._run_sync(lambda: self._transaction(fn))

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one transaction on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, fn)

    def query_sync(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        def _q() -> list[sqlite3.Row]:
            assert self._conn is not None
            return list(self._conn.execute(sql, params))

        return self._run_sync(_q)

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self.query_sync(sql, params))

    # -- schema --------------------------------------------------------------
    def migrate(self, component: str, migrations: Sequence[str]) -> int:
        """Apply the migrations of ``component`` that have not run yet.

        ``migrations[i]`` is a script that takes the schema from version ``i``
        to ``i + 1``.  Returns the resulting version.
        """

        def _apply(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (component,)
            ).fetchone()
            current = int(row[0]) if row else 0
            if current > len(migrations):
                raise RuntimeError(
                    f"database schema of {component} is version {current}, newer than this "
                    f"pydockerd understands ({len(migrations)})"
                )
            for script in migrations[current:]:
                for statement in _split_statements(script):
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_versions(component, version) VALUES(?, ?)"
                " ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                (component, len(migrations)),
            )
            return len(migrations)

        return self.transaction_sync(_apply)


def _split_statements(script: str) -> list[str]:
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
