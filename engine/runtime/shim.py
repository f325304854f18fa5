"""The per-container shim: ``python -m engine.runtime.shim '<json options>'``.

One small process owns one container.  It outlives the API server (own
session, reparented to init), so ``kill -9`` of the server leaves containers
running; a restarted server reconnects through the socket below.

Lifecycle
---------
1. The server starts a fresh interpreter (never a fork of itself) with stdout
   a pipe.  The shim forks once and the first process exits at once, so the
   server's child is reaped immediately and the shim is nobody's zombie.
2. The shim creates the cgroups, the stdio pipes, a sync socketpair, unshares
   a new pid namespace and forks the container init (engine.runtime.init),
   which is PID 1 there.  The init sets up the container and reports "ready"
   (or an error) and blocks waiting for "go".
3. The shim binds ``<bundle>/shim.sock``, writes one JSON line on stdout
   (``{"ok": true, "pid": <init pid>}`` or ``{"ok": false, "message": ...,
   "exit_code": ...}``) and closes stdout.  On error it has already killed the
   init and removed the cgroups, and exits.
4. It serves clients until the container has exited and every output byte has
   been delivered: logs (json-file), attach streams, stdin, signals, resize.
5. At exit it writes ``<bundle>/exit.json`` atomically
   ``{"exit_code", "signal", "finished_at", "oom_killed", "error"}`` (128+N for
   a signal), broadcasts the exit event, removes the cgroups and the socket,
   and exits.

Socket protocol (frames: see engine.runtime.protocol)
-----------------------------------------------------
Requests are CTRL frames ``{"op": ..., "id": n, ...}``; each gets one reply
``{"id": n, "ok": true, ...}`` or ``{"id": n, "ok": false, "error": "..."}``.

    hello                          -> {pid, state: created|running|exited, tty, exit: status|null}
    start                          -> release the init (execve)
    kill   {signal}                -> signal the init (no-op once it exited)
    resize {height, width}         -> TIOCSWINSZ on the pty
    attach {stdin, stdout, stderr, replay}
                                   -> this connection now receives STDOUT/STDERR
                                      frames (replay: recent output first) and
                                      may send STDIN frames
    close_stdin                    -> half-close: the container's stdin closes if
                                      StdinOnce (or it was the only writer)
    wait                           -> reply deferred until the container exited
    pause / resume                 -> freeze / thaw the container's cgroup
    update {resources}             -> apply OCI linux.resources (memory/pids/cpu...)
    stats                          -> {stats: cgroup counters in Docker's field names}
    pids                           -> {pids: host pids in the container's cgroup}
    exec   {exec_id, process, open_stdin, console_size}
                                   -> start a process in the running container
                                      (OCI "process" object); reply {pid}.  The
                                      connection then carries that process's
                                      STDOUT/STDERR/STDIN, close_stdin, resize
                                      and kill, and gets its own exit event.

Events (CTRL, no id), sent to every connection:
    {"event": "exit", exit_code, signal, finished_at, oom_killed, error}
It is sent after all output frames, so for an attach connection it also means
"end of output".  The shim closes connections once their buffers are flushed.
"""
from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import socket
import sys
import time

from engine.runtime import cgroups as cg
from engine.runtime import protocol as P

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every shim start
    from typing import Any


SOCKET_NAME = "shim.sock"
EXIT_FILE = "exit.json"
STATE_FILE = "state.json"
READ_CHUNK = 65536
HIGH_WATER = 4 * 1024 * 1024     # pause container output while a client lags this much
REPLAY_LIMIT = 64 * 1024         # recent output kept for attach(replay=True)
DRAIN_TIMEOUT = 10.0             # seconds to flush slow clients after exit
PRELOAD_DELAY = 0.3              # seconds after the start before the exec code is imported
OUTPUT_GRACE = 2.0               # seconds to wait for pipe EOF after the init was reaped


