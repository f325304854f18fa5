"""What the shim holds, as plain objects: its files, the spec view, clients, stdio, execs.

Stdlib only, no typing at run time: every shim imports this module.
"""
from __future__ import annotations

import os
import socket
import time

from engine.runtime import protocol as P
from engine.timeutil import format_ns

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every shim start
    from typing import Any

SOCKET_NAME = "shim.sock"
EXIT_FILE = "exit.json"
STATE_FILE = "state.json"


def spec_view(spec: dict[str, Any]) -> dict[str, Any]:
    """The part of an OCI spec the shim itself acts on (the init reads the rest)."""
    linux = spec.get("linux") or {}
    return {
        "namespaces": {ns["type"]: ns.get("path") for ns in linux.get("namespaces") or []},
        "terminal": bool((spec.get("process") or {}).get("terminal")),
        "cgroups_path": linux.get("cgroupsPath") or "",
        "resources": linux.get("resources"),
    }


def proc_start_time(pid: int) -> int:
    """A process's start time (clock ticks since boot; 0 if it is gone): with the pid,
    it names one process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


class Client:
    __slots__ = ("attached", "exec", "rbuf", "sock", "stdin", "stdin_closed", "waits", "want", "wbuf")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.attached = False
        self.want: set[int] = set()
        self.stdin = False
        self.stdin_closed = False
        self.waits: list[Any] = []
        self.exec: Exec | None = None       # the exec this connection started (it owns its stdio)


class Stdio:
    """One process's stdio as the shim holds it: output fds, stdin, pty master."""

    __slots__ = ("exec", "master", "outputs", "paused", "stdin_buf", "stdin_close_pending", "stdin_w")

    def __init__(self, exec_: Exec | None = None) -> None:
        self.outputs: dict[int, int] = {}   # fd -> stream kind (1/2)
        self.master = -1                    # pty master (tty)
        self.stdin_w = -1                   # process stdin (pipe write end, or the master)
        self.stdin_buf = bytearray()
        self.stdin_close_pending = False
        self.paused = False
        self.exec = exec_                   # None: the container's own stdio


class Exec:
    """A process started in the running container (docker exec)."""

    __slots__ = ("client", "exec_id", "exit", "io", "pid", "reaped_at")

    def __init__(self, exec_id: str, client: Client) -> None:
        self.exec_id = exec_id
        self.pid = 0
        self.io = Stdio(self)
        self.client: Client | None = client
        self.exit: dict[str, Any] | None = None
        self.reaped_at = 0.0


def exit_status(status: int, error: str = "") -> dict[str, Any]:
    code = os.waitstatus_to_exitcode(status)
    sig = -code if code < 0 else None
    return {
        "exit_code": 128 + sig if sig else code,
        "signal": sig,
        "finished_at": format_ns(time.time_ns()),
        "oom_killed": False,
        "error": error,
    }


def make_stdio(io: Stdio, tty: bool, open_stdin: bool) -> tuple[tuple[int, int, int] | None, list[int]]:
    """Pipes for a process without a tty -> (child's 0/1/2, fds to close after fork)."""
    if tty:
        return None, []
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    if open_stdin:
        in_r, in_w = os.pipe()
        io.stdin_w = in_w
    else:
        in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    io.outputs = {out_r: P.STDOUT, err_r: P.STDERR}
    return (in_r, out_w, err_w), [in_r, out_w, err_w]


def close_parent_ends(io: Stdio) -> None:
    for fd in list(io.outputs) + ([io.stdin_w] if io.stdin_w >= 0 else []):
        os.close(fd)
