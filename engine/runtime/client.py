"""The asyncio side of the shim: what the engine uses to run containers.

``ShimRuntime.create`` starts a shim (forked by the preloaded shim parent, or a
fresh interpreter; never a fork of the server: see ``spawner``) and returns a
``ShimHandle`` once the container is created and waiting for ``start``.
Attach sessions opened between create and start see every byte of output.
``connect`` finds the shim of a running container after a server restart;
``read_exit_status`` reads what a finished shim left.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from engine.errors import Unavailable
from engine.runtime.api import ExitStatus
from engine.runtime.handle import ShimHandle
from engine.runtime.shimconn import AttachSession, ExecSession, ShimConn, open_shim_socket, read_exit_status
from engine.runtime.shimstate import SOCKET_NAME, STATE_FILE, proc_start_time, spec_view
from engine.runtime.spawner import ShimSpawner
from engine.runtime.starterrors import InvalidStartConfig, NotRunning, StartFailed, start_error

__all__ = ["AttachSession", "ExecSession", "ExitStatus", "InvalidStartConfig", "NotRunning", "ShimHandle",
           "ShimRuntime", "StartFailed", "cleanup_bundle", "read_exit_status", "start_error"]

log = logging.getLogger(__name__)


class ShimRuntime:
    """Starts and finds shims.  One per engine."""

    def __init__(self, python: str, exec_root: Path) -> None:
        self.python = python
        self.exec_root = Path(exec_root)
        self._spawner = ShimSpawner(python, self.exec_root)

    async def create(
        self,
        container_id: str,
        bundle: Path,
        *,
        log_path: Path | None,
        tty: bool,
        open_stdin: bool,
        stdin_once: bool,
        console_size: tuple[int, int] | None = None,
        log_max_size: int | None = None,
        log_max_files: int = 1,
        log_attrs: dict[str, str] | None = None,
    ) -> ShimHandle:
        """Start the container's shim; returns when the init waits for ``start``.

        ``log_max_size``/``log_max_files`` are the json-file driver's max-size
        (bytes) and max-file options."""
        bundle = Path(bundle)
        opts = {
            "id": container_id,
            "bundle": str(bundle),
            "log_path": str(log_path) if log_path else "",
            "tty": tty,
            "open_stdin": open_stdin,
            "stdin_once": stdin_once,
            "console_size": list(console_size) if console_size else None,
            "log_max_size": log_max_size,
            "log_max_files": log_max_files,
            "log_attrs": log_attrs,
            "seccomp_cache": str(self.exec_root / "seccomp"),
        }
        report = await asyncio.to_thread(self._read_spec_and_spawn, bundle, opts)
        if not report.get("ok"):
            raise start_error(str(report.get("message", "unknown error")), int(report.get("exit_code") or 128))
        try:
            handle = await self._connect(container_id, bundle)
        except Exception:
            # We cannot talk to it: do not leave a created container behind.
            _kill_pid(int(report["pid"]))
            raise
        if handle is None:
            _kill_pid(int(report["pid"]))
            raise StartFailed("container's shim went away right after creating it")
        return handle

    def _read_spec_and_spawn(self, bundle: Path, opts: dict[str, Any]) -> dict[str, Any]:
        # The shim gets the part of the spec it acts on with its options (see shim.spec_view).
        try:
            with open(bundle / "config.json", "rb") as f:
                opts["spec_view"] = spec_view(json.load(f))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            return {"ok": False, "message": f"reading the bundle's config.json: {e}", "exit_code": 128}
        return self._spawner.spawn(bundle, opts)

    def warm(self) -> None:
        """Start the shim parent ahead of the first container (blocking: call it in a thread)."""
        self._spawner.warm()

    def close(self) -> None:
        """Stop the shim parent; running shims and their containers are not affected."""
        self._spawner.close()

    async def _connect(self, container_id: str, bundle: Path) -> ShimHandle | None:
        try:
            reader, writer = await open_shim_socket(bundle)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            return None
        conn = ShimConn(reader, writer)
        try:
            hello = await conn.request_inline("hello")
        except Unavailable:
            conn.close()
            return None
        except BaseException:
            conn.close()
            raise
        return ShimHandle(container_id, bundle, conn, hello)

    async def connect(self, container_id: str, bundle: Path) -> ShimHandle | None:
        """The live shim of a container (after a server restart), or None."""
        return await self._connect(container_id, Path(bundle))

    def read_exit_status(self, bundle: Path) -> ExitStatus | None:
        return read_exit_status(Path(bundle))

    async def cleanup(self, bundle: Path, cgroups_path: str | None = None) -> None:
        """Remove what a *dead* shim left behind (its container's processes, cgroups,
        socket).  Call it when ``connect`` returned None.  A live shim is left alone.
        ``cgroups_path`` (the spec's ``linux.cgroupsPath``) also finds the cgroups of a shim
        killed before it recorded them."""
        await asyncio.to_thread(cleanup_bundle, Path(bundle), cgroups_path)


def cleanup_bundle(bundle: Path, cgroups_path: str | None = None) -> None:
    from engine.runtime import cgroups as cg
    try:
        state = json.loads((bundle / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        state = None
    if state and _is_shim(int(state.get("shim_pid") or 0), bundle, int(state.get("shim_start") or 0)):
        return
    if state is None:
        try:
            shim_pid = int((bundle / "shim.pid").read_text())
        except (OSError, ValueError):
            shim_pid = 0
        if _is_shim(shim_pid, bundle):  # a shim forked by the shim parent names its bundle too
            return
    cgroup = (state or {}).get("cgroup")
    if state:
        init_pid = int(state.get("init_pid") or 0)
        if init_pid and cgroup and _in_cgroup(init_pid, cgroup.get("path", "")):
            _kill_and_wait(init_pid)
    managers = []
    if cgroup:
        managers.append(cg.from_state(cgroup))
    elif cgroups_path:
        try:
            found = cg.manager_for(cgroups_path)
        except OSError:
            found = None
        if found is not None:
            managers.append(found)
    for m in managers:
        try:
            m.kill_all()        # nothing of a dead shim's container may keep running
        except OSError:
            pass
        try:
            m.destroy()
        except OSError as e:
            log.warning("removing cgroups of %s: %s", bundle, e)
    try:
        (bundle / SOCKET_NAME).unlink()
    except FileNotFoundError:
        pass


def _is_shim(pid: int, bundle: Path, start_time: int = 0) -> bool:
    """Is ``pid`` still this bundle's shim?  By its start time when the shim recorded
    it (a forked shim's command line is its parent's, unless it could retitle itself),
    else by the command line of a freshly started shim."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    if start_time:
        return proc_start_time(pid) == start_time
    return b"engine.runtime.shim" in cmdline and str(bundle).encode() in cmdline


def _in_cgroup(pid: int, path: str) -> bool:
    """Is ``pid`` still our container's process (and not a recycled pid)?"""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    return bool(path) and any(line.split(":", 2)[-1].strip() == path for line in text.splitlines())


def _kill_and_wait(pid: int) -> None:
    import select
    import signal
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        select.select([fd], [], [], 10)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
