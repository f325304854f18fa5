"""Removing a container (ContainerService.remove calls this)."""
from __future__ import annotations

import asyncio
import logging
import signal as _signal
from typing import TYPE_CHECKING

from ..errors import Conflict, no_such_container
from ..types import Container

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger(__name__)


async def remove(svc: ContainerService, ref: str, *, force: bool, volumes: bool) -> None:
    """Remove a container (ContainerService.remove): end its run, delete its files and row, tell the
    waiters and the contributors (networks, volumes)."""
    c = svc.get(ref)
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
        while not await _remove_stopped(svc, c, ref, force):
            pass   # it was being started meanwhile: end that run too
    except BaseException:
        svc.records.undelete(c.id)
        c.state.removal_in_progress = False
        raise
    svc.records.discard(c.id)
    svc.monitor.forget(c.id)
    svc.records.release_name(c.name, c.id)
    for att in svc.records.take_pending_attaches(c.id):
        att.end()
    svc.records.wake_exit_waiters(c)
    svc.records.wake_remove_waiters(c)
    svc.records.drop_lock(c.id)
    await svc.contributors.removed(c, volumes=volumes)
    svc.records.emit(c, "destroy")

async def _remove_stopped(svc: ContainerService, c: Container, ref: str, force: bool) -> bool:
    """Delete the container once no run of it is left; False when a start that was under way
    got in first (the caller ends that run and tries again)."""
    if c.state.running:
        svc.monitor.restart_manager(c).cancel()
        if c.state.restarting:
            await svc.monitor.settle_restart(c.id)
    # A run that is ending (or was just killed) is recorded to the end (exit status, `die`)
    # before the container goes: also when its state already reads "exited", the exit
    # recording may still be under way.
    live = svc.records.live(c.id)
    if live is not None:
        was_running = c.state.running
        try:
            await live.handle.kill(int(_signal.SIGKILL))   # nothing to do once it exited
            if was_running:
                svc.records.emit(c, "kill", signal=str(int(_signal.SIGKILL)))
        except Exception:
            log.debug("SIGKILL to %s failed", c.id, exc_info=True)
        await live.exited.wait()
    async with svc.records.lock(c.id):
        if c.id not in svc.records:
            raise no_such_container(ref)
        if svc.records.live(c.id) is not None or c.state.running:
            # A start that held the lock went through before the removal could.
            if not force:
                raise Conflict(f'cannot remove container "/{c.name}": container is running: '
                               "stop the container before removing or force remove")
            return False
        await asyncio.to_thread(svc.bundles.destroy_files, c)
        # From here on no write may bring the row back (see records.save).
        await svc.records.delete_row(c.id)
    return True
