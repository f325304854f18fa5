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

import json
import os
import selectors
import signal
import socket
import sys
import time

from engine.fileutil import write_atomic
from engine.runtime import cgroups as cg
from engine.runtime import protocol as P
from engine.runtime.shimops import ShimOps
from engine.runtime.shimstate import (
    EXIT_FILE,
    SOCKET_NAME,
    STATE_FILE,
    Client,
    Stdio,
    close_parent_ends,
    exit_status,
    make_stdio,
    proc_start_time,
    spec_view,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every shim start
    from typing import Any

DRAIN_TIMEOUT = 10.0             # seconds to flush slow clients after exit
OUTPUT_GRACE = 2.0               # seconds to wait for pipe EOF after the init was reaped


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


class Shim(ShimOps):
    """One container's shim: create it (steps 2-3 above), serve until it is over, record the exit."""

    def create(self) -> dict[str, Any]:
        """Steps 2-3: returns the report for the server."""
        try:
            os.unlink(os.path.join(self.bundle, EXIT_FILE))  # a previous run's status
        except FileNotFoundError:
            pass
        # What the shim needs of the spec comes with the options (the server read it):
        # parsing the whole spec here, seccomp profile and all, would leave its pages
        # dirty in every shim.  The init reads config.json itself.
        spec: dict[str, Any] | None = None
        view = self.opts.get("spec_view")
        if view is None:  # a server that did not send it
            with open(os.path.join(self.bundle, "config.json"), "rb") as f:
                spec = json.load(f)
            view = spec_view(spec)
        namespaces: dict[str, str | None] = view["namespaces"]
        self.tty = bool(view["terminal"]) or self.tty
        linux = {"cgroupsPath": view["cgroups_path"], "resources": view["resources"]}

        from engine.runtime import syscalls as S  # ctypes: only now, and only the shim needs it
        from engine.runtime.linux import linux_syscalls
        sysc = linux_syscalls()
        sysc.prctl(S.PR_SET_CHILD_SUBREAPER, 1)

        if linux.get("cgroupsPath"):
            self.cgroup = cg.manager_for(linux["cgroupsPath"])
            if self.cgroup is not None:
                try:
                    self.cgroup.create()
                    self.cgroup.apply(linux.get("resources"))
                    # Kept open: the init and every exec join by writing to them, without a
                    # path lookup and an open per hierarchy (close-on-exec: no container sees them).
                    self.cgroup_fds = [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in self.cgroup.join_files()]
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

        # The seccomp filter is compiled by the init (see init.load_seccomp): what
        # compiling allocates is dropped at its execve instead of staying in the shim.
        stdio, child_fds = make_stdio(self.io, self.tty, self.open_stdin)
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
                close_parent_ends(self.io)
                from engine.runtime.init import InitConfig, child_main
                from engine.runtime.procbuild import SocketChannel
                cfg = InitConfig(
                    spec=spec,
                    spec_path=os.path.join(self.bundle, "config.json"),
                    channel=SocketChannel(child_sync),
                    stdio=stdio,
                    cgroup_procs=self.cgroup.join_files() if self.cgroup else [],
                    cgroup_fds=self.cgroup_fds,
                    cgroup_binds=self.cgroup.bind_sources() if self.cgroup else [],
                    cgroup_version=self.cgroup.version if self.cgroup else 1,
                    seccomp=self.seccomp,
                    seccomp_cache=str(self.opts.get("seccomp_cache") or ""),
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
            "shim_pid": os.getpid(), "shim_start": proc_start_time(os.getpid()), "init_pid": pid,
            "cgroup": cg.to_state(self.cgroup) if self.cgroup else None,
        }).encode())
        return report

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
        self._close_join_fds()
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
            if self.settle_at is not None and now >= self.settle_at:
                self._settle()
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
        if self.settle_at is not None:
            deadlines.append(self.settle_at)
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid and self.exit is None:
                self.exit = exit_status(status, self.error)
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
                self._close_exec_ns()   # the container's namespaces go with it
            elif pid in self.execs and self.execs[pid].exit is None:
                ex = self.execs[pid]
                ex.exit = exit_status(status)
                ex.reaped_at = time.monotonic()
            # anything else: a failed exec, or an orphan we adopted

    def _settle(self) -> None:
        """Once the container runs and the shim is idle: load the exec code, and give
        back what creating the container used (the spec, the init's setup): collect,
        then return the free pages of the C heap to the kernel (malloc_trim).  Every
        page the shim keeps is its own, not shared with the shim parent: fewer kept,
        less memory per container."""
        self.settle_at = None
        self._preload_exec_code()
        import gc
        gc.collect()
        from engine.runtime.linux import malloc_trim
        malloc_trim()

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



# op -> handler; every request of the protocol (module docstring) has one


def main(argv: list[str] | None = None) -> None:
    """A shim in a fresh interpreter (the fallback when no shim parent serves)."""
    argv = sys.argv[1:] if argv is None else argv
    opts = json.loads(argv[0])
    os.chdir(opts["bundle"])
    # Detach: the server's child exits now, the shim lives on as an orphan.
    if os.fork() != 0:
        os._exit(0)
    run(opts)


def run(opts: dict[str, Any]) -> None:
    """Create the container, report on stdout, serve until it is over; never returns.
    Runs in the detached process, cwd the bundle, stdout the server's report pipe."""
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
