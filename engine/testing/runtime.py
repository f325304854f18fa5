"""An in-memory container runtime (``RuntimeExecutor``) for unit tests: no root, no kernel.

A container's process is a ``fakeprocess.FakeProcess`` (a coroutine), chosen by
the bundle's ``config.json`` (``process.args``), exactly as the real runtime
reads it: the busybox subset of ``fakeprocess.BUSYBOX``, or the programs a test
adds (``FakeRuntime(programs={"name": coro})``).

The runtime keeps its containers in ``FakeRuntime.host`` (think: the machine),
so a second ``ContainerService`` built on the same ``FakeRuntime`` finds the
"live shims" of the first after a simulated daemon restart; ``shim_died`` and
``shim_lost`` end a run behind the service's back, with and without an exit
status.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Conflict, EngineError, Unavailable
from ..runtime.api import ExitStatus
from ..runtime.starterrors import start_error
from .fakeprocess import BUSYBOX, FakeProcess, FakeStream, Program

__all__ = ["BUSYBOX", "FakeContainer", "FakeExec", "FakeHandle", "FakeProcess", "FakeRuntime", "FakeStream",
           "Program"]


@dataclass
class FakeContainer:
    """What the "machine" holds for one bundle: the run's process and its recorded exit."""

    container_id: str
    bundle: Path
    process: FakeProcess
    log_path: Path | None
    alive: bool = True                      # False once the "shim" is gone
    exit_status: ExitStatus | None = None   # what the shim wrote when the run ended
    resources: list[dict[str, Any]] = field(default_factory=list)
    execs: list[FakeProcess] = field(default_factory=list)


