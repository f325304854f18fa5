"""The process builder container init and exec share: session and stdio, the
terminal, limits, identity, capabilities, seccomp, and the execve.

Every kernel call goes through ``Syscalls`` (``engine.runtime.syscalls``).
Failures raise ``InitError`` with runc's words; ``run_and_exit`` turns them into
the report the shim reads and the exit code.  Nothing here imports lazily: after
pivot_root the host's Python library is out of reach.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import socket

from engine.oci.caps import to_mask
from engine.runtime import fs
from engine.runtime import syscalls as S

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing/dataclasses cost ~10 ms at every container start
    from typing import Any, Protocol

    class Channel(Protocol):
        def send(self, msg: dict[str, Any], fd: int | None = None) -> None: ...
        def recv(self) -> dict[str, Any] | None: ...


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


class InitError(Exception):
    def __init__(self, message: str, exit_code: int = 128) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ExecFailed(Exception):
    """execve itself failed after "go" (e.g. exec format error)."""

    def __init__(self, path: str, err: OSError) -> None:
        super().__init__(path)
        self.path = path
        self.err = err


class Abort(Exception):
    """The shim went away or cancelled before start: exit quietly."""


class SocketChannel:
    """The init's end of the sync socketpair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, msg: dict[str, Any], fd: int | None = None) -> None:
        data = json.dumps(msg).encode()
        if fd is None:
            self.sock.send(data)
        else:
            socket.send_fds(self.sock, [data], [fd])

    def recv(self) -> dict[str, Any] | None:
        data = self.sock.recv(65536)
        return json.loads(data) if data else None


