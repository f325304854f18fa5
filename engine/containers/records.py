"""Container records: the index of every container, its persistence, names, per-container locks,
events, live runtime handles and the waiters and attaches that wait on a run.

This is the state the other container modules share (the lifecycle verbs, the monitor, exec,
health, pause/update/stats): they go through this public API, never through private fields.
"""
from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

from ..errors import Conflict, InvalidParameter, no_such_container
from ..events.api import EventPublisher
from ..state import Database
from ..types import Container, container_from_jsonable, to_jsonable
from .attach import ContainerAttach

MIGRATIONS = [
    """
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        data TEXT NOT NULL
    );
    """,
]

# How many removed ids are remembered so that a late write cannot bring their row back.
_DELETED_KEPT = 4096


class Live:
    """Runtime-side bookkeeping for a container that has a shim."""

    def __init__(self, handle: Any = None) -> None:
        self.handle: Any = handle                 # runtime ShimHandle
        self.monitor: asyncio.Task[None] | None = None
        self.exited = asyncio.Event()             # set when this run has ended


class ContainerRecords:
    def __init__(self, db: Database, events: EventPublisher) -> None:
        self.db = db
        self.events = events
        self._containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._live: dict[str, Live] = {}
        self._pending_attach: dict[str, list[ContainerAttach]] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[Container]]] = {}
        self._remove_waiters: dict[str, list[asyncio.Future[Container]]] = {}
        # Containers whose row was (or is being) deleted: save() never writes them again.  The
        # most recent ones are enough (a late write comes from a task of that same removal).
        self._deleted: dict[str, None] = {}
        db.migrate("containers", MIGRATIONS)
        for row in db.query_sync("SELECT data FROM containers"):
            c = container_from_jsonable(json.loads(row["data"]))
            self._containers[c.id] = c
            self._names[c.name] = c.id

    # ------------------------------------------------------------------ index
    def get(self, ref: str) -> Container:
        """Find by full id, name (with or without "/"), or unique id prefix."""
        if ref in self._containers:
            return self._containers[ref]
        name = ref[1:] if ref.startswith("/") else ref
        if name in self._names:
            return self._containers[self._names[name]]
        if ref:
            matches = [cid for cid in self._containers if cid.startswith(ref)]
            if len(matches) == 1:
                return self._containers[matches[0]]
            if len(matches) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise no_such_container(ref)

    def find(self, cid: str) -> Container | None:
        """The container with this full id, or None (no name or prefix lookup)."""
        return self._containers.get(cid)

    def __contains__(self, cid: object) -> bool:
        return cid in self._containers

    def all(self) -> list[Container]:
        """Every known container, in no particular order (a copy: safe to change the index meanwhile)."""
        return list(self._containers.values())

    def add(self, c: Container) -> None:
        self._containers[c.id] = c

    def discard(self, cid: str) -> None:
        self._containers.pop(cid, None)

    def new_id(self) -> str:
        while True:
            cid = secrets.token_hex(32)
            # An all-digit short id would read like a number; dockerd avoids them too.
            if not cid[:12].isdigit() and cid not in self._containers:
                return cid

    # ------------------------------------------------------------------ names
    def name_taken(self, name: str) -> bool:
        return name in self._names

    def reserve_name(self, name: str, cid: str) -> None:
        """Check and take a name in one step (no await in between): of parallel callers with
        one name exactly one gets it, the others a Conflict."""
        other = self._names.get(name)
        if other is not None and other != cid:
            raise name_conflict(name, other)
        self._names[name] = cid

    def release_name(self, name: str | None, cid: str) -> None:
        """Give a name back, only if this container holds it."""
        if name and self._names.get(name) == cid:
            del self._names[name]

    # ------------------------------------------------------------------ locks
    def lock(self, cid: str) -> asyncio.Lock:
        """The lock lifecycle operations on this container hold."""
        lock = self._locks.get(cid)
        if lock is None:
            lock = self._locks[cid] = asyncio.Lock()
        return lock

    def drop_lock(self, cid: str) -> None:
        self._locks.pop(cid, None)

    # ------------------------------------------------------------ persistence
    async def save(self, c: Container) -> None:
        """Persist the container's record; never for a removed container (an exit or a restart
        recorded late must not write a deleted row back).  The check runs inside the write
        transaction, ordered with the removal's DELETE on the database's one writer path."""
        data = json.dumps(to_jsonable(c))

        def _write(conn: Any) -> None:
            if c.id in self._deleted:
                return
            conn.execute(
                "INSERT INTO containers(id, name, data) VALUES(?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET name = excluded.name, data = excluded.data",
                (c.id, c.name, data),
            )

        await self.db.transaction(_write)

    async def delete_row(self, cid: str) -> None:
        """Delete the container's row; from here on no save() may bring it back."""
        self._deleted[cid] = None
        while len(self._deleted) > _DELETED_KEPT:
            del self._deleted[next(iter(self._deleted))]
        await self.db.transaction(
            lambda conn: conn.execute("DELETE FROM containers WHERE id = ?", (cid,))
        )

    def undelete(self, cid: str) -> None:
        """A removal that did not go through: the row may be written again."""
        self._deleted.pop(cid, None)

    # ----------------------------------------------------------------- events
    def emit(self, c: Container, action: str, **extra: str) -> None:
        attrs = {"image": c.config.image, "name": c.name}
        attrs.update(c.config.labels)
        attrs.update(extra)
        self.events.publish_action("container", action, c.id, attrs)

    # ----------------------------------------------------------- live handles
    def live(self, cid: str) -> Live | None:
        return self._live.get(cid)

    def set_live(self, cid: str, live: Live) -> None:
        self._live[cid] = live

    def drop_live(self, cid: str, live: Live | None = None) -> None:
        """Forget the container's live entry (only if it is still `live`, when given)."""
        if live is None or self._live.get(cid) is live:
            self._live.pop(cid, None)

    def all_live(self) -> list[Live]:
        return list(self._live.values())

    def clear_live(self) -> None:
        self._live.clear()

    # -------------------------------------------------------- pending attaches
    def add_pending_attach(self, att: ContainerAttach) -> None:
        self._pending_attach.setdefault(att.container_id, []).append(att)

    def take_pending_attaches(self, cid: str) -> list[ContainerAttach]:
        return self._pending_attach.pop(cid, [])

    def forget_attach(self, att: ContainerAttach) -> None:
        pending = self._pending_attach.get(att.container_id)
        if pending and att in pending:
            pending.remove(att)

    # ----------------------------------------------------------------- waiters
    def add_exit_waiter(self, cid: str, fut: asyncio.Future[Container]) -> None:
        self._exit_waiters.setdefault(cid, []).append(fut)

    def add_remove_waiter(self, cid: str, fut: asyncio.Future[Container]) -> None:
        self._remove_waiters.setdefault(cid, []).append(fut)

    def wake_exit_waiters(self, c: Container) -> None:
        _wake(self._exit_waiters.pop(c.id, []), c)

    def wake_remove_waiters(self, c: Container) -> None:
        _wake(self._remove_waiters.pop(c.id, []), c)

    def cancel_waiter(self, fut: asyncio.Future[Container]) -> None:
        for table in (self._exit_waiters, self._remove_waiters):
            for lst in table.values():
                if fut in lst:
                    lst.remove(fut)
        fut.cancel()


def _wake(futs: list[asyncio.Future[Container]], c: Container) -> None:
    for fut in futs:
        if not fut.done():
            fut.set_result(c)


def name_conflict(name: str, other: str) -> Conflict:
    return Conflict(
        f'Conflict. The container name "/{name}" is already in use by container "{other}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


__all__ = ["MIGRATIONS", "ContainerRecords", "Live", "name_conflict"]