def format_time_ns(ns: int) -> str:
    """RFC 3339 with nanoseconds, trailing zeros trimmed (Go's RFC3339Nano)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def _load_log_writer(path: str, max_size: int | None = None, max_files: int = 1,
                     attrs: dict[str, str] | None = None) -> Any:
    if not path:
        return None
    override = os.environ.get("PYDOCKERD_SHIM_LOG_WRITER", "")
    if override:
        mod_name, _, cls_name = override.partition(":")
        mod = __import__(mod_name, fromlist=[cls_name])
        return getattr(mod, cls_name)(path)
    from engine.logs.jsonfile import JsonFileWriter
    return JsonFileWriter(path, max_size=max_size, max_files=max_files, attrs=attrs)


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


def _exit_status(status: int, error: str = "") -> dict[str, Any]:
    code = os.waitstatus_to_exitcode(status)
    sig = -code if code < 0 else None
    return {
        "exit_code": 128 + sig if sig else code,
        "signal": sig,
        "finished_at": format_time_ns(time.time_ns()),
        "oom_killed": False,
        "error": error,
    }


class Shim:
    def __init__(self, opts: dict[str, Any]) -> None:
        self.opts = opts
        self.bundle = opts["bundle"]
        self.tty = bool(opts.get("tty"))
        self.open_stdin = bool(opts.get("open_stdin"))
        self.stdin_once = bool(opts.get("stdin_once"))
        self.console_size = opts.get("console_size")
        self.sel = selectors.DefaultSelector()
        self.clients: dict[int, Client] = {}
        self.listener: socket.socket | None = None
        self.init_pid = 0
        self.state = "created"
        self.exit: dict[str, Any] | None = None     # set once the init was reaped
        self.exit_sent = False
        self.reaped_at = 0.0
        self.io = Stdio()                           # the container's stdio
        self.execs: dict[int, Exec] = {}            # by host pid
        self.sync: socket.socket | None = None
        self.cgroup: cg.CgroupV1 | cg.CgroupV2 | None = None
        self.frozen = False  # the freezer state we set (pause/resume)
        self.log: Any = None
        self.replay: list[tuple[int, bytes]] = []
        self.replay_size = 0
        self.wake_r = -1
        self.error = ""
        self.seccomp = b""                          # compiled filter, for the init and every exec
        self.preload_at: float | None = None        # when to import the exec code (idle after start)

    # ------------------------------------------------------------------ create
    def create(self) -> dict[str, Any]:
        """Steps 2-3: returns the report for the server."""
        try:
            os.unlink(os.path.join(self.bundle, EXIT_FILE))  # a previous run's status
        except FileNotFoundError:
            pass
        with open(os.path.join(self.bundle, "config.json"), "rb") as f:
            spec = json.load(f)
        linux = spec.get("linux") or {}
        namespaces = {ns["type"]: ns.get("path") for ns in linux.get("namespaces") or []}
        self.tty = bool((spec.get("process") or {}).get("terminal")) or self.tty

        from engine.runtime import syscalls as S  # ctypes: only now, and only the shim needs it
        sysc = S.LinuxSyscalls()
        sysc.prctl(S.PR_SET_CHILD_SUBREAPER, 1)

        if linux.get("cgroupsPath"):
            self.cgroup = cg.manager_for(linux["cgroupsPath"])
            if self.cgroup is not None:
                try:
                    self.cgroup.create()
                    self.cgroup.apply(linux.get("resources"))
                except cg.CgroupValueError as e:
                    self._destroy_cgroup()
                    return {
                        "ok": False, "exit_code": 128,
                        "message": "error during container init: error setting cgroup config for procHooks "
                                   f"process: {e}",
                    }
                except OSError as e:
                    self._destroy_cgroup()
                    return {
                        "ok": False,
                        "message": f"failed to set up cgroup {linux['cgroupsPath']}: {e.strerror or e}",
                        "exit_code": 128,
                    }

        if linux.get("seccomp"):
            try:
                from engine.runtime import seccomp as sc
                arch = os.uname().machine
                self.seccomp = sc.compile_filter(linux["seccomp"], sc.table_for(arch), arch)
            except Exception as e:  # noqa: BLE001
                self._destroy_cgroup()
                return {"ok": False, "message": f"error loading seccomp filter: {e}", "exit_code": 128}

        stdio, child_fds = self._make_stdio(self.io, self.tty, self.open_stdin)
        parent_sync, child_sync = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sync = parent_sync

        if "pid" in namespaces:
            if namespaces["pid"]:
                sysc.setns(namespaces["pid"], S.CLONE_NEWPID)
            else:
                sysc.unshare(S.CLONE_NEWPID)

        pid = os.fork()
        if pid == 0:  # ----------------------------------------------- the init
            try:
                signal.set_wakeup_fd(-1)
                parent_sync.close()
                self._close_parent_ends(self.io)
                from engine.runtime.init import InitConfig, SocketChannel, child_main
                cfg = InitConfig(
                    spec=spec,
                    channel=SocketChannel(child_sync),
                    stdio=stdio,
                    cgroup_procs=self.cgroup.join_files() if self.cgroup else [],
                    cgroup_binds=self.cgroup.bind_sources() if self.cgroup else [],
                    cgroup_version=self.cgroup.version if self.cgroup else 1,
                    seccomp=self.seccomp,
                )
                child_main(cfg)
            finally:
                os._exit(128)
        self.init_pid = pid
        child_sync.close()
        for fd in child_fds:
            os.close(fd)

        report = self._await_ready(parent_sync, self.io, self.open_stdin, self.console_size)
        if not report["ok"]:
            self._abort_create()
            return report
        report["pid"] = pid
        self._listen()
        with open(os.path.join(self.bundle, "init.pid"), "w") as f:
            f.write(str(pid))
        # What a later cleanup needs if this shim is ever killed (ShimRuntime.cleanup).
        write_atomic(os.path.join(self.bundle, STATE_FILE), json.dumps({
            "shim_pid": os.getpid(), "init_pid": pid,
            "cgroup": cg.to_state(self.cgroup) if self.cgroup else None,
        }).encode())
        return report

    @staticmethod
    def _make_stdio(io: Stdio, tty: bool, open_stdin: bool) -> tuple[tuple[int, int, int] | None, list[int]]:
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

    @staticmethod
    def _close_parent_ends(io: Stdio) -> None:
        for fd in list(io.outputs) + ([io.stdin_w] if io.stdin_w >= 0 else []):
            os.close(fd)

    def _await_ready(self, sync: socket.socket, io: Stdio, open_stdin: bool,
                     console_size: Any) -> dict[str, Any]:
        """Read the init's messages: a pty first (tty), then "ready" or "error"."""
        report: dict[str, Any] = {}
        while True:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(sync, 65536, 1)
            except OSError as e:
                msg, fds = b"", []
                self.error = str(e)
            if not msg:
                return {"ok": False, "message": "container init exited before it was ready" +
                        (f": {self.error}" if self.error else ""), "exit_code": 128, **report}
            m = json.loads(msg)
            typ = m.get("type")
            if typ == "pty" and fds:
                io.master = fds[0]
                os.set_inheritable(io.master, False)  # never leak it into later execs
                os.set_blocking(io.master, False)
                io.outputs = {io.master: P.STDOUT}
                if open_stdin:
                    io.stdin_w = io.master
                if console_size:
                    self._resize(io, *console_size)
                continue
            for fd in fds:
                os.close(fd)
            if typ == "pid":
                report["pid"] = int(m["pid"])
                continue
            if typ == "ready":
                return {"ok": True, **report}
            return {"ok": False, "message": m.get("message", "container init failed"),
                    "exit_code": int(m.get("exit_code") or 128), **report}

    def _abort_create(self) -> None:
        try:
            os.kill(self.init_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.init_pid, 0)
        except ChildProcessError:
            pass
        self._destroy_cgroup()

    def _destroy_cgroup(self) -> None:
        if self.cgroup is None:
            return
        try:
            self.cgroup.destroy()
        except OSError as e:
            print(f"shim: removing cgroup: {e}", file=sys.stderr)

    def _listen(self) -> None:
        try:
            os.unlink(SOCKET_NAME)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # cwd is the bundle: a relative name keeps long bundle paths under sun_path's 108 bytes
        s.bind(SOCKET_NAME)
        os.chmod(SOCKET_NAME, 0o600)
        s.listen(64)
        s.setblocking(False)
        self.listener = s

    # ------------------------------------------------------------------- serve
    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self.wake_r = wake_r
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.sel.register(wake_r, selectors.EVENT_READ, "wake")
        assert self.listener is not None
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self._watch(self.io)
        self._reap()  # the init may already be gone

        drain_deadline = 0.0
        while True:
            for key, events in self.sel.select(self._timeout(drain_deadline)):
                tag = key.data
                if tag == "wake":
                    try:
                        while os.read(wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    self._reap()
                elif tag == "listen":
                    self._accept()
                elif isinstance(tag, Stdio):
                    if events & selectors.EVENT_READ and key.fd in tag.outputs:
                        self._read_output(tag, key.fd)
                    if events & selectors.EVENT_WRITE and key.fd == tag.stdin_w:
                        self._write_stdin(tag)
                elif isinstance(tag, Client):
                    if events & selectors.EVENT_READ:
                        self._client_read(tag)
                    if events & selectors.EVENT_WRITE and tag.sock.fileno() >= 0:
                        self._client_write(tag)
            now = time.monotonic()
            if self.preload_at is not None and now >= self.preload_at:
                self._preload_exec_code()
            for ex in list(self.execs.values()):
                if ex.exit is not None and (not ex.io.outputs or now >= ex.reaped_at + OUTPUT_GRACE):
                    self._finish_exec(ex)
            if self.exit is not None and not self.exit_sent and not self.execs:
                if not self.io.outputs or now >= self.reaped_at + OUTPUT_GRACE:
                    self._finish()
                    drain_deadline = time.monotonic() + DRAIN_TIMEOUT
            if self.exit_sent:
                pending = [c for c in self.clients.values() if c.wbuf]
                if not pending or time.monotonic() >= drain_deadline:
                    break
        for c in list(self.clients.values()):
            self._drop(c)

    def _timeout(self, drain_deadline: float) -> float | None:
        now = time.monotonic()
        deadlines = [ex.reaped_at + OUTPUT_GRACE for ex in self.execs.values() if ex.exit is not None]
        if self.exit is not None and not self.exit_sent:
            deadlines.append(self.reaped_at + OUTPUT_GRACE)
        if self.exit_sent:
            deadlines.append(drain_deadline)
        if self.preload_at is not None:
            deadlines.append(self.preload_at)
        return max(0.0, min(deadlines) - now) if deadlines else None

    # -- child processes
    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid and self.exit is None:
                self.exit = _exit_status(status, self.error)
                self.state = "exited"
                self.reaped_at = time.monotonic()
                if self.cgroup is not None:
                    # without a pid namespace the init's children outlive it: the
                    # container is over, end them (and their hold on our pipes)
                    try:
                        self.cgroup.kill_all()
                    except OSError as e:
                        print(f"shim: killing leftover processes: {e}", file=sys.stderr)
                if self.sync is not None:
                    self.sync.close()
                    self.sync = None
            elif pid in self.execs and self.execs[pid].exit is None:
                ex = self.execs[pid]
                ex.exit = _exit_status(status)
                ex.reaped_at = time.monotonic()
            # anything else: a failed exec, or an orphan we adopted

    # -- process stdio
    def _watch(self, io: Stdio) -> None:
        for fd in io.outputs:
            os.set_blocking(fd, False)
            self._update_fd(io, fd)
        if io.stdin_w >= 0 and io.stdin_w != io.master:
            os.set_blocking(io.stdin_w, False)

    def _update_fd(self, io: Stdio, fd: int) -> None:
        """(Re)register a process fd with the events it needs now."""
        if fd < 0:
            return
        events = 0
        if fd in io.outputs and not io.paused:
            events |= selectors.EVENT_READ
        if fd == io.stdin_w and (io.stdin_buf or io.stdin_close_pending):
            events |= selectors.EVENT_WRITE
        try:
            key = self.sel.get_key(fd)
        except (KeyError, ValueError):
            key = None
        if key is None:
            if events:
                self.sel.register(fd, events, io)
        elif not events:
            self.sel.unregister(fd)
        elif key.events != events:
            self.sel.modify(fd, events, io)

    def _unwatch_close(self, fd: int) -> None:
        try:
            self.sel.unregister(fd)
        except (KeyError, ValueError):
            pass
        os.close(fd)

    def _read_output(self, io: Stdio, fd: int) -> None:
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's last slave closed
                print(f"shim: reading output: {e}", file=sys.stderr)
            data = b""
        if not data:
            self._close_output(io, fd)
            return
        kind = io.outputs[fd]
        out = P.frame(kind, data)
        if io.exec is not None:
            c = io.exec.client
            if c is not None:
                self._send(c, out)
            self._check_pressure()
            return
        if self.log is not None:
            try:
                self.log.write("stdout" if kind == P.STDOUT else "stderr", data)
            except Exception as e:  # noqa: BLE001 - a full disk must not kill the container's stdio
                print(f"shim: writing log: {e}", file=sys.stderr)
        self.replay.append((kind, data))
        self.replay_size += len(data)
        while self.replay_size > REPLAY_LIMIT and len(self.replay) > 1:
            self.replay_size -= len(self.replay.pop(0)[1])
        for c in self.clients.values():
            if c.attached and kind in c.want:
                self._send(c, out)
        self._check_pressure()

    def _close_output(self, io: Stdio, fd: int) -> None:
        io.outputs.pop(fd, None)
        if fd == io.master:
            self._update_fd(io, fd)
            return  # the master doubles as stdin; closed with the process
        self._unwatch_close(fd)

    def _close_all(self, io: Stdio) -> None:
        for fd in list(io.outputs):
            self._close_output(io, fd)
        if io.stdin_w >= 0 and io.stdin_w != io.master:
            self._close_stdin_now(io)
        io.stdin_w = -1
        if io.master >= 0:
            self._unwatch_close(io.master)
            io.master = -1

    def _check_pressure(self) -> None:
        """Stop reading a process's output while a reader of it lags far behind."""
        lagging = any(len(c.wbuf) > HIGH_WATER for c in self.clients.values() if c.attached)
        self._set_paused(self.io, lagging)
        for ex in self.execs.values():
            self._set_paused(ex.io, ex.client is not None and len(ex.client.wbuf) > HIGH_WATER)

    def _set_paused(self, io: Stdio, paused: bool) -> None:
        if io.paused != paused:
            io.paused = paused
            for fd in list(io.outputs):
                self._update_fd(io, fd)

    def _write_stdin(self, io: Stdio) -> None:
        if io.stdin_w < 0:
            return
        try:
            while io.stdin_buf:
                n = os.write(io.stdin_w, io.stdin_buf[:READ_CHUNK])
                del io.stdin_buf[:n]
        except BlockingIOError:
            pass
        except OSError:
            io.stdin_buf.clear()  # the reader is gone: drop, like a broken pipe
            io.stdin_close_pending = True
        if not io.stdin_buf and io.stdin_close_pending:
            self._close_stdin_now(io)
        else:
            self._update_fd(io, io.stdin_w)

    def _close_stdin_now(self, io: Stdio) -> None:
        fd = io.stdin_w
        io.stdin_close_pending = False
        io.stdin_buf.clear()
        if fd < 0:
            return
        io.stdin_w = -1
        if fd == io.master:
            self._update_fd(io, fd)  # a pty cannot be half-closed; just stop feeding it
            return
        self._unwatch_close(fd)

    def _request_close_stdin(self, io: Stdio) -> None:
        if io.stdin_w < 0:
            return
        io.stdin_close_pending = True
        if not io.stdin_buf:
            self._close_stdin_now(io)
        else:
            self._update_fd(io, io.stdin_w)

    # -- clients
    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                s, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            s.setblocking(False)
            c = Client(s)
            self.clients[s.fileno()] = c
            self.sel.register(s, selectors.EVENT_READ, c)

    def _client_read(self, c: Client) -> None:
        try:
            data = c.sock.recv(READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._client_gone(c)
            return
        c.rbuf += data
        try:
            frames = P.parse_frames(c.rbuf)
        except P.FrameError:
            self._client_gone(c)
            return
        for kind, payload in frames:
            if kind == P.CTRL:
                try:
                    req = json.loads(payload)
                except ValueError:
                    continue
                self._handle(c, req)
            elif kind == P.STDIN:
                io = c.exec.io if c.exec is not None else (self.io if c.stdin and not c.stdin_closed else None)
                if io is not None and io.stdin_w >= 0 and not io.stdin_close_pending:
                    io.stdin_buf += payload
                    self._update_fd(io, io.stdin_w)

    def _client_gone(self, c: Client) -> None:
        if c.exec is not None:
            # nobody can feed it any more: close the exec's stdin, drop its output
            self._request_close_stdin(c.exec.io)
            c.exec.client = None
            c.exec = None
        if c.stdin and not c.stdin_closed:
            c.stdin_closed = True
            if self.stdin_once:
                self._request_close_stdin(self.io)
        self._drop(c)

    def _drop(self, c: Client) -> None:
        fd = c.sock.fileno()
        if fd >= 0:
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            self.clients.pop(fd, None)
        c.sock.close()
        c.wbuf.clear()
        self._check_pressure()

    def _send(self, c: Client, data: bytes) -> None:
        if c.sock.fileno() < 0:
            return
        was_empty = not c.wbuf
        c.wbuf += data
        if was_empty:
            self._client_write(c)

    def _client_write(self, c: Client) -> None:
        if c.wbuf:
            try:
                n = c.sock.send(c.wbuf)
                del c.wbuf[:n]
            except BlockingIOError:
                pass
            except OSError:
                c.wbuf.clear()
                self._client_gone(c)
                return
        if c.sock.fileno() < 0:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.wbuf else 0)
        try:
            if self.sel.get_key(c.sock).events != events:
                self.sel.modify(c.sock, events, c)
        except (KeyError, ValueError):
            return
        if len(c.wbuf) < HIGH_WATER // 4:
            if self.io.paused or any(ex.io.paused for ex in self.execs.values()):
                self._check_pressure()

    def _reply(self, c: Client, req: dict[str, Any], **fields: Any) -> None:
        self._send(c, P.ctrl({"id": req.get("id"), "ok": True, **fields}))

    def _fail(self, c: Client, req: dict[str, Any], error: str, **fields: Any) -> None:
        self._send(c, P.ctrl({"id": req.get("id"), "ok": False, "error": error, **fields}))

    def _handle(self, c: Client, req: dict[str, Any]) -> None:
        op = req.get("op")
        if op == "hello":
            self._reply(c, req, pid=self.init_pid, state=self.state, tty=self.tty, exit=self.exit)
        elif op == "start":
            if self.state != "created":
                self._fail(c, req, f"container is {self.state}")
                return
            assert self.sync is not None
            try:
                self.sync.send(json.dumps({"type": "go"}).encode())
            except OSError as e:
                self._fail(c, req, f"cannot start container: {e}")
                return
            self.sync.close()
            self.sync = None
            self.state = "running"
            self._reply(c, req)
            self.preload_at = time.monotonic() + PRELOAD_DELAY
        elif op == "kill":
            target = c.exec.pid if c.exec is not None and c.exec.exit is None else None
            if c.exec is None and self.exit is None:
                target = self.init_pid
            if target:
                try:
                    os.kill(target, int(req.get("signal", signal.SIGKILL)))
                except ProcessLookupError:
                    pass
                except (OSError, ValueError) as e:
                    self._fail(c, req, str(e))
                    return
                if target == self.init_pid and self.frozen and self.cgroup is not None:
                    # A frozen process cannot act on a signal: thaw it, as dockerd
                    # does when it stops or kills a paused container.
                    try:
                        self.cgroup.freeze(False)
                        self.frozen = False
                    except OSError:
                        pass
            self._reply(c, req)
        elif op == "resize":
            try:
                self._resize(c.exec.io if c.exec is not None else self.io, int(req["height"]), int(req["width"]))
            except (OSError, KeyError, ValueError) as e:
                self._fail(c, req, f"resize: {e}")
                return
            self._reply(c, req)
        elif op == "attach":
            c.attached = True
            c.want = {k for k, name in ((P.STDOUT, "stdout"), (P.STDERR, "stderr")) if req.get(name)}
            c.stdin = bool(req.get("stdin")) and self.open_stdin
            self._reply(c, req)
            if req.get("replay"):
                for kind, data in self.replay:
                    if kind in c.want:
                        self._send(c, P.frame(kind, data))
            if self.exit_sent:
                self._send(c, P.ctrl({"event": "exit", **(self.exit or {})}))
        elif op == "close_stdin":
            if c.exec is not None:
                self._request_close_stdin(c.exec.io)
            elif c.stdin and not c.stdin_closed:
                c.stdin_closed = True
                if self.stdin_once:
                    self._request_close_stdin(self.io)
            self._reply(c, req)
        elif op == "wait":
            if self.exit_sent:
                self._reply(c, req, exit=self.exit)
            else:
                c.waits.append(req.get("id"))
        elif op == "exec":
            self._exec(c, req)
        elif op in ("pause", "resume", "update", "stats", "pids"):
            self._cgroup_op(c, req, op)
        else:
            self._fail(c, req, f"unknown op {op!r}")

    def _resize(self, io: Stdio, height: int, width: int) -> None:
        if io.master < 0:
            raise OSError(errno.ENOTTY, "the process has no tty")
        import fcntl
        import struct
        fcntl.ioctl(io.master, 0x5414, struct.pack("HHHH", height, width, 0, 0))  # TIOCSWINSZ

    def _cgroup_op(self, c: Client, req: dict[str, Any], op: str) -> None:
        if self.cgroup is None:
            self._fail(c, req, "the container has no cgroup")
            return
        if self.exit is not None and op in ("pause", "resume", "update"):
            self._fail(c, req, f"container {self.opts.get('id', '')} is not running")
            return
        try:
            if op == "pause":
                self.cgroup.freeze(True)
                self.frozen = True
                self._reply(c, req)
            elif op == "resume":
                self.cgroup.freeze(False)
                self.frozen = False
                self._reply(c, req)
            elif op == "update":
                self.cgroup.apply(req.get("resources") or {})
                self._reply(c, req)
            elif op == "stats":
                self._reply(c, req, stats=self.cgroup.stats())
            else:
                self._reply(c, req, pids=self.cgroup.pids())
        except OSError as e:
            self._fail(c, req, f"{op}: {e.strerror or e}")

    # -- exec
    def _exec(self, c: Client, req: dict[str, Any]) -> None:
        """Start a process inside the running container; this connection owns its stdio."""
        if self.state != "running" or self.exit is not None:
            self._fail(c, req, f"container {self.opts.get('id', '')} is not running", exit_code=126)
            return
        if c.exec is not None or c.attached:
            self._fail(c, req, "connection already in use")
            return
        process = req.get("process") or {}
        tty = bool(process.get("terminal"))
        open_stdin = bool(req.get("open_stdin"))
        self._preload_exec_code()
        ex = Exec(str(req.get("exec_id", "")), c)
        stdio, child_fds = self._make_stdio(ex.io, tty, open_stdin)
        parent_sync, child_sync = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError as e:  # ENOMEM: the pid namespace is dying with its init
            parent_sync.close()
            child_sync.close()
            for fd in child_fds:
                os.close(fd)
            self._close_all(ex.io)
            self._fail(c, req, f"container {self.opts.get('id', '')} is not running: {e}", exit_code=126)
            return
        if pid == 0:  # -------------------------------- becomes the exec'd process
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                parent_sync.close()
                self._close_parent_ends(ex.io)
                from engine.runtime.init import ExecConfig, SocketChannel, exec_main
                exec_main(ExecConfig(
                    process=process, channel=SocketChannel(child_sync), init_pid=self.init_pid, stdio=stdio,
                    cgroup_procs=self.cgroup.join_files() if self.cgroup else [],
                    seccomp=self.seccomp,
                    # no "go" round trip: the pipes are ours already and the child is
                    # reaped only after it is registered below (one wakeup less per exec)
                    wait_for_go=False,
                ))
            finally:
                os._exit(128)
        child_sync.close()
        for fd in child_fds:
            os.close(fd)
        parent_sync.settimeout(30)
        # Our pid namespace for children is the container's (set when the init was
        # created), so ``pid`` is inside it, and it is our child: we reap it.
        ex.pid = pid
        report = self._await_ready(parent_sync, ex.io, open_stdin, req.get("console_size"))
        if not report["ok"]:
            parent_sync.close()
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._close_all(ex.io)
            self._fail(c, req, report["message"], exit_code=report.get("exit_code", 126))
            return
        c.exec = ex
        self.execs[ex.pid] = ex
        self._watch(ex.io)
        self._reply(c, req, pid=ex.pid)
        parent_sync.close()

    def _preload_exec_code(self) -> None:
        """Import the in-container exec code here, once, so that forked exec children
        find it loaded instead of importing it on every exec (milliseconds each).
        Done when the shim is idle after the start, not before: that would delay the start."""
        self.preload_at = None
        if "engine.runtime.init" not in sys.modules:
            pass

    def _finish_exec(self, ex: Exec) -> None:
        assert ex.exit is not None
        self._close_all(ex.io)
        self.execs.pop(ex.pid, None)
        if ex.client is not None:
            self._send(ex.client, P.ctrl({"event": "exit", **ex.exit}))
            ex.client.exec = None
            ex.client = None

    # -- the end
    def _finish(self) -> None:
        assert self.exit is not None
        self._close_all(self.io)
        if self.log is not None:
            try:
                self.log.close()
            except Exception as e:  # noqa: BLE001
                print(f"shim: closing log: {e}", file=sys.stderr)
        if self.cgroup is not None:
            self.exit["oom_killed"] = self.cgroup.oom_killed()
            self._destroy_cgroup()
        write_atomic(os.path.join(self.bundle, EXIT_FILE), json.dumps(self.exit).encode())
        if self.listener is not None:
            self.sel.unregister(self.listener)
            self.listener.close()
            self.listener = None
            try:
                os.unlink(SOCKET_NAME)
            except FileNotFoundError:
                pass
        event = P.ctrl({"event": "exit", **self.exit})
        for c in list(self.clients.values()):
            for wid in c.waits:
                self._send(c, P.ctrl({"id": wid, "ok": True, "exit": self.exit}))
            c.waits.clear()
            self._send(c, event)
        self.exit_sent = True


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    opts = json.loads(argv[0])
    os.chdir(opts["bundle"])
    # Detach: the server's child exits now, the shim lives on as an orphan.
    if os.fork() != 0:
        os._exit(0)
    shim = Shim(opts)
    try:
        shim.log = _load_log_writer(
            opts.get("log_path", ""),
            opts.get("log_max_size"),
            int(opts.get("log_max_files") or 1),
            opts.get("log_attrs"),
        )
    except Exception as e:  # noqa: BLE001
        os.write(
            1, (json.dumps({"ok": False, "message": f"failed to open log file: {e}", "exit_code": 128}) + "\n").encode()
        )
        os._exit(1)
    try:
        report = shim.create()
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        if shim.init_pid:
            shim._abort_create()
        else:
            shim._destroy_cgroup()
        report = {"ok": False, "message": f"shim failed: {e}", "exit_code": 128}
    with open(os.path.join(opts["bundle"], "shim.pid"), "w") as f:
        f.write(str(os.getpid()))
    os.write(1, (json.dumps(report) + "\n").encode())
    if not report["ok"]:
        os._exit(1)
    # Our stdout is the server's pipe: closing it tells the server we are up.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    try:
        shim.serve()
    except Exception:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        os._exit(2)
    os._exit(0)


if __name__ == "__main__":
    main()
