"""ContainerService: the container lifecycle state machine.

The service owns every container record (in memory, persisted to SQLite on
each change), drives the runtime through the shim API and tells the event bus
what happened.  Lifecycle operations on one container are serialised by a
per-container lock; different containers never wait for each other.
"""
from __future__ import annotations

import asyncio
import builtins
import logging
import signal as _signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..aiotools import run_to_completion
from ..config import Config
from ..errors import (
    Conflict,
    InvalidParameter,
    NotModified,
    no_such_container,
)
from ..events.api import EventPublisher
from ..images.api import RootfsImages
from ..plugins import stock_runtimes
from ..runtime.api import RuntimeExecutor
from ..state import Database
from ..types import (
    DEAD,
    PAUSED,
    REMOVING,
    Container,
)
from . import ops_resources
from .attach import ContainerAttach
from .bundle import BundleStep
from .contributors import Contributors, StartContributor
from .create import CreateStep
from .monitor import Monitor
from .records import ContainerRecords, LiveRun
from .restart import RestartManager
from .signals import parse_signal
from .streams import WAIT_NEXT_EXIT as WAIT_NEXT_EXIT  # re-exported: callers import them from here
from .streams import WAIT_NOT_RUNNING as WAIT_NOT_RUNNING
from .streams import WAIT_REMOVED as WAIT_REMOVED
from .streams import Streams

log = logging.getLogger(__name__)



_Live = LiveRun   # the name the lifecycle modules use


