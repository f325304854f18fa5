"""The container records: the index by id and name, the per-container locks, persistence,
events and the live shim handles.

Everything else in the container package (the lifecycle steps, exec, health, resources) goes
through this public API; the records are the only writer of the ``containers`` table.
"""
from __future__ import annotations

import asyncio
import builtins
import json
from typing import Any

from ..errors import Conflict, InvalidParameter, no_such_container
from ..events.api import EventPublisher
from ..state import Database
from ..types import Container, container_from_jsonable, to_jsonable

MIGRATIONS = [
    """
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        data TEXT NOT NULL
    );
    """,
]

# How many removed ids are remembered against late writes (a late write comes from a task of
# that same removal, so the most recent ones are enough).
_TOMBSTONES = 4096


class LiveRun:
    """Runtime-side bookkeeping for a container that has a shim."""

    def __init__(self) -> None:
        self.handle: Any = None                   # runtime ShimHandle
        self.monitor: asyncio.Task[None] | None = None
        self.exited = asyncio.Event()             # set when this run has ended (after `die`)


def name_conflict(name: str, other: str) -> Conflict:
    return Conflict(
        f'Conflict. The container name "/{name}" is already in use by container "{other}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


class ContainerRecords:
    def __init__(self, db: Database, events: EventPublisher) -> None:
        self.db = db
        self.events = events
        self.by_id: dict[str, Container] = {}
        self.names: dict[str, str] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.live_runs: dict[str, LiveRun] = {}
        # Containers whose row was (or is being) deleted: save() never writes them again.
        self.deleted: dict[str, None] = {}
        db.migrate("containers", MIGRATIONS)
        for row in db.query_sync("SELECT data FROM containers"):
            c = container_from_jsonable(json.loads(row["data"]))
            self.by_id[c.id] = c
            self.names[c.name] = c.id

    # ------------------------------------------------------------------ lookup
    def find(self, cid: str) -> Container | None:
        """The container with this full id, or None."""
        return self.by_id.get(cid)

    def all(self) -> builtins.list[Container]:
        return list(self.by_id.values())

    def get(self, ref: str) -> Container:
        """Find by full id, name (with or without "/"), or unique id prefix."""
        if ref in self.by_id:
            return self.by_id[ref]
        name = ref.removeprefix("/")
        if name in self.names:
            return self.by_id[self.names[name]]
        if ref:
            matches = [cid for cid in self.by_id if cid.startswith(ref)]
            if len(matches) == 1:
                return self.by_id[matches[0]]
            if len(matches) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise no_such_container(ref)

    def lock(self, cid: str) -> asyncio.Lock:
        """The lock the lifecycle verbs of this container hold."""
        lock = self.locks.get(cid)
        if lock is None:
            lock = self.locks[cid] = asyncio.Lock()
        return lock

    # ------------------------------------------------------------------- names
    def reserve_name(self, name: str, cid: str) -> None:
        """Check and take ``name`` in one step (no await in between): of parallel creates or
        renames to one name exactly one gets it, the others a Conflict."""
        other = self.names.get(name)
        if other is not None and other != cid:
            raise name_conflict(name, other)
        self.names[name] = cid

    def release_name(self, name: str | None, cid: str) -> None:
        """Give ``name`` back, if ``cid`` holds it (never another container's)."""
        if name and self.names.get(name) == cid:
            del self.names[name]

    def name_taken(self, name: str) -> bool:
        return name in self.names

    # ------------------------------------------------------------- live runs
    def live(self, cid: str) -> LiveRun | None:
        return self.live_runs.get(cid)

    def handle(self, cid: str) -> Any:
        """The shim handle of the container's current run, or None."""
        live = self.live_runs.get(cid)
        return live.handle if live is not None else None

    # ------------------------------------------------------------ persistence
    async def save(self, c: Container) -> None:
        """Persist the container's record; never for a removed container (an exit or a restart
        recorded late must not write a deleted row back).  The check runs inside the write
        transaction, ordered with the removal's DELETE on the database's one writer path."""
        data = json.dumps(to_jsonable(c))

        def _write(conn: Any) -> None:
            if c.id in self.deleted:
                return
            conn.execute(
                "INSERT INTO containers(id, name, data) VALUES(?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET name = excluded.name, data = excluded.data",
                (c.id, c.name, data),
            )

        await self.db.transaction(_write)

    async def delete(self, cid: str) -> None:
        """Delete the row; from here on no save() brings it back."""
        self.deleted[cid] = None
        while len(self.deleted) > _TOMBSTONES:
            del self.deleted[next(iter(self.deleted))]
        try:
            await self.db.transaction(lambda conn: conn.execute("DELETE FROM containers WHERE id = ?", (cid,)))
        except BaseException:
            self.deleted.pop(cid, None)
            raise

    def forget(self, c: Container) -> None:
        """Drop a deleted container from memory (its name, lock and live run)."""
        self.by_id.pop(c.id, None)
        self.release_name(c.name, c.id)
        self.locks.pop(c.id, None)

    # ------------------------------------------------------------------ events
    def emit(self, c: Container, action: str, **extra: str) -> None:
        attrs = {"image": c.config.image, "name": c.name}
        attrs.update(c.config.labels)
        attrs.update(extra)
        self.events.publish_action("container", action, c.id, attrs)
