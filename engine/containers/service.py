"""ContainerService: the container lifecycle verbs, over the parts that do the work.

- records.py: every container record (in memory, persisted to SQLite on each change), names,
  the per-container locks that serialise lifecycle operations on one container (different
  containers never wait for each other), events, live runtime handles, waiters;
- create.py: validation of a create request and the merge with the image config (pure);
- bundle.py: the container's files and rootfs, the spec of one start;
- start.py: the start sequence (with the start contributors of contributors.py);
- monitor.py: exits, restart policy back-off, auto-remove, restore at daemon start;
- ops_process.py, ops_resources.py, ops_remove.py: stop/kill/attach/resize, pause/update/stats, remove.
"""
from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..aiotools import run_to_completion
from ..config import Config
from ..errors import Conflict, InvalidParameter, NotModified
from ..events.api import EventPublisher
from ..images.api import RootfsImages
from ..plugins import stock_runtimes
from ..runtime.api import RuntimeExecutor
from ..state import Database
from ..types import DEAD, PAUSED, REMOVING, Container, ContainerConfig, HostConfig
from . import create as create_step
from . import ops_process, ops_remove, ops_resources, resources
from .attach import ContainerAttach
from .bundle import Bundles
from .contributors import Contributors, StartContributor
from .monitor import Monitor
from .records import ContainerRecords
from .start import Starter

log = logging.getLogger(__name__)

WAIT_NOT_RUNNING = "not-running"
WAIT_NEXT_EXIT = "next-exit"
WAIT_REMOVED = "removed"


