"""The monitor: what happens when a run ends, and at daemon start.

It records a container's exit, lets the restart policy decide (a back-off and a restart, see
restart.py) or auto-removes it; at daemon start it reconnects the shims of running containers,
settles what the others left behind and applies the restart policies.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import signal as _signal
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import timeutil
from ..errors import EngineError, NotFound
from ..types import EXITED, RESTARTING, Container
from .records import Live
from .restart import RestartManager, should_restart_on_boot
from .signals import parse_signal

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger(__name__)


class Monitor:
    def __init__(self, svc: ContainerService) -> None:
        self.svc = svc
        # Restart policies (restart.py): one manager per container, the pending back-offs, and
        # the containers being restarted through the API (not auto-removed in between).
        self._restart: dict[str, RestartManager] = {}
        self._restart_tasks: dict[str, asyncio.Task[None]] = {}
        self.manual_restart: set[str] = set()

    def forget(self, cid: str) -> None:
        """The container was removed: drop its restart manager."""
        self._restart.pop(cid, None)

    def close(self) -> None:
        """Daemon shutdown: pending back-offs end here (the container stays "restarting" on disk;
        restore() settles it)."""
        for task in list(self._restart_tasks.values()):
            task.cancel()
        self._restart_tasks.clear()

    def restart_manager(self, c: Container) -> RestartManager:
        rm = self._restart.get(c.id)
        if rm is None:
            rm = self._restart[c.id] = RestartManager(restart_count=c.restart_count)
        return rm

    def reset_restart_manager(self, c: Container) -> None:
        """A start through the API: a fresh manager, RestartCount back to 0 (dockerd does the same)."""
        old = self._restart.pop(c.id, None)
        if old is not None:
            old.cancel()
        c.restart_count = 0

    def kill_cancels_restart(self, c: Container, signum: int) -> bool:
        """dockerd: a kill through the API stops restarts when it is SIGKILL, when the container
        has no StopSignal, or when it is the container's StopSignal."""
        if signum == int(_signal.SIGKILL) or not c.config.stop_signal:
            return True
        try:
            return parse_signal(c.config.stop_signal) == signum
        except EngineError:
            return True

    async def settle_restart(self, cid: str) -> None:
        """Wait for a pending back-off to finish (restarted, or stopped after a cancel)."""
        task = self._restart_tasks.get(cid)
        if task is not None:
            await asyncio.shield(task)

    async def _restart_after(self, c: Container, rm: RestartManager, delay: float) -> None:
        manually_stopped = c.state.has_been_manually_stopped
        try:
            go = await rm.wait(delay)
            if go and c.id in self.svc.records:
                async with self.svc.records.lock(c.id):
                    if c.state.restarting and c.id in self.svc.records:
                        try:
                            await self.svc.starter.start_locked(c)
                            c.state.has_been_manually_stopped = manually_stopped
                        except Exception:  # recorded in State.Error by the start path
                            log.info("restarting %s failed", c.id[:12], exc_info=True)
            if c.state.restarting and c.id in self.svc.records:
                c.state = replace(c.state, status=EXITED, restarting=False)
                await self.svc.records.save(c)
                self.svc.records.wake_exit_waiters(c)
                await self.after_exit(c)
        finally:
            if self._restart_tasks.get(c.id) is asyncio.current_task():
                self._restart_tasks.pop(c.id, None)

    async def watch(self, cid: str, live: Live) -> None:
        try:
            status = await live.handle.wait()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever failed the wait, the shim is gone
            bundle = self.svc.config.bundles_root / cid
            status = self.svc.runtime.read_exit_status(bundle)
            if status is None:
                # The shim was killed: its container died with it (the init's parent-death
                # signal).  dockerd, when a shim disconnects, cleans up and records the task
                # as killed: exit code 137, no error.
                log.warning("lost the shim of %s (%s): the container is recorded as killed", cid, err)
                c = self.svc.records.find(cid)
                try:
                    await self.svc.runtime.cleanup(bundle, self.svc.bundles.cgroups_path(c) if c is not None else None)
                except Exception:
                    log.exception("cleaning up after the shim of %s", cid)
                await self.record_exit(cid, live, 137, timeutil.now(), False, "")
                return
            log.warning("lost the connection to the shim of %s (%s); it left an exit status", cid, err)
        await self.record_exit(
            cid, live, status.exit_code, status.finished_at, status.oom_killed, status.error
        )

    async def record_exit(
        self, cid: str, live: Live | None, code: int, finished_at: str, oom: bool, error: str,
        *, apply_policy: bool = True,
    ) -> None:
        """Record the end of a run; then the restart policy decides (a back-off and a restart)
        or the container stays exited (and is auto-removed).  Without `apply_policy` (daemon
        start) only the exit is recorded: restore() decides afterwards."""
        c = self.svc.records.find(cid)
        if c is None:
            return
        if self.svc.health is not None:
            self.svc.health.container_stopped(cid)
        if live is not None:
            try:
                await live.handle.close()
            except Exception:  # noqa: BLE001
                pass
        run_seconds = max(0.0, time.time() - timeutil.parse_ns(c.state.started_at) / 1e9) \
            if c.state.started_at != timeutil.ZERO_TIME else 0.0
        c.state = replace(
            c.state,
            status=EXITED,
            pid=0,
            exit_code=code,
            finished_at=finished_at or timeutil.now(),
            oom_killed=oom,
            error=error,
            paused=False,
            restarting=False,
        )
        await asyncio.to_thread(self.svc.bundles.cleanup_run, c)
        await self.svc.contributors.release(c)
        delay = None
        rm = None
        if apply_policy and not c.state.removal_in_progress:
            rm = self.restart_manager(c)
            # The policy as it is now: `docker update --restart` may have changed it.
            delay = rm.next_delay(c.host_config.restart_policy, code, c.state.has_been_manually_stopped,
                                  run_seconds)
        if delay is not None:
            c.restart_count += 1
            c.state = replace(c.state, status=RESTARTING, restarting=True)
        await self.svc.records.save(c)
        self.svc.records.drop_live(cid)
        if oom:
            self.svc.records.emit(c, "oom")
        self.svc.records.emit(c, "die", exitCode=str(code), execDuration=str(int(run_seconds)))
        if live is not None:
            live.exited.set()   # after `die`: a remove waiting for it sends `destroy` after
        self.svc.records.wake_exit_waiters(c)
        if delay is not None and rm is not None:
            self._restart_tasks[cid] = asyncio.get_running_loop().create_task(
                self._restart_after(c, rm, delay))
        elif apply_policy and cid not in self.manual_restart:
            await self.after_exit(c)

    async def after_exit(self, c: Container) -> None:
        if c.host_config.auto_remove and c.id in self.svc.records and not c.state.removal_in_progress:
            try:
                await self.svc.remove(c.id, force=True, volumes=True)
            except NotFound:
                pass
            except Exception:
                log.exception("auto-removing %s", c.id)

    async def restore(self) -> None:
        """After a daemon (re)start: settle what containers that are not running left behind
        (first, before anything else), reconnect live shims, settle the rest."""
        for c in self.svc.records.all():
            if c.state.removal_in_progress:
                c.state.removal_in_progress = False
        await asyncio.gather(*(self._settle_not_running(c) for c in self.svc.records.all()
                               if not c.state.running))
        for c in self.svc.records.all():
            if not c.state.running:
                continue
            bundle = self.svc.config.bundles_root / c.id
            handle = None
            try:
                handle = await self.svc.runtime.connect(c.id, bundle)
            except Exception:
                log.exception("reconnecting to the shim of %s", c.id)
            if handle is not None:
                live = Live()
                live.handle = handle
                self.svc.records.set_live(c.id, live)
                live.monitor = asyncio.create_task(self.watch(c.id, live))
                if self.svc.health is not None:
                    self.svc.health.container_started(c, reset=False)
                log.info("reconnected to running container %s", c.id[:12])
                continue
            status = self.svc.runtime.read_exit_status(bundle)
            if status is None:
                try:
                    await self.svc.runtime.cleanup(bundle, self.svc.bundles.cgroups_path(c))
                except Exception:
                    log.exception("cleaning up after the shim of %s", c.id)
                await self.record_exit(c.id, None, 255, timeutil.now(), False,
                                        "container's shim is gone and left no exit status",
                                        apply_policy=False)
            else:
                await self.record_exit(c.id, None, status.exit_code, status.finished_at,
                                        status.oom_killed, status.error, apply_policy=False)
        # Networks, volumes...: re-established for live containers, settled for the others.
        for c in self.svc.records.all():
            await self.svc.contributors.restore(c, running=c.state.running and self.svc.records.live(c.id) is not None)
        await self._apply_policies_on_boot()

    async def _settle_not_running(self, c: Container) -> None:
        """A container the record says is not running (a daemon killed while it started, or
        before it recorded a start): no shim, process, cgroup, rootfs mount or exec dir of
        it may remain.  A shim still waiting to start it is told to end it."""
        bundle = self.svc.config.bundles_root / c.id
        if not await asyncio.to_thread(bundle.exists):
            return
        try:
            handle = await self.svc.runtime.connect(c.id, bundle)
        except Exception:
            log.warning("connecting to the leftover shim of %s", c.id[:12], exc_info=True)
            handle = None
        if handle is not None:
            log.info("ending the shim of %s, which was never recorded as started", c.id[:12])
            try:
                await handle.kill(int(_signal.SIGKILL))
                await asyncio.wait_for(handle.wait(), 20)
            except Exception:
                log.warning("ending the leftover shim of %s", c.id[:12], exc_info=True)
            finally:
                await handle.close()
        try:
            await self.svc.runtime.cleanup(bundle, self.svc.bundles.cgroups_path(c))
        except Exception:
            log.exception("cleaning up after the shim of %s", c.id)
        await asyncio.to_thread(self.svc.bundles.cleanup_run, c)
        await asyncio.to_thread(shutil.rmtree, bundle, True)

    async def _apply_policies_on_boot(self) -> None:
        """dockerd at start: stopped containers whose restart policy asks for it are started
        (`always` even after a user stop; `unless-stopped` unless the user stopped it;
        `on-failure` after a failure with retries left); other stopped `--rm` containers,
        including ones that exited while the daemon was down, are removed."""
        to_start: list[Container] = []
        to_remove: list[Container] = []
        for c in self.svc.records.all():
            if c.state.running:
                continue
            if should_restart_on_boot(c.host_config.restart_policy, c.state.exit_code,
                                      c.state.has_been_manually_stopped, c.restart_count,
                                      c.state.has_been_started):
                to_start.append(c)
            elif c.host_config.auto_remove:
                to_remove.append(c)

        async def boot_start(c: Container) -> None:
            try:
                await self.svc.start(c.id)
            except Exception:  # the error is in State.Error; carry on with the rest
                log.warning("restarting %s at daemon start failed", c.id[:12], exc_info=True)

        async def boot_remove(c: Container) -> None:
            try:
                await self.svc.remove(c.id, force=True, volumes=True)
            except Exception:
                log.warning("auto-removing %s at daemon start failed", c.id[:12], exc_info=True)

        await asyncio.gather(*(boot_start(c) for c in to_start), *(boot_remove(c) for c in to_remove))