class FakeHandle:
    """A connection to a fake container (the ``ContainerHandle`` Protocol)."""

    def __init__(self, runtime: FakeRuntime, fc: FakeContainer) -> None:
        self._runtime = runtime
        self._fc = fc
        self.container_id = fc.container_id
        self.pid = fc.process.pid
        self._closed = False

    def _check(self) -> None:
        if self._closed or not self._fc.alive:
            raise Unavailable("connection to the container's shim closed")

    @property
    def process(self) -> FakeProcess:
        return self._fc.process

    async def start(self) -> None:
        self._check()
        if not self._fc.process.started:
            self._fc.process.start()

    async def attach(self, *, stdin: bool, stdout: bool, stderr: bool, logs_replay: bool = False) -> FakeStream:
        self._check()
        return self._fc.process.attach(stdin=stdin, stdout=stdout, stderr=stderr)

    async def exec(self, exec_id: str, *, args: list[str], env: list[str], cwd: str = "/", uid: int = 0,
                   gid: int = 0, additional_gids: list[int] | None = None, tty: bool = False,
                   open_stdin: bool = False, console_size: tuple[int, int] | None = None,
                   capabilities: list[str] | None = None, privileged: bool = False,
                   no_new_privileges: bool = False) -> FakeExec:
        if self._closed or not self._fc.alive or self._fc.process.status.done():
            raise Conflict(f"Container {self.container_id} is not running")
        program = self._runtime.program_for(args)
        if program is None:
            raise start_error(f'exec: "{args[0] if args else ""}": executable file not found in $PATH',
                              exec_=True)
        proc = FakeProcess(args, program, pid1=False, tty=tty)
        self._fc.execs.append(proc)
        session = FakeExec(proc, stdin=open_stdin)
        proc.start()
        return session

    async def kill(self, sig: int) -> None:
        if self._fc.process.status.done():
            return
        self._check()
        self._fc.process.signal(sig)

    async def resize(self, height: int, width: int) -> None:
        self._check()

    async def pause(self) -> None:
        self._check()
        self._fc.process.paused = True

    async def resume(self) -> None:
        self._check()
        self._fc.process.paused = False

    async def update(self, resources: dict[str, Any]) -> None:
        self._check()
        self._fc.resources.append(dict(resources))

    async def stats(self) -> dict[str, Any]:
        self._check()
        # the shim's names (cgroups.stats): a quiet container that uses no CPU and 1 MiB
        limit = next((r["memory"]["limit"] for r in reversed(self._fc.resources)
                      if isinstance(r.get("memory"), dict) and "limit" in r["memory"]), 2**63 - 1)
        return {
            "memory_stats": {"usage": 1 << 20, "limit": limit, "stats": {"cache": 0, "rss": 1 << 20}},
            "cpu_stats": {"cpu_usage": {"total_usage": 0, "percpu_usage": [0], "usage_in_usermode": 0,
                                        "usage_in_kernelmode": 0},
                          "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
            "pids_stats": {"current": 1 + sum(1 for e in self._fc.execs if not e.status.done())},
        }

    async def pids(self) -> list[int]:
        self._check()
        return [self.pid] + [e.pid for e in self._fc.execs if not e.status.done()]

    async def wait(self) -> ExitStatus:
        lost: asyncio.Future[Any] = asyncio.ensure_future(self._runtime.lost_event(self._fc).wait())
        status: asyncio.Future[Any] = asyncio.ensure_future(asyncio.shield(self._fc.process.status))
        try:
            await asyncio.wait([lost, status], return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if status.done():
            result: ExitStatus = status.result()
            return result
        status.cancel()
        if self._fc.exit_status is not None:
            return self._fc.exit_status
        raise EngineError("container's shim exited without an exit status")

    @property
    def exited(self) -> bool:
        return self._fc.process.status.done() or not self._fc.alive

    async def close(self) -> None:
        self._closed = True


class FakeExec(FakeStream):
    """An exec'd fake process (the ``ExecProcess`` Protocol)."""

    def __init__(self, proc: FakeProcess, *, stdin: bool) -> None:
        super().__init__(proc, stdin=stdin, stdout=True, stderr=True)
        proc.streams.append(self)
        self.pid = proc.pid

    async def wait(self) -> ExitStatus:
        while await self.read() is not None:
            pass
        return await asyncio.shield(self._proc.status)

    async def resize(self, height: int, width: int) -> None:
        return None

    async def kill(self, sig: int) -> None:
        self._proc.signal(sig)


class FakeRuntime:
    """The ``RuntimeExecutor`` Protocol in memory.  One per test; share it between two
    services to simulate a daemon restart with containers still running."""

    def __init__(self, programs: dict[str, Program] | None = None) -> None:
        self.programs: dict[str, Program] = {**BUSYBOX, **(programs or {})}
        self.host: dict[Path, FakeContainer] = {}
        self.created: list[str] = []            # container ids, one per create() call
        self.cleaned: list[Path] = []           # bundles, one per cleanup() call
        self._lost: dict[Path, asyncio.Event] = {}
        # set to make the next create() fail with this error (a start that fails late)
        self.fail_next_create: EngineError | None = None

    def program_for(self, args: list[str]) -> Program | None:
        """By name, or by the last part of a path ("/bin/sh" is "sh", as every busybox applet)."""
        if not args:
            return None
        return self.programs.get(args[0]) or self.programs.get(args[0].rsplit("/", 1)[-1])

    def lost_event(self, fc: FakeContainer) -> asyncio.Event:
        ev = self._lost.get(fc.bundle)
        if ev is None:
            ev = self._lost[fc.bundle] = asyncio.Event()
            if not fc.alive:
                ev.set()
        return ev

    async def create(self, container_id: str, bundle: Path, *, log_path: Path | None, tty: bool, open_stdin: bool,
                     stdin_once: bool, console_size: tuple[int, int] | None = None,
                     log_max_size: int | None = None, log_max_files: int = 1,
                     log_attrs: dict[str, str] | None = None) -> FakeHandle:
        bundle = Path(bundle)
        self.created.append(container_id)
        if self.fail_next_create is not None:
            err, self.fail_next_create = self.fail_next_create, None
            raise err
        old = self.host.get(bundle)
        if old is not None and old.alive and not old.process.status.done():
            raise EngineError(f"container {container_id} already exists")
        try:
            spec = json.loads((bundle / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise start_error(f"reading config.json: {e}") from None
        process = spec.get("process") or {}
        args = [str(a) for a in process.get("args") or []]
        program = self.program_for(args)
        if program is None:
            raise start_error(f'exec: "{args[0] if args else ""}": executable file not found in $PATH')
        proc = FakeProcess(args, program, pid1=True, tty=bool(process.get("terminal")), stdin_once=stdin_once,
                           log_path=Path(log_path) if log_path else None)
        fc = FakeContainer(container_id, bundle, proc, Path(log_path) if log_path else None)
        self.host[bundle] = fc
        self._lost.pop(bundle, None)
        proc.on_exit.append(lambda status: self._record_exit(fc, status))
        return FakeHandle(self, fc)

    @staticmethod
    def _record_exit(fc: FakeContainer, status: ExitStatus) -> None:
        if fc.alive:
            fc.exit_status = status
            fc.alive = False        # the shim exits right after the container

    async def connect(self, container_id: str, bundle: Path) -> FakeHandle | None:
        fc = self.host.get(Path(bundle))
        if fc is None or not fc.alive or fc.process.status.done():
            return None
        return FakeHandle(self, fc)

    def read_exit_status(self, bundle: Path) -> ExitStatus | None:
        fc = self.host.get(Path(bundle))
        return fc.exit_status if fc is not None else None

    async def cleanup(self, bundle: Path, cgroups_path: str | None = None) -> None:
        self.cleaned.append(Path(bundle))
        fc = self.host.get(Path(bundle))
        if fc is not None and not fc.alive:
            fc.process.finish(255)      # nothing of the run survives its cleanup

    # --- for tests: end a run behind the service's back
    def container(self, container_id: str) -> FakeContainer:
        """The most recent run of a container."""
        for fc in reversed(list(self.host.values())):
            if fc.container_id == container_id:
                return fc
        raise KeyError(container_id)

    def shim_died(self, container_id: str, exit_code: int) -> None:
        """The container exited while nobody was connected: its shim recorded the status."""
        fc = self.container(container_id)
        fc.process.finish(exit_code)

    def shim_lost(self, container_id: str) -> None:
        """The shim was killed (and its container with it) without recording anything."""
        fc = self.container(container_id)
        fc.alive = False
        fc.exit_status = None
        fc.process.vanish()
        self.lost_event(fc).set()
