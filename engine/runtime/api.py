"""What the engine asks of a container runtime: the executor and a container's handle.

The boundary is an OCI bundle (``config.json`` + ``rootfs``).  ``ShimRuntime``
(``client.py``) implements these Protocols with a shim process per container;
``engine.testing.runtime.FakeRuntime`` implements them in memory for unit tests.
Both run the contract suite in ``tests/contracts/test_runtime_contract.py``.

Lifecycle of one container run, as ``ContainerService`` drives it::

    handle = await executor.create(id, bundle, ...)   # init waits; nothing of the
                                                      # process has run yet
    session = await handle.attach(...)               # optional: sees every byte
    await handle.start()                              # the process execs now
    status = await handle.wait()                      # ExitStatus once it ended
    await handle.close()                              # drop the connection only

After a daemon restart ``connect`` finds a handle for a run that is still
alive; for one that is gone ``read_exit_status`` says how it ended (None: it
left nothing) and ``cleanup`` removes what it left behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

STDOUT = 1
STDERR = 2


@dataclass(frozen=True)
class ExitStatus:
    """How a container's (or an exec's) process ended."""

    exit_code: int          # 128+N after a fatal signal N
    finished_at: str        # RFC 3339
    oom_killed: bool = False
    error: str = ""


@runtime_checkable
class Stream(Protocol):
    """One attach to a process's stdio."""

    async def read(self) -> tuple[int, bytes] | None:
        """(STDOUT or STDERR, data); None once all output was delivered."""
        ...

    async def write(self, data: bytes) -> None:
        """To the process's stdin (ignored when the attach has no stdin)."""
        ...

    async def close_stdin(self) -> None: ...

    async def close(self) -> None:
        """Leave; the process keeps running."""
        ...


@runtime_checkable
class ExecProcess(Stream, Protocol):
    """A process started in a running container (``docker exec``)."""

    pid: int

    async def wait(self) -> ExitStatus:
        """Drains the remaining output, then the exit status."""
        ...

    async def resize(self, height: int, width: int) -> None: ...

    async def kill(self, sig: int) -> None: ...


@runtime_checkable
class ContainerHandle(Protocol):
    """A created or running container."""

    container_id: str
    pid: int                # host pid of the container's first process

    async def start(self) -> None:
        """Release the process created by ``RuntimeExecutor.create``."""
        ...

    async def attach(self, *, stdin: bool, stdout: bool, stderr: bool,
                     logs_replay: bool = False) -> Stream: ...

    async def exec(self, exec_id: str, *, args: list[str], env: list[str], cwd: str = "/", uid: int = 0,
                   gid: int = 0, additional_gids: list[int] | None = None, tty: bool = False,
                   open_stdin: bool = False, console_size: tuple[int, int] | None = None,
                   capabilities: list[str] | None = None, privileged: bool = False,
                   no_new_privileges: bool = False) -> ExecProcess:
        """Raises ``Conflict`` when the container is not running; start failures carry
        dockerd's words and ``exit_code`` 126/127 (``client.start_error``)."""
        ...

    async def kill(self, sig: int) -> None:
        """Signal the container's first process; a no-op once it has exited.  As for any
        PID 1, a signal it has no handler for does nothing, except SIGKILL."""
        ...

    async def resize(self, height: int, width: int) -> None: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def update(self, resources: dict[str, Any]) -> None: ...

    async def stats(self) -> dict[str, Any]: ...

    async def pids(self) -> list[int]: ...

    async def wait(self) -> ExitStatus: ...

    @property
    def exited(self) -> bool: ...

    async def close(self) -> None:
        """Drop the connection; the container keeps running."""
        ...


@runtime_checkable
class RuntimeExecutor(Protocol):
    """Creates containers from bundles and finds them again after a daemon restart."""

    async def create(self, container_id: str, bundle: Path, *, log_path: Path | None, tty: bool, open_stdin: bool,
                     stdin_once: bool, console_size: tuple[int, int] | None = None,
                     log_max_size: int | None = None, log_max_files: int = 1,
                     log_attrs: dict[str, str] | None = None) -> ContainerHandle:
        """Returns once the process is created and waits for ``start``.  A command that
        cannot run raises ``client.start_error``'s types (exit_code 127/126/128)."""
        ...

    async def connect(self, container_id: str, bundle: Path) -> ContainerHandle | None:
        """The live container of ``bundle``, or None when its run is over."""
        ...

    def read_exit_status(self, bundle: Path) -> ExitStatus | None:
        """What a finished run recorded; None when it recorded nothing."""
        ...

    async def cleanup(self, bundle: Path, cgroups_path: str | None = None) -> None:
        """Remove what a dead run left behind; leaves a live one alone.  Idempotent.
        ``cgroups_path`` (the spec's ``linux.cgroupsPath``) also finds the cgroups of a run
        killed before it recorded them."""
        ...
