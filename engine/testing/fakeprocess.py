"""Simulated container processes for the in-memory runtime (``engine.testing.runtime``).

A container's process is a coroutine.  A few busybox commands behave like
busybox: ``true``, ``false``, ``echo WORDS``, ``sleep N``, ``cat`` (stdin to
stdout), and ``sh -c SCRIPT`` where SCRIPT is ``;``-separated ``echo``/``exit N``/
``sleep N``/``true``/``false``/``cat`` commands (``echo ... >&2`` writes to
stderr); tests add their own programs (``FakeRuntime(programs={"name": coro})``):
an async function of the ``FakeProcess`` returning the exit code, e.g. one that
traps SIGTERM or that answers a healthcheck the way the test wants.

Signals follow PID-1 rules, as in a real container: the container's first
process ignores every signal it has no handler for (``FakeProcess.trap``),
except SIGKILL; an exec'd process dies of any fatal signal.  Either exits with
128+N.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import shlex
import signal as _signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from .. import timeutil
from ..runtime.api import STDERR, STDOUT, ExitStatus

Program = Callable[["FakeProcess"], Awaitable[int]]

# Signals whose default action does not end a process.
_HARMLESS = {int(_signal.SIGCHLD), int(_signal.SIGWINCH), int(_signal.SIGURG), int(_signal.SIGCONT),
             int(_signal.SIGSTOP), int(_signal.SIGTSTP), int(_signal.SIGTTIN), int(_signal.SIGTTOU), 0}

_pids = itertools.count(4000)


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class FakeStream:
    """One attach to a fake process (the ``Stream`` Protocol)."""

    def __init__(self, proc: FakeProcess, *, stdin: bool, stdout: bool, stderr: bool) -> None:
        self._proc = proc
        self._stdin = stdin
        self._kinds = {k for k, on in ((STDOUT, stdout), (STDERR, stderr)) if on}
        self._queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._closed = False

    def deliver(self, item: tuple[int, bytes] | None) -> None:
        if item is None or item[0] in self._kinds:
            self._queue.put_nowait(item)

    async def read(self) -> tuple[int, bytes] | None:
        if self._closed:
            return None
        item = await self._queue.get()
        if item is None:
            self._closed = True
        return item

    async def write(self, data: bytes) -> None:
        if self._stdin and data:
            self._proc.feed_stdin(data)

    async def close_stdin(self) -> None:
        # Like the shim: an attach's half-close ends the process's stdin only with
        # StdinOnce (`docker run -i` without it leaves stdin open for the next attach).
        if self._stdin and self._proc.stdin_once:
            self._proc.feed_stdin(None)

    async def close(self) -> None:
        self._closed = True
        self._proc.forget(self)


class FakeProcess:
    """A simulated process: a coroutine with stdio, signal handlers and an exit status."""

    def __init__(self, args: list[str], program: Program, *, pid1: bool, tty: bool,
                 stdin_once: bool = True, log_path: Path | None = None) -> None:
        self.args = list(args)
        self.stdin_once = stdin_once
        self.pid = next(_pids)
        self.pid1 = pid1
        self.tty = tty
        self.signals: list[int] = []          # every signal sent, in order
        self.traps: dict[int, int] = {}        # signal -> exit code
        self.paused = False
        self._program = program
        self._log_path = log_path
        self.streams: list[FakeStream] = []
        self._stdin: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._signalled: asyncio.Queue[int] = asyncio.Queue()
        self.status: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self.on_exit: list[Callable[[ExitStatus], None]] = []    # called as it ends, synchronously

    # --- what programs use
    def write(self, data: bytes | str, stream: int = STDOUT) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if self.tty:
            # a terminal has one output, and its line discipline turns "\n" into "\r\n"
            stream = STDOUT
            raw = raw.replace(b"\n", b"\r\n")
        for s in list(self.streams):
            s.deliver((stream, raw))
        if self._log_path is not None:
            entry = {"log": raw.decode(errors="replace"), "stream": "stdout" if stream == STDOUT else "stderr",
                     "time": timeutil.now()}
            with open(self._log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

    async def read_stdin(self) -> bytes | None:
        """The next chunk of stdin; None at its end."""
        return await self._stdin.get()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def trap(self, sig: int, exit_code: int) -> None:
        """On ``sig``, exit with ``exit_code`` (a shell's ``trap 'exit N' SIG``)."""
        self.traps[int(sig)] = exit_code

    # --- what the runtime uses
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._main())

    @property
    def started(self) -> bool:
        return self._task is not None

    async def _main(self) -> None:
        try:
            code = await self._program(self)
        except _Exit as e:
            code = e.code
        except asyncio.CancelledError:
            return              # ended by signal(); the status is already set
        self.finish(code)

    def finish(self, code: int, *, error: str = "") -> None:
        if self.status.done():
            return
        status = ExitStatus(exit_code=code, finished_at=timeutil.now(), error=error)
        self.status.set_result(status)
        for hook in self.on_exit:
            hook(status)
        for s in list(self.streams):
            s.deliver(None)
        self.streams.clear()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    def vanish(self) -> None:
        """Gone with its shim: no status, streams end."""
        if self._task is not None:
            self._task.cancel()
        for s in list(self.streams):
            s.deliver(None)
        self.streams.clear()

    def signal(self, sig: int) -> None:
        sig = int(sig)
        self.signals.append(sig)
        if self.status.done():
            return
        if sig in self.traps and sig != int(_signal.SIGKILL):
            self.finish(self.traps[sig])
        elif sig == int(_signal.SIGKILL) or (not self.pid1 and sig not in _HARMLESS):
            self.finish(128 + sig)

    def feed_stdin(self, data: bytes | None) -> None:
        self._stdin.put_nowait(data)

    def attach(self, *, stdin: bool, stdout: bool, stderr: bool) -> FakeStream:
        stream = FakeStream(self, stdin=stdin, stdout=stdout, stderr=stderr)
        if self.status.done():
            stream.deliver(None)
        else:
            self.streams.append(stream)
        return stream

    def forget(self, stream: FakeStream) -> None:
        if stream in self.streams:
            self.streams.remove(stream)