class ContainerService:
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
        self._generate_name = generate_name
        self._validate_name = validate_name
        self._check_runtime = check_runtime or stock_runtimes().check_runtime
        # The parts (each its own module): the records every other part shares, the bundle
        # step, the start sequence and the monitor of runs (exits, restarts, daemon start).
        self.records = ContainerRecords(db, events)
        self.bundles = Bundles(config, images, self.records, build_spec=build_spec, spec_input=spec_input,
                               resolve_user=resolve_user)
        self.starter = Starter(self)
        self.monitor = Monitor(self)
        # Set by the engine: healthcheck monitors (health.py), told about starts and exits.
        self.health: Any = None
        # Per-container resources outside the image and runtime (networks, volumes): contributors.py
        self.contributors = Contributors()
        # set when a start through the API (start, restart) is over: a stop or kill arriving
        # meanwhile waits for it, as dockerd's container lock makes them wait, instead of
        # answering "already stopped" for a container that is running a moment later
        self._starting: dict[str, asyncio.Event] = {}

    def add_contributor(self, contrib: StartContributor) -> None:
        """Register a start contributor (see contributors.py); called by the composition root."""
        self.contributors.add(contrib)

    # ------------------------------------------------------------------ lookup
    def get(self, ref: str) -> Container:
        """Find by full id, name (with or without "/"), or unique id prefix."""
        return self.records.get(ref)

    def list(self) -> list[Container]:
        return sorted(self.records.all(), key=lambda c: c.created, reverse=True)

    def is_running(self, c: Container) -> bool:
        return c.state.running

    def users_of_image(self, image_id: str) -> builtins.list[tuple[str, bool]]:
        return [(c.id, c.state.running) for c in self.records.all() if c.image_id == image_id]

    # For top, commit and export (engine/containers/{top,commit,export}.py).
    def runtime_handle(self, c: Container) -> Any:
        """The running container's ShimHandle, or None."""
        live = self.records.live(c.id)
        return live.handle if live is not None else None

    def lifecycle_lock(self, c: Container) -> asyncio.Lock:
        """The lock start/stop/remove hold for this container."""
        return self.records.lock(c.id)

    # ----------------------------------------------------------------- create
    async def create(
        self,
        config: ContainerConfig,
        host_config: HostConfig,
        *,
        name: str | None,
    ) -> tuple[Container, builtins.list[str]]:
        """Create a container; returns it and the warnings dockerd would give."""
        self._check_runtime(host_config.runtime)  # dockerd checks the settings before names and images
        cid = self.records.new_id()
        if name:
            # Checked and taken in one step (no await in between): of parallel creates with one
            # name exactly one gets it, the others a Conflict; the loser's cleanup never drops it.
            name = self._validate_name(name)
            self.records.reserve_name(name, cid)
        try:
            # A client hanging up does not cut the create short (rootfs prepared, row unsaved).
            return await run_to_completion(self._create(cid, config, host_config, name))
        finally:
            if cid not in self.records:
                self.records.release_name(name, cid)

    async def _create(self, cid: str, config: ContainerConfig, host_config: HostConfig,
                      name: str | None) -> tuple[Container, builtins.list[str]]:
        create_step.check_request(config)
        image = await asyncio.to_thread(self.images.get, config.image)
        checked = create_step.validate(config, host_config, image, host_limits=resources.HostLimits.probe(),
                                       peer=self.bundles.peer, rootfs=self.config.bundles_root / cid / "rootfs")
        if not name:
            name = self._generate_name(self.records.name_taken, fallback=cid[:12])
            self.records.reserve_name(name, cid)
        c = create_step.new_container(cid, name, image.id, checked, containers_root=self.config.containers_root,
                                      storage_driver=self.config.storage_driver)
        contributed = False
        try:
            await asyncio.to_thread(self.bundles.create_files, c, image.id)
            await self.contributors.created(c)
            contributed = True
            self.records.add(c)
            await self.records.save(c)
        except BaseException:
            self.records.discard(cid)
            if contributed:
                await self.contributors.removed(c, volumes=True)
            self.records.release_name(name, cid)
            await asyncio.to_thread(self.bundles.destroy_files, c)
            raise
        self.records.emit(c, "create")
        return c, checked.warnings

    # ------------------------------------------------------------------ start
    async def start(self, ref: str) -> None:
        c = self.get(ref)
        async with self.records.lock(c.id):
            if c.state.status == PAUSED:
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.state.running:
                raise NotModified("Container already started")
            if c.state.removal_in_progress or c.state.status in (REMOVING, DEAD):
                raise Conflict("container is marked for removal and cannot be started")
            self.monitor.reset_restart_manager(c)
            # A client hanging up does not cut the start short: a shim started for nobody
            # would keep its created container (and cgroup) forever.
            await self._tracked_start(c)

    async def _tracked_start(self, c: Container) -> None:
        """The start sequence (the caller holds the lock) that a concurrent stop or kill waits for."""
        done = self._starting[c.id] = asyncio.Event()
        try:
            await run_to_completion(self.starter.start_locked(c))
        finally:
            if self._starting.get(c.id) is done:
                del self._starting[c.id]
            done.set()

    async def start_settled(self, c: Container) -> None:
        """Return once no start through the API is under way for `c`."""
        starting = self._starting.get(c.id)
        if starting is not None:
            await starting.wait()

    # ------------------------------------------------------------------ exec
    def resolve_user_in(self, rootfs: Path, user: str) -> tuple[int, int, tuple[int, ...], str]:
        """uid, gid, extra groups and home of `user` in the container's rootfs (for exec)."""
        return self.bundles.resolve(rootfs, user)

    # ----------------------------------------------- stop, kill, attach, resize (ops_process)
    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        await ops_process.stop(self, ref, timeout, sig)

    async def kill(self, ref: str, sig: str | None = None) -> None:
        await ops_process.kill(self, ref, sig)

    async def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool) -> ContainerAttach:
        return await ops_process.attach(self, ref, stdin=stdin, stdout=stdout, stderr=stderr)

    async def resize(self, ref: str, height: int, width: int) -> None:
        await ops_process.resize(self, ref, height, width)

    async def restart(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        if c.state.running:
            # A restart is not an exit the user wants acted on: no auto-remove in between.
            self.monitor.manual_restart.add(c.id)
            try:
                await self.stop(c.id, timeout, sig)
            finally:
                self.monitor.manual_restart.discard(c.id)
        async with self.records.lock(c.id):
            if not c.state.running:
                self.monitor.reset_restart_manager(c)
                await self._tracked_start(c)
        self.records.emit(c, "restart")

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
        await run_to_completion(ops_remove.remove(self, ref, force=force, volumes=volumes))

    # ------------------------------------------------------------------- wait
    async def wait_future(self, ref: str, condition: str) -> asyncio.Future[Container]:
        """Register a wait and return a future of the container at the awaited moment.

        Registration happens before this returns, so a client that waits and then
        starts the container cannot miss a fast exit.
        """
        c = self.get(ref)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Container] = loop.create_future()
        if condition in ("", WAIT_NOT_RUNNING):
            if not c.state.running:
                fut.set_result(c)
            else:
                self.records.add_exit_waiter(c.id, fut)
        elif condition == WAIT_NEXT_EXIT:
            self.records.add_exit_waiter(c.id, fut)
        elif condition == WAIT_REMOVED:
            self.records.add_remove_waiter(c.id, fut)
        else:
            raise InvalidParameter(f"invalid condition: \"{condition}\"")
        return fut

    def cancel_wait(self, fut: asyncio.Future[Container]) -> None:
        self.records.cancel_waiter(fut)

    # ----------------------------------------------------------------- attach
    def note_detached(self, att: ContainerAttach) -> None:
        """The client left an attach with its detach keys: dockerd records a `detach` event."""
        c = self.records.find(att.container_id)
        if c is not None:
            self.records.emit(c, "detach")

    def forget_attach(self, att: ContainerAttach) -> None:
        self.records.forget_attach(att)

    # ------------------------------------------------------------------- logs
    def logs_stopped_event(self, c: Container) -> asyncio.Event:
        live = self.records.live(c.id)
        if live is not None and c.state.running:
            return live.exited
        ev = asyncio.Event()
        ev.set()
        return ev

    # ---------------------------------------------------------------- rename
    async def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        try:
            new_name = self._validate_name("/" + new_name.lstrip("/"))
        except InvalidParameter as err:
            raise InvalidParameter(f"Error when allocating new name: {err.message}") from None
        if new_name == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        self.records.reserve_name(new_name, c.id)   # check and take in one step, as create does
        old = c.name
        c.name = new_name
        try:
            await self.records.save(c)
        except BaseException:
            c.name = old
            self.records.release_name(new_name, c.id)
            raise
        self.records.release_name(old, c.id)
        self.records.emit(c, "rename", oldName=f"/{old}")

    # ------------------------------------------------------------ reconnect
    async def restore(self) -> None:
        """After a daemon (re)start: settle what containers that are not running left behind
        (first, before anything else), reconnect live shims, settle the rest (monitor.py)."""
        await self.monitor.restore()

    async def stop_all(self) -> None:
        """Stop every running container, each with its own stop signal and timeout (a daemon shutdown
        without live restore, as dockerd's)."""
        async def stop_one(c: Container) -> None:
            try:
                await self.stop(c.id)
            except NotModified:
                pass
            except Exception:
                log.warning("stopping %s at daemon shutdown failed", c.id[:12], exc_info=True)

        await asyncio.gather(*(stop_one(c) for c in self.records.all() if c.state.running))

    async def close(self) -> None:
        """Drop shim connections; containers keep running."""
        if self.health is not None:
            self.health.close()
        self.monitor.close()
        for live in self.records.all_live():
            if live.monitor is not None:
                live.monitor.cancel()
            try:
                await live.handle.close()
            except Exception:  # noqa: BLE001
                pass
        self.records.clear_live()

    # ----------------------------------------------------------------- counts
    def counts(self) -> dict[str, int]:
        running = paused = stopped = 0
        all_ = self.records.all()
        for c in all_:
            if c.state.status == PAUSED:
                paused += 1
            elif c.state.running:
                running += 1
            else:
                stopped += 1
        return {"total": len(all_), "running": running, "paused": paused, "stopped": stopped}
