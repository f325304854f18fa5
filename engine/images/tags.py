"""References (tags and digests) of the image store: name -> image ID rows."""
from __future__ import annotations

import builtins
import sqlite3
import threading

from .. import timeutil
from ..errors import InvalidParameter, NotFound
from ..state.db import Database
from . import reference as refs
from .model import Image
from .reference import Reference


class ReferenceIndex:
    """The image store's tag methods (a part of ``ImageStore``; ``get`` is the store's)."""

    db: Database
    _lock: threading.RLock

    def get(self, ref_or_id: str) -> Image:
        raise NotImplementedError

    def add_ref(self, ref: Reference, image_id: str, touch: bool = True) -> str | None:
        """Point ``ref`` at ``image_id``; returns the image it pointed at before.
        ``touch`` records the tag time (tag and import do; dockerd's load does not)."""
        name = str(ref)

        def _set(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT image_id FROM image_refs WHERE name = ?", (name,)).fetchone()
            conn.execute("INSERT INTO image_refs(name, image_id) VALUES(?, ?)"
                         " ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id", (name, image_id))
            if touch:
                conn.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (timeutil.now(), image_id))
            return row[0] if row else None
        with self._lock:
            return self.db.transaction_sync(_set)

    _add_ref = add_ref   # the name the registry's pull and push still use

    @staticmethod
    def parse_tag(repo: str, tag: str = "") -> Reference:
        """What ``POST /images/{name}/tag?repo=&tag=`` accepts, with dockerd's errors."""
        ref = refs.parse_normalized(repo)
        if ref.digest is not None:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        if tag:
            ref = ref.name_only().with_tag(tag)
        ref = ref.with_default_tag()
        if ref.path.rsplit("/", 1)[-1] == "sha256" and ref.path == "library/sha256":
            raise InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
        return ref

    def tag(self, source: str, repo: str, tag: str = "") -> tuple[str, str]:
        """Tag image ``source`` as ``repo[:tag]``; returns (image ID, familiar new name)."""
        ref = self.parse_tag(repo, tag)
        image = self.get(source)
        self.add_ref(ref, image.id)
        return image.id, ref.familiar()

    def untag(self, name: str) -> str:
        """Remove one reference; returns its familiar form."""
        ref = refs.parse_normalized(name).with_default_tag()

        def _del(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM image_refs WHERE name = ?", (str(ref),)).rowcount
        with self._lock:
            if not self.db.transaction_sync(_del):
                raise NotFound(f"No such image: {ref.familiar()}")
        return ref.familiar()

    def references_by_name(self, repository: str) -> builtins.list[tuple[str, Reference]]:
        """(image ID, reference) for every tag and digest of a repository (full name)."""
        rows = self.db.query_sync("SELECT name, image_id FROM image_refs ORDER BY name")
        out = []
        for r in rows:
            ref = refs.parse(r["name"])
            if ref.name == repository:
                out.append((r["image_id"], ref))
        return out

    def references(self, image_id: str) -> builtins.list[Reference]:
        rows = self.db.query_sync("SELECT name FROM image_refs WHERE image_id = ? ORDER BY name", (image_id,))
        return [refs.parse(r["name"]) for r in rows]
