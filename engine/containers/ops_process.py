"""Verbs on a container's process: stop, kill, attach and resize (ContainerService's methods of
the same names call these)."""
from __future__ import annotations

import asyncio
import logging
import signal as _signal
from typing import TYPE_CHECKING

from ..errors import Conflict, NotModified
from ..types import PAUSED
from .attach import ContainerAttach
from .signals import parse_signal

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger(__name__)


async def stop(svc: ContainerService, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
    c = svc.get(ref)
    await svc.start_settled(c)
    if not c.state.running:
        raise NotModified("Container already stopped")
    live = svc.records.live(c.id)
    stop_sig = parse_signal(sig or c.config.stop_signal or "SIGTERM")
    if timeout is None:
        timeout = c.config.stop_timeout if c.config.stop_timeout is not None else 10
    c.state.has_been_manually_stopped = True
    if svc.monitor.kill_cancels_restart(c, stop_sig):
        svc.monitor.restart_manager(c).cancel()
    if c.state.restarting:
        # In back-off: cancelling the restart is the whole stop.
        await svc.monitor.settle_restart(c.id)
        live = svc.records.live(c.id)
        if not c.state.running or live is None:
            svc.records.emit(c, "stop")
            return
    if live is None:
        raise NotModified("Container already stopped")
    try:
        await live.handle.kill(stop_sig)
        svc.records.emit(c, "kill", signal=str(stop_sig))    # dockerd's stop goes through kill
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
                svc.records.emit(c, "kill", signal=str(int(_signal.SIGKILL)))
            except Exception:
                log.debug("SIGKILL to %s failed", c.id, exc_info=True)
            await live.exited.wait()
    if c.state.restarting and svc.monitor.restart_manager(c).canceled:
        # The run ended into a back-off while we waited (its restart is cancelled): return
        # once the container is exited, as from a stop during the back-off.
        await svc.monitor.settle_restart(c.id)
    svc.records.emit(c, "stop")


async def kill(svc: ContainerService, ref: str, sig: str | None = None) -> None:
    c = svc.get(ref)
    signum = parse_signal(sig) if sig else int(_signal.SIGKILL)
    await svc.start_settled(c)
    if not c.state.running:
        raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
    if svc.monitor.kill_cancels_restart(c, signum):
        svc.monitor.restart_manager(c).cancel()
    c.state.has_been_manually_stopped = True
    if c.state.restarting:
        # Nothing to signal: the cancelled back-off leaves the container exited.
        if signum == int(_signal.SIGKILL):
            await svc.monitor.settle_restart(c.id)
        return
    live = svc.records.live(c.id)
    if live is None:
        raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
    await live.handle.kill(signum)
    svc.records.emit(c, "kill", signal=str(signum))
    if signum == int(_signal.SIGKILL):
        await live.exited.wait()


async def attach(svc: ContainerService, ref: str, *, stdin: bool, stdout: bool, stderr: bool) -> ContainerAttach:
    c = svc.get(ref)
    if c.state.status == PAUSED:
        raise Conflict("You cannot attach to a paused container, unpause it first")
    if c.state.restarting:
        raise Conflict("You cannot attach to a restarting container, wait until it is running")
    att = ContainerAttach(
        c.id, stdin=stdin and c.config.open_stdin, stdout=stdout, stderr=stderr, tty=c.config.tty
    )
    live = svc.records.live(c.id)
    if c.state.running and live is not None:
        session = await live.handle.attach(stdin=att.stdin, stdout=stdout, stderr=stderr)
        await att.bind(session)
    else:
        svc.records.add_pending_attach(att)
    svc.records.emit(c, "attach")
    return att


async def resize(svc: ContainerService, ref: str, height: int, width: int) -> None:
    c = svc.get(ref)
    live = svc.records.live(c.id)
    if not c.state.running or live is None:
        raise Conflict(f"Container {c.id} is not running")
    await live.handle.resize(height, width)
    svc.records.emit(c, "resize", height=str(height), width=str(width))
