"""VolumeService: named and anonymous volumes, their metadata and who references them.

Metadata (driver, labels, options, creation time) lives in SQLite, and so do the
references: a container references its volumes from create until it is removed,
so "volume is in use" holds across a daemon restart.  The driver owns the data
directory and any device mounted on it.
"""
from __future__ import annotations

import asyncio
import datetime
import json
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

from ..errors import Conflict, EngineError, InvalidParameter, NotFound
from ..state import Database
from .local import LocalDriver, VolumeDriver
from .model import ANONYMOUS_LABEL, DEFAULT_DRIVER, Volume

log = logging.getLogger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        driver TEXT NOT NULL,
        created_at TEXT NOT NULL,
        labels TEXT NOT NULL,
        options TEXT NOT NULL
    );
    CREATE TABLE volume_refs (
        volume TEXT NOT NULL,
        ref TEXT NOT NULL,
        PRIMARY KEY (volume, ref)
    );
    CREATE TABLE container_mounts (
        container TEXT PRIMARY KEY,
        data TEXT NOT NULL
    );
    """,
]

LIST_FILTERS = ("dangling", "name", "driver", "label")
PRUNE_FILTERS = ("label", "label!", "all")


def rfc3339_seconds(ts: float) -> str:
    local = datetime.datetime.fromtimestamp(ts).astimezone()
    text = local.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _parse_bool(key: str, value: str) -> bool:
    low = value.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise InvalidParameter(f"invalid filter '{key}={value}'")


def _labels_match(labels: dict[str, str], exprs: list[str]) -> bool:
    for expr in exprs:
        key, sep, value = expr.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


class VolumeService:
    def __init__(self, db: Database, drivers: list[VolumeDriver], events: Any) -> None:
        self.db = db
        self.events = events
        self._drivers = {d.name: d for d in drivers}
        self._volumes: dict[str, Volume] = {}
        self._refs: dict[str, set[str]] = {}
        self._lock = asyncio.Lock()
        self._prune_running = False
        db.migrate("volumes", MIGRATIONS)
        for row in db.query_sync("SELECT name, driver, created_at, labels, options FROM volumes"):
            driver = self._drivers.get(row["driver"])
            mountpoint = driver.path(row["name"]) if driver is not None else ""
            self._volumes[row["name"]] = Volume(
                name=row["name"], driver=row["driver"], mountpoint=mountpoint, created_at=row["created_at"],
                labels=json.loads(row["labels"]), options=json.loads(row["options"]))
        for row in db.query_sync("SELECT volume, ref FROM volume_refs"):
            self._refs.setdefault(row["volume"], set()).add(row["ref"])

    @classmethod
    def local(cls, db: Database, root: Any, events: Any) -> VolumeService:
        return cls(db, [LocalDriver(root)], events)

    def _driver(self, name: str) -> VolumeDriver:
        driver = self._drivers.get(name)
        if driver is None:
            raise NotFound(f'error looking up volume plugin {name}: plugin "{name}" not found')
        return driver

    def _emit(self, action: str, name: str, **attrs: str) -> None:
        self.events.publish_action("volume", action, name, attrs)

    # --------------------------------------------------------------- create
    async def create(self, name: str | None, *, driver: str = "", labels: dict[str, str] | None = None,
                     options: dict[str, str] | None = None, ref: str | None = None) -> Volume:
        """Create a volume (a 64-hex anonymous one without a name); an existing one is returned
        as it is.  ``ref`` (a container id) is recorded as a reference in the same step."""
        labels = dict(labels) if labels is not None else None
        options = dict(options) if options is not None else None
        if not name:
            name = secrets.token_hex(32)
            labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
        async with self._lock:
            existing = self._volumes.get(name)
            if existing is not None:
                if driver and driver != existing.driver:
                    raise Conflict(f"create {name}: volume name must be unique")
                if ref:
                    await self._add_ref_locked(name, ref)
                return existing
            try:
                drv = self._driver(driver or DEFAULT_DRIVER)
                path = await asyncio.to_thread(drv.create, name, options or {})
            except EngineError as err:
                raise type(err)(f"create {name}: {err.message}") from None
            vol = Volume(name=name, driver=drv.name, mountpoint=path,
                         created_at=rfc3339_seconds(drv.created_time(name)), labels=labels, options=options)

            def write(conn: Any) -> None:
                conn.execute("INSERT INTO volumes(name, driver, created_at, labels, options) VALUES(?,?,?,?,?)",
                             (name, vol.driver, vol.created_at, json.dumps(labels), json.dumps(options)))
                if ref:
                    conn.execute("INSERT OR IGNORE INTO volume_refs(volume, ref) VALUES(?, ?)", (name, ref))

            try:
                await self.db.transaction(write)
            except BaseException:
                await asyncio.to_thread(drv.remove, name, options or {})
                raise
            self._volumes[name] = vol
            if ref:
                self._refs.setdefault(name, set()).add(ref)
        self._emit("create", name, driver=vol.driver)
        return vol

    # ------------------------------------------------------------------ get
    def get(self, name: str) -> Volume:
        vol = self._volumes.get(name)
        if vol is None:
            raise NotFound(f"get {name}: no such volume")
        return vol

    def exists(self, name: str) -> bool:
        return name in self._volumes

    def refs(self, name: str) -> set[str]:
        return set(self._refs.get(name, ()))

    async def usage(self, vol: Volume) -> int:
        try:
            return await asyncio.to_thread(self._driver(vol.driver).usage, vol.name)
        except Exception:  # noqa: BLE001 - dockerd reports -1 when the size cannot be read
            return -1

    def find(self, filters: dict[str, list[str]]) -> tuple[list[Volume], list[str]]:
        for key in filters:
            if key not in LIST_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling: bool | None = None
        if "dangling" in filters:
            # dockerd's GetBoolOrDefault: exactly one of 0/false and 1/true
            values = filters["dangling"]
            no, yes = bool({"0", "false"} & set(values)), bool({"1", "true"} & set(values))
            if no == yes:
                raise InvalidParameter(f"invalid filter 'dangling=[{' '.join(values)}]'")
            dangling = yes
        patterns = []
        for p in filters.get("name", []):
            try:
                patterns.append(re.compile(p))
            except re.error:
                continue
        out = []
        for vol in sorted(self._volumes.values(), key=lambda v: v.name):
            if filters.get("driver") and vol.driver not in filters["driver"]:
                continue
            if filters.get("name") and not any(p.search(vol.name) for p in patterns):
                continue
            if filters.get("label") and not _labels_match(vol.labels or {}, filters["label"]):
                continue
            if dangling is not None and bool(self._refs.get(vol.name)) == dangling:
                continue
            out.append(vol)
        return out, []

    # --------------------------------------------------------------- remove
    async def remove(self, name: str, *, force: bool = False) -> None:
        async with self._lock:
            vol = self._volumes.get(name)
            if vol is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            refs = self._refs.get(name)
            if refs:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(sorted(refs))}]")
            await self._remove_locked(vol)

    async def _remove_locked(self, vol: Volume) -> None:
        try:
            await asyncio.to_thread(self._driver(vol.driver).remove, vol.name, vol.options or {})
        except EngineError as err:
            raise type(err)(f"remove {vol.name}: {err.message}") from None

        def delete(conn: Any) -> None:
            conn.execute("DELETE FROM volumes WHERE name = ?", (vol.name,))
            conn.execute("DELETE FROM volume_refs WHERE volume = ?", (vol.name,))

        await self.db.transaction(delete)
        self._volumes.pop(vol.name, None)
        self._refs.pop(vol.name, None)
        self._emit("destroy", vol.name, driver=vol.driver)

    async def prune(self, filters: dict[str, list[str]]) -> tuple[list[str], int]:
        for key in filters:
            if key not in PRUNE_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        everything = False
        values = filters.get("all", [])
        if len(values) > 1:
            raise InvalidParameter(f"invalid filter 'all=[{' '.join(values)}]': only one value is expected")
        if values:
            low = values[0].lower()
            if low not in ("1", "t", "true", "0", "f", "false"):
                raise InvalidParameter(
                    f"invalid filter 'all': strconv.ParseBool: parsing \"{values[0]}\": invalid syntax")
            everything = low in ("1", "t", "true")
        if self._prune_running:
            raise Conflict("a prune operation is already running")
        self._prune_running = True
        deleted: list[str] = []
        reclaimed = 0
        try:
            async with self._lock:
                for vol in sorted(self._volumes.values(), key=lambda v: v.name):
                    if vol.driver != DEFAULT_DRIVER or vol.options or self._refs.get(vol.name):
                        continue
                    if not everything and not vol.anonymous:
                        continue
                    if filters.get("label") and not _labels_match(vol.labels or {}, filters["label"]):
                        continue
                    if filters.get("label!") and any(_labels_match(vol.labels or {}, [e]) for e in filters["label!"]):
                        continue
                    size = await self.usage(vol)
                    try:
                        await self._remove_locked(vol)
                    except EngineError:
                        log.warning("could not remove volume %s", vol.name, exc_info=True)
                        continue
                    reclaimed += max(size, 0)
                    deleted.append(vol.name)
        finally:
            self._prune_running = False
        self.events.publish_action("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed

    # ----------------------------------------------------------- references
    async def add_ref(self, name: str, ref: str) -> None:
        async with self._lock:
            if name not in self._volumes:
                raise NotFound(f"get {name}: no such volume")
            await self._add_ref_locked(name, ref)

    async def _add_ref_locked(self, name: str, ref: str) -> None:
        if ref in self._refs.get(name, ()):
            return
        await self.db.transaction(lambda conn: conn.execute(
            "INSERT OR IGNORE INTO volume_refs(volume, ref) VALUES(?, ?)", (name, ref)))
        self._refs.setdefault(name, set()).add(ref)

    async def release_refs(self, ref: str) -> list[str]:
        """Drop every reference ``ref`` holds; returns the volume names."""
        async with self._lock:
            names = [n for n, refs in self._refs.items() if ref in refs]
            if not names:
                return []
            await self.db.transaction(lambda conn: conn.execute("DELETE FROM volume_refs WHERE ref = ?", (ref,)))
            for n in names:
                self._refs[n].discard(ref)
                if not self._refs[n]:
                    self._refs.pop(n, None)
            return names

    async def forget_refs_except(self, keep: Callable[[str], bool]) -> None:
        """Daemon start: references by containers that no longer exist are dropped."""
        stale = {r for refs in self._refs.values() for r in refs if not keep(r)}
        for ref in stale:
            await self.release_refs(ref)

    # ---------------------------------------------------------------- mount
    async def mount(self, name: str, ref: str, *, container: str, destination: str, rw: bool,
                    propagation: str) -> str:
        vol = self.get(name)
        path = await asyncio.to_thread(self._driver(vol.driver).mount, vol.name, vol.options or {}, ref)
        self._emit("mount", name, container=container, destination=destination, driver=vol.driver,
                   propagation=propagation, **{"read/write": "true" if rw else "false"})
        return path

    async def unmount(self, name: str, ref: str, *, container: str, emit: bool = True) -> None:
        vol = self._volumes.get(name)
        if vol is None:
            return
        await asyncio.to_thread(self._driver(vol.driver).unmount, vol.name, vol.options or {}, ref)
        if emit:
            self._emit("unmount", name, container=container, driver=vol.driver)

    async def settle(self, in_use: dict[str, set[str]]) -> None:
        """Daemon start: devices of volumes no running container mounts are unmounted."""
        for vol in list(self._volumes.values()):
            driver = self._drivers.get(vol.driver)
            if driver is None:
                continue
            try:
                await asyncio.to_thread(driver.settle, vol.name, vol.options or {}, in_use.get(vol.name, set()))
            except Exception:
                log.warning("settling volume %s", vol.name, exc_info=True)

    # ------------------------------------------------------- container mounts
    async def save_container_mounts(self, cid: str, data: list[dict[str, Any]]) -> None:
        text = json.dumps(data)
        await self.db.transaction(lambda conn: conn.execute(
            "INSERT INTO container_mounts(container, data) VALUES(?, ?)"
            " ON CONFLICT(container) DO UPDATE SET data = excluded.data", (cid, text)))

    async def drop_container_mounts(self, cid: str) -> None:
        await self.db.transaction(lambda conn: conn.execute(
            "DELETE FROM container_mounts WHERE container = ?", (cid,)))

    def load_container_mounts(self) -> dict[str, list[dict[str, Any]]]:
        return {row["container"]: json.loads(row["data"])
                for row in self.db.query_sync("SELECT container, data FROM container_mounts")}