def step(what: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except OSError as e:
        raise InitError(f"{what}: {err_text(e)}") from None


def err_text(e: OSError) -> str:
    return os.strerror(e.errno).lower() if e.errno else str(e)


def session_and_stdio(sys: S.Syscalls, stdio: tuple[int, int, int] | None) -> None:
    """A new session (so a tty can become the controlling terminal), then fds 0-2."""
    step("setsid", sys.setsid)
    if stdio is not None:
        for target, fd in enumerate(stdio):
            step("setting up stdio", sys.dup2, fd, target)


def open_terminal(channel: Channel, sys: S.Syscalls, console: bool, size: Any = None) -> None:
    """A pty from the container's devpts: the master goes to the shim, the slave becomes
    our controlling terminal and stdio (and /dev/console, for the container's init).  The
    process's consoleSize is set here, before the process runs (a resize by the shim after
    "pty" could come after the process read its size: `stty size` said it had none)."""
    master, slave_path = step("opening a pty", sys.open_pty, "/dev/pts/ptmx")
    slave = step("opening the pty slave", sys.open, slave_path, os.O_RDWR | os.O_NOCTTY)
    if isinstance(size, dict) and size.get("height") and size.get("width"):
        step("setting the console size", sys.set_window_size, slave, int(size["height"]), int(size["width"]))
    if console and sys.exists("/dev/console"):
        step("mounting /dev/console", sys.mount, slave_path, "/dev/console", None, S.MS_BIND, None)
    channel.send({"type": "pty"}, master)
    sys.close(master)
    step("setting the controlling terminal", sys.set_controlling_tty, slave)
    for target in range(3):
        sys.dup2(slave, target)
    if slave > 2:
        sys.close(slave)


def set_limits(sys: S.Syscalls, process: dict[str, Any], strict: bool) -> None:
    """rlimits (an unknown type is an error for the init, skipped for an exec, like runc)
    and oom_score_adj."""
    for rl in process.get("rlimits") or []:
        num = RLIMITS.get(str(rl.get("type", "")).upper())
        if num is None:
            if strict:
                raise InitError(f"unknown rlimit type {rl.get('type')!r}")
            continue
        step(f"setting rlimit {rl['type']}", sys.setrlimit, num, int(rl.get("soft", 0)), int(rl.get("hard", 0)))
    if "oomScoreAdj" in process:
        step("setting oom_score_adj", sys.write_file, "/proc/self/oom_score_adj", str(int(process["oomScoreAdj"])))


def become_process(sys: S.Syscalls, channel: Channel, process: dict[str, Any], seccomp: bytes, *,
                    ready: dict[str, Any], wait_for_go: bool, empty_args_exit: int) -> None:
    """The tail the container's init and an exec share: identity and seccomp, cwd,
    no_new_privs, the parent-death signal, the program looked up in PATH, "ready",
    (for the init) "go", then execve.  Returns only with a fake execve."""
    # Seccomp like runc: without no_new_privs the filter goes in while we still hold
    # CAP_SYS_ADMIN (the calls left - setgroups, setresuid, capset, prctl, chdir, the sync
    # with the shim, execve - must then be allowed); with it, right before execve, so a
    # strict profile only has to allow execve.
    cwd = process.get("cwd") or "/"
    late_seccomp = bool(process.get("noNewPrivileges"))
    if seccomp and not late_seccomp:
        step("installing the seccomp filter", sys.seccomp_filter, seccomp)
    user = process.get("user") or {}
    switch_user(sys, int(user.get("uid", 0)), int(user.get("gid", 0)),
                 [int(g) for g in user.get("additionalGids") or []], process.get("capabilities") or {})
    try:
        sys.chdir(cwd)
    except OSError as e:
        raise InitError(f'chdir to cwd ("{cwd}") set in config.json failed: {err_text(e)}') from None
    if late_seccomp:
        step("setting no_new_privs", sys.prctl, S.PR_SET_NO_NEW_PRIVS, 1)
    # A container without its shim has no stdio and no one to record its exit:
    # die with the shim.  Set after the uid change, which clears it.
    step("prctl(PR_SET_PDEATHSIG)", sys.prctl, S.PR_SET_PDEATHSIG, int(signal.SIGKILL))
    # Resolve the program in the container's PATH before telling the shim we are ready.
    args = list(process.get("args") or [])
    if not args:
        raise InitError("args must not be empty", empty_args_exit)
    env = list(process.get("env") or [])
    path_env = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    try:
        exe = fs.look_path(args[0], path_env)
    except fs.ExecLookupError as e:
        raise InitError(e.message, e.exit_code) from None
    channel.send(ready)
    if wait_for_go:
        msg = channel.recv()
        if not msg or msg.get("type") != "go":
            raise Abort()
    exec_now(sys, exe, args, env, seccomp if late_seccomp else b"")


def switch_user(sys: S.Syscalls, uid: int, gid: int, groups: list[int], caps: dict[str, Any]) -> None:
    # Capabilities this host does not give us (e.g. a sandbox without SYS_RESOURCE)
    # cannot be granted: leave them out instead of failing, so --privileged works.
    available = sys.cap_permitted()
    bounding = to_mask(caps.get("bounding")) & available
    # Keep permitted capabilities across setresuid so capset can grant the spec's set.
    step("prctl(PR_SET_KEEPCAPS)", sys.prctl, S.PR_SET_KEEPCAPS, 1)
    for cap in range(sys.cap_last_cap() + 1):
        if not bounding & (1 << cap):
            step("dropping bounding capabilities", sys.capbset_drop, cap)
    step("setgroups", sys.setgroups, groups)
    step(f"setgid {gid}", sys.setresgid, gid)
    step(f"setuid {uid}", sys.setresuid, uid)
    step("prctl(PR_SET_KEEPCAPS)", sys.prctl, S.PR_SET_KEEPCAPS, 0)
    step("capset", sys.capset, to_mask(caps.get("effective")) & available,
          to_mask(caps.get("permitted")) & available, to_mask(caps.get("inheritable")) & available)
    ambient = to_mask(caps.get("ambient")) & available
    for cap in range(sys.cap_last_cap() + 1):
        if ambient & (1 << cap):
            step("raising ambient capabilities", sys.ambient_raise, cap)


def exec_now(sys: S.Syscalls, exe: str, args: list[str], env: list[str], seccomp: bytes = b"") -> None:
    os.umask(0o022)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)  # ignored signals would survive execve
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    if seccomp:
        # no_new_privs is set: the filter can go in last, only execve left to pass it
        try:
            sys.seccomp_filter(seccomp)
        except OSError as e:
            raise ExecFailed(exe, e) from None
    try:
        sys.execve(exe, args, env)
    except OSError as e:
        raise ExecFailed(exe, e) from None
    except ValueError:  # a NUL byte in an argument: execve's EINVAL, as runc's exec reports it
        raise ExecFailed(exe, OSError(errno.EINVAL, os.strerror(errno.EINVAL))) from None


def check_env(env: list[str]) -> None:
    """runc's checks of the process environment (its words), before anything is executed."""
    for pair in env:
        name, _, value = pair.partition("=")
        for part, what in ((name, "name"), (value, "value")):
            if "\x00" in part:
                raise InitError(f"error during container init: environment variable {what} "
                                f"can't contain null(\\x00): {fs.go_quote(pair)}")


def run_and_exit(fn: Any, channel: Channel) -> None:
    """Run ``fn`` (the init or an exec, up to its execve), report a failure on ``channel``,
    and exit: never returns into the shim's code."""
    code = 1
    try:
        fn()
    except Abort:
        code = 0
    except InitError as e:
        code = e.exit_code
        report(channel, e.message, e.exit_code)
    except ExecFailed as e:
        # After "go" nobody waits for our report: like runc, say it on the
        # container's stderr (it lands in the logs) and exit 1.
        try:
            os.write(2, f"exec {e.path}: {err_text(e.err)}\n".encode())
        except OSError:
            pass
        code = 1
    except BaseException as e:  # noqa: BLE001 - never return into the shim's code
        report(channel, f"container init failed: {e!r}", 128)
        code = 128
    os._exit(code)


def report(channel: Channel, message: str, exit_code: int) -> None:
    try:
        channel.send({"type": "error", "message": message, "exit_code": exit_code})
    except OSError:
        pass