class ContainerService(CreateStep, BundleStep, Monitor, Streams):
    def __init__(
        self,
        config: Config,
        db: Database,
        images: RootfsImages,
        runtime: RuntimeExecutor,
        events: EventPublisher,
        *,
        build_spec: Callable[..., dict[str, Any]],
        spec_input: Callable[..., Any],
        resolve_user: Callable[..., Any],
        generate_name: Callable[..., str],  # names.generate_name(taken, fallback=...)
        validate_name: Callable[[str], str],
        check_runtime: Callable[[str], None] | None = None,  # the engine's Plugins.check_runtime
    ) -> None:
        self.config = config
        self.db = db
        self.images = images
        self.runtime = runtime
        self.events = events
        self._build_spec = build_spec
        self._spec_input = spec_input
        self._resolve_user = resolve_user
        self._generate_name = generate_name
        self._validate_name = validate_name
        self._check_runtime = check_runtime or stock_runtimes().check_runtime
        # Index, names, locks, persistence, events, live runs (records.py); the aliases below are
        # the same objects, for the lifecycle steps (create.py, bundle.py, monitor.py, here).
        self.records = ContainerRecords(db, events)
        self._containers = self.records.by_id
        self._names = self.records.names
        self._locks = self.records.locks
        self._live = self.records.live_runs
        self._deleted = self.records.deleted
        self._pending_attach: dict[str, list[ContainerAttach]] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[Container]]] = {}
        self._remove_waiters: dict[str, list[asyncio.Future[Container]]] = {}
        # Restart policies (restart.py): one manager per container, the pending back-offs, and
        # the containers being restarted through the API (not auto-removed in between).
        self._restart: dict[str, RestartManager] = {}
        self._restart_tasks: dict[str, asyncio.Task[None]] = {}
        self._manual_restart: set[str] = set()
        # Set by the engine: healthcheck monitors (health.py), told about starts and exits.
        self.health: Any = None
        # Per-container resources outside the image and runtime (networks, volumes): contributors.py
        self.contributors = Contributors()

    def add_contributor(self, contrib: StartContributor) -> None:
        """Register a start contributor (see contributors.py); called by the composition root."""
        self.contributors.add(contrib)

    # ------------------------------------------------------------------ lookup
    def get(self, ref: str) -> Container:
        """Find by full id, name (with or without "/"), or unique id prefix."""
        return self.records.get(ref)

    def list(self) -> list[Container]:
        return sorted(self._containers.values(), key=lambda c: c.created, reverse=True)

    def is_running(self, c: Container) -> bool:
        return c.state.running

    def users_of_image(self, image_id: str) -> builtins.list[tuple[str, bool]]:
        return [(c.id, c.state.running) for c in self._containers.values() if c.image_id == image_id]

    def _lock(self, cid: str) -> asyncio.Lock:
        return self.records.lock(cid)

    # For top, commit and export (engine/containers/{top,commit,export}.py).
    def runtime_handle(self, c: Container) -> Any:
        """The running container's ShimHandle, or None."""
        live = self._live.get(c.id)
        return live.handle if live is not None else None

    def lifecycle_lock(self, c: Container) -> asyncio.Lock:
        """The lock start/stop/remove hold for this container."""
        return self._lock(c.id)

    # ------------------------------------------------------------ persistence
    async def _save(self, c: Container) -> None:
        await self.records.save(c)

    def _emit(self, c: Container, action: str, **extra: str) -> None:
        self.records.emit(c, action, **extra)

    def _reserve_name(self, name: str, cid: str) -> None:
        self.records.reserve_name(name, cid)

    def _release_name(self, name: str | None, cid: str) -> None:
        self.records.release_name(name, cid)

    def resolve_user(self, rootfs: Path, user: str) -> tuple[int, int, tuple[int, ...], str]:
        """uid, gid, groups and home of ``user`` in a container's rootfs (for exec)."""
        return self._resolve(rootfs, user)

    # ------------------------------------------------------------------ start
    async def start(self, ref: str) -> None:
        c = self.get(ref)
        async with self._lock(c.id):
            if c.state.status == PAUSED:
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.state.running:
                raise NotModified("Container already started")
            if c.state.removal_in_progress or c.state.status in (REMOVING, DEAD):
                raise Conflict("container is marked for removal and cannot be started")
            self._reset_restart_manager(c)
            # A client hanging up does not cut the start short: a shim started for nobody
            # would keep its created container (and cgroup) forever.
            await run_to_completion(self._start_locked(c))

    # -------------------------------------------------------------- stop/kill
    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise NotModified("Container already stopped")
        live = self._live.get(c.id)
        stop_sig = parse_signal(sig or c.config.stop_signal or "SIGTERM")
        if timeout is None:
            timeout = c.config.stop_timeout if c.config.stop_timeout is not None else 10
        c.state.has_been_manually_stopped = True
        if self._kill_cancels_restart(c, stop_sig):
            self._restart_manager(c).cancel()
        if c.state.restarting:
            # In back-off: cancelling the restart is the whole stop.
            await self._settle_restart(c.id)
            live = self._live.get(c.id)
            if not c.state.running or live is None:
                self._emit(c, "stop")
                return
        if live is None:
            raise NotModified("Container already stopped")
        try:
            await live.handle.kill(stop_sig)
            self._emit(c, "kill", signal=str(stop_sig))    # dockerd's stop goes through kill
        except Exception:
            log.debug("stop signal to %s failed", c.id, exc_info=True)
        if timeout < 0:
            await live.exited.wait()
        else:
            try:
                await asyncio.wait_for(live.exited.wait(), timeout)
            except TimeoutError:
                try:
                    await live.handle.kill(int(_signal.SIGKILL))
                    self._emit(c, "kill", signal=str(int(_signal.SIGKILL)))
                except Exception:
                    log.debug("SIGKILL to %s failed", c.id, exc_info=True)
                await live.exited.wait()
        if c.state.restarting and self._restart_manager(c).canceled:
            # The run ended into a back-off while we waited (its restart is cancelled): return
            # once the container is exited, as from a stop during the back-off.
            await self._settle_restart(c.id)
        self._emit(c, "stop")

    async def kill(self, ref: str, sig: str | None = None) -> None:
        c = self.get(ref)
        signum = parse_signal(sig) if sig else int(_signal.SIGKILL)
        if not c.state.running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        if self._kill_cancels_restart(c, signum):
            self._restart_manager(c).cancel()
        c.state.has_been_manually_stopped = True
        if c.state.restarting:
            # Nothing to signal: the cancelled back-off leaves the container exited.
            if signum == int(_signal.SIGKILL):
                await self._settle_restart(c.id)
            return
        live = self._live.get(c.id)
        if live is None:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        await live.handle.kill(signum)
        self._emit(c, "kill", signal=str(signum))
        if signum == int(_signal.SIGKILL):
            await live.exited.wait()

    async def restart(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        if c.state.running:
            # A restart is not an exit the user wants acted on: no auto-remove in between.
            self._manual_restart.add(c.id)
            try:
                await self.stop(c.id, timeout, sig)
            finally:
                self._manual_restart.discard(c.id)
        async with self._lock(c.id):
            if not c.state.running:
                self._reset_restart_manager(c)
                await run_to_completion(self._start_locked(c))
        self._emit(c, "restart")

    # ------------------------------------------- pause, update, stats (ops_resources)
    async def pause(self, ref: str) -> None:
        await ops_resources.pause(self, ref)

    async def unpause(self, ref: str) -> None:
        await ops_resources.unpause(self, ref)

    async def update(self, ref: str, patch: dict[str, Any], restart_policy: Any = None,
                     annotate: Any = None) -> builtins.list[str]:
        return await ops_resources.update(self, ref, patch, restart_policy, annotate)

    def stats(self, ref: str, *, stream: bool, one_shot: bool) -> Any:
        return ops_resources.stats(self, ref, stream=stream, one_shot=one_shot)

    # ----------------------------------------------------------------- remove
    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        # A client hanging up does not leave a half-removed container behind.
        await run_to_completion(self._remove(ref, force=force, volumes=volumes))

    async def _remove(self, ref: str, *, force: bool, volumes: bool) -> None:
        c = self.get(ref)
        # Like dockerd, the removal is claimed first: a second remove meanwhile gets a 409.
        if c.state.removal_in_progress:
            raise Conflict(f"removal of container {ref} is already in progress")
        if c.state.running and not force:
            raise Conflict(
                f'cannot remove container "/{c.name}": container is running: '
                "stop the container before removing or force remove"
            )
        c.state.removal_in_progress = True
        try:
            while not await self._remove_stopped(c, ref, force):
                pass   # it was being started meanwhile: end that run too
        except BaseException:
            self._deleted.pop(c.id, None)
            c.state.removal_in_progress = False
            raise
        self._containers.pop(c.id, None)
        self._restart.pop(c.id, None)
        if self._names.get(c.name) == c.id:
            self._names.pop(c.name, None)
        for att in self._pending_attach.pop(c.id, []):
            att.end()
        for fut in self._exit_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(c)
        for fut in self._remove_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(c)
        self._locks.pop(c.id, None)
        await self.contributors.removed(c, volumes=volumes)
        self._emit(c, "destroy")

    async def _remove_stopped(self, c: Container, ref: str, force: bool) -> bool:
        """Delete the container once no run of it is left; False when a start that was under
        way got in first (the caller ends that run and tries again)."""
        if c.state.running:
            self._restart_manager(c).cancel()
            if c.state.restarting:
                await self._settle_restart(c.id)
        # A run that is ending (or was just killed) is recorded to the end (exit status, `die`)
        # before the container goes: also when its state already reads "exited", the exit
        # recording may still be under way.
        live = self._live.get(c.id)
        if live is not None:
            was_running = c.state.running
            try:
                await live.handle.kill(int(_signal.SIGKILL))   # nothing to do once it exited
                if was_running:
                    self._emit(c, "kill", signal=str(int(_signal.SIGKILL)))
            except Exception:
                log.debug("SIGKILL to %s failed", c.id, exc_info=True)
            await live.exited.wait()
        async with self._lock(c.id):
            if c.id not in self._containers:
                raise no_such_container(ref)
            if c.id in self._live or c.state.running:
                # A start that held the lock went through before the removal could.
                if not force:
                    raise Conflict(
                        f'cannot remove container "/{c.name}": container is running: '
                        "stop the container before removing or force remove")
                return False
            await asyncio.to_thread(self._destroy_files, c)
            await self.records.delete(c.id)   # from here on no save brings the row back
        return True

    # ---------------------------------------------------------------- rename
    async def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        try:
            new_name = self._validate_name("/" + new_name.lstrip("/"))
        except InvalidParameter as err:
            raise InvalidParameter(f"Error when allocating new name: {err.message}") from None
        if new_name == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        self._reserve_name(new_name, c.id)   # check and take in one step, as create does
        old = c.name
        c.name = new_name
        try:
            await self._save(c)
        except BaseException:
            c.name = old
            self._release_name(new_name, c.id)
            raise
        self._release_name(old, c.id)
        self._emit(c, "rename", oldName=f"/{old}")

    # ----------------------------------------------------------------- counts
    def counts(self) -> dict[str, int]:
        running = paused = stopped = 0
        for c in self._containers.values():
            if c.state.status == PAUSED:
                paused += 1
            elif c.state.running:
                running += 1
            else:
                stopped += 1
        return {"total": len(self._containers), "running": running, "paused": paused, "stopped": stopped}