# ------------------------------------------------------------------ the busybox subset
async def _true(p: FakeProcess) -> int:
    return 0


async def _false(p: FakeProcess) -> int:
    return 1


async def _echo(p: FakeProcess) -> int:
    p.write(" ".join(p.args[1:]) + "\n")
    return 0


async def _sleep(p: FakeProcess) -> int:
    await p.sleep(float(p.args[1]) if len(p.args) > 1 else 0.0)
    return 0


async def _cat(p: FakeProcess) -> int:
    while (chunk := await p.read_stdin()) is not None:
        p.write(chunk)
    return 0


async def _sh(p: FakeProcess) -> int:
    if len(p.args) < 3 or p.args[1] != "-c":
        p.write("fake sh: only `sh -c SCRIPT` is simulated\n", STDERR)
        return 2
    code = 0
    for command in p.args[2].replace("\n", ";").split(";"):
        words = shlex.split(command)
        if not words:
            continue
        name, rest = words[0], words[1:]
        if name == "exit":
            return int(rest[0]) if rest else code
        if name == "echo":
            to_err = rest[-1:] == [">&2"]
            p.write(" ".join(rest[:-1] if to_err else rest) + "\n", STDERR if to_err else STDOUT)
            code = 0
        elif name == "sleep":
            await p.sleep(float(rest[0]) if rest else 0.0)
            code = 0
        elif name in ("true", "false"):
            code = 0 if name == "true" else 1
        elif name == "cat":
            code = await _cat(p)
        else:
            p.write(f"sh: {name}: not found\n", STDERR)
            code = 127
    return code


BUSYBOX: dict[str, Program] = {"true": _true, "false": _false, "echo": _echo, "sleep": _sleep, "cat": _cat,
                               "sh": _sh}
