"""Where layer blobs came from: diff ID -> (blob digest, media type, size, registry, repository).

dockerd keeps the same kind of record ("v2 metadata") so that a push can skip
blobs a registry already has and mount blobs from a sibling repository
instead of uploading them again.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ..state.db import Database

_MIGRATIONS = [
    """
    CREATE TABLE registry_blobs (
        diff_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        registry TEXT NOT NULL,
        repository TEXT NOT NULL,
        PRIMARY KEY (diff_id, digest, registry, repository)
    );
    CREATE INDEX registry_blobs_by_diff ON registry_blobs(diff_id);
    """,
]


@dataclass(frozen=True)
class BlobSource:
    diff_id: str
    digest: str
    media_type: str
    size: int
    registry: str
    repository: str


class BlobMetadata:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("registry", _MIGRATIONS)

    def add(self, src: BlobSource) -> None:
        def _ins(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO registry_blobs VALUES(?, ?, ?, ?, ?, ?)",
                         (src.diff_id, src.digest, src.media_type, src.size, src.registry, src.repository))
        self.db.transaction_sync(_ins)

    def sources(self, diff_id: str) -> list[BlobSource]:
        rows = self.db.query_sync("SELECT * FROM registry_blobs WHERE diff_id = ?", (diff_id,))
        return [BlobSource(r["diff_id"], r["digest"], r["media_type"], int(r["size"]), r["registry"],
                           r["repository"]) for r in rows]
