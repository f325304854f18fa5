"""Waits, attach streams, resize and the logs' end: how clients follow a container
(part of ContainerService)."""
from __future__ import annotations

import asyncio

from ..errors import (
    Conflict,
    InvalidParameter,
)
from ..types import (
    PAUSED,
    Container,
)
from .attach import ContainerAttach
from .base import ServiceBase

WAIT_NOT_RUNNING = "not-running"
WAIT_NEXT_EXIT = "next-exit"
WAIT_REMOVED = "removed"


class Streams(ServiceBase):
    """wait, attach, resize, logs."""

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
                self._exit_waiters.setdefault(c.id, []).append(fut)
        elif condition == WAIT_NEXT_EXIT:
            self._exit_waiters.setdefault(c.id, []).append(fut)
        elif condition == WAIT_REMOVED:
            self._remove_waiters.setdefault(c.id, []).append(fut)
        else:
            raise InvalidParameter(f"invalid condition: \"{condition}\"")
        return fut

    def cancel_wait(self, fut: asyncio.Future[Container]) -> None:
        for table in (self._exit_waiters, self._remove_waiters):
            for lst in table.values():
                if fut in lst:
                    lst.remove(fut)
        fut.cancel()

    # ----------------------------------------------------------------- attach
    async def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool) -> ContainerAttach:
        c = self.get(ref)
        if c.state.status == PAUSED:
            raise Conflict("You cannot attach to a paused container, unpause it first")
        if c.state.restarting:
            raise Conflict("You cannot attach to a restarting container, wait until it is running")
        att = ContainerAttach(
            c.id, stdin=stdin and c.config.open_stdin, stdout=stdout, stderr=stderr, tty=c.config.tty
        )
        live = self._live.get(c.id)
        if c.state.running and live is not None:
            session = await live.handle.attach(stdin=att.stdin, stdout=stdout, stderr=stderr)
            await att.bind(session)
        else:
            self._pending_attach.setdefault(c.id, []).append(att)
        self._emit(c, "attach")
        return att

    def note_detached(self, att: ContainerAttach) -> None:
        """The client left an attach with its detach keys: dockerd records a `detach` event."""
        c = self._containers.get(att.container_id)
        if c is not None:
            self._emit(c, "detach")

    def forget_attach(self, att: ContainerAttach) -> None:
        pending = self._pending_attach.get(att.container_id)
        if pending and att in pending:
            pending.remove(att)

    async def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        live = self._live.get(c.id)
        if not c.state.running or live is None:
            raise Conflict(f"Container {c.id} is not running")
        await live.handle.resize(height, width)
        self._emit(c, "resize", height=str(height), width=str(width))

    # ------------------------------------------------------------------- logs
    def logs_stopped_event(self, c: Container) -> asyncio.Event:
        live = self._live.get(c.id)
        if live is not None and c.state.running:
            return live.exited
        ev = asyncio.Event()
        ev.set()
        return ev
