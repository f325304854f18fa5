"""The shim's requests (the protocol in ``engine.runtime.shim``'s docstring), one
handler each, and starting an exec'd process in the running container.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

from engine.runtime import protocol as P
from engine.runtime.shimio import ShimIO
from engine.runtime.shimstate import Client, Exec, Stdio, close_parent_ends, make_stdio

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every shim start
    from typing import Any

EXEC_WAIT = 5.0   # seconds a start waits for the init's execve before answering anyway
SETTLE_DELAY = 0.3               # seconds after the start before the shim settles (see Shim._settle)
SYNC_MESSAGE_MAX = 1 << 17        # the largest init message: a compiled seccomp filter, in hex


class ShimOps(ShimIO):
    def _handle(self, c: Client, req: dict[str, Any]) -> None:
        """Dispatch one request to its ``_op_<name>`` handler (see the protocol above)."""
        op = req.get("op")
        handler = OPS.get(op) if isinstance(op, str) else None
        if handler is None:
            self._fail(c, req, f"unknown op {op!r}")
        else:
            handler(self, c, req)

    def op_hello(self, c: Client, req: dict[str, Any]) -> None:
        self._reply(c, req, pid=self.init_pid, state=self.state, tty=self.tty, exit=self.exit)

    def op_start(self, c: Client, req: dict[str, Any]) -> None:
        if self.state != "created":
            self._fail(c, req, f"container is {self.state}")
            return
        assert self.sync is not None
        try:
            self.sync.send(json.dumps({"type": "go"}).encode())
        except OSError as e:
            self._fail(c, req, f"cannot start container: {e}")
            return
        # Answer once the container's process is what it runs: the sync socket is close-on-exec
        # in the init, so EOF means the execve happened (or the init exited).  A start that
        # answered at "go" let `docker top` see the init, and a stop sent right after the start
        # reach a process that had not set up its signal handlers yet.
        try:
            self.sync.settimeout(EXEC_WAIT)
            self.sync.recv(1)
        except OSError:
            pass    # a slow init (timeout) or a gone one: the exit is recorded as usual
        self.sync.close()
        self.sync = None
        self.state = "running"
        self._reply(c, req)
        self.settle_at = time.monotonic() + SETTLE_DELAY

    def op_kill(self, c: Client, req: dict[str, Any]) -> None:
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

    def op_resize(self, c: Client, req: dict[str, Any]) -> None:
        try:
            self._resize(c.exec.io if c.exec is not None else self.io, int(req["height"]), int(req["width"]))
        except (OSError, KeyError, ValueError) as e:
            self._fail(c, req, f"resize: {e}")
            return
        self._reply(c, req)

    def op_attach(self, c: Client, req: dict[str, Any]) -> None:
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

    def op_close_stdin(self, c: Client, req: dict[str, Any]) -> None:
        if c.exec is not None:
            self._request_close_stdin(c.exec.io)
        elif c.stdin and not c.stdin_closed:
            c.stdin_closed = True
            if self.stdin_once:
                self._request_close_stdin(self.io)
        self._reply(c, req)

    def op_wait(self, c: Client, req: dict[str, Any]) -> None:
        if self.exit_sent:
            self._reply(c, req, exit=self.exit)
        else:
            c.waits.append(req.get("id"))

    def op_cgroup(self, c: Client, req: dict[str, Any]) -> None:
        self._cgroup_op(c, req, str(req["op"]))

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

    def op_exec(self, c: Client, req: dict[str, Any]) -> None:
        """Start a process inside the running container; this connection owns its stdio."""
        if self.state != "running" or self.exit is not None:
            self._fail(c, req, f"container {self.opts.get('id', '')} is not running", exit_code=126)
            return
        if c.exec is not None or c.attached:
            self._fail(c, req, "connection already in use")
            return
        process = dict(req.get("process") or {})
        tty = bool(process.get("terminal"))
        open_stdin = bool(req.get("open_stdin"))
        size = req.get("console_size")
        if tty and size and len(size) == 2 and all(size):
            # set by the init on the pty before the process runs (the resize after "pty" stays for
            # the master side, as before)
            process["consoleSize"] = {"height": int(size[0]), "width": int(size[1])}
        self._preload_exec_code()
        namespaces = self._exec_namespaces()
        if self.seccomp:
            from engine.runtime.linux import linux_syscalls
            linux_syscalls().prepare_seccomp(self.seccomp)   # made here once, not in every child
        ex = Exec(str(req.get("exec_id", "")), c)
        stdio, child_fds = make_stdio(ex.io, tty, open_stdin)
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
                close_parent_ends(ex.io)
                from engine.runtime.init import ExecConfig, exec_main
                from engine.runtime.procbuild import SocketChannel
                exec_main(ExecConfig(
                    process=process, channel=SocketChannel(child_sync), init_pid=self.init_pid, stdio=stdio,
                    cgroup_procs=self.cgroup.join_files() if self.cgroup else [],
                    cgroup_fds=self.cgroup_fds, ns_fds=namespaces,
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

    def _await_ready(self, sync: socket.socket, io: Stdio, open_stdin: bool,
                     console_size: Any) -> dict[str, Any]:
        """Read the init's messages: a pty first (tty), then "ready" or "error"."""
        report: dict[str, Any] = {}
        while True:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(sync, SYNC_MESSAGE_MAX, 1)
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
            if typ == "seccomp":
                self.seccomp = bytes.fromhex(m["filter"])  # for every later exec
                continue
            if typ == "pid":
                report["pid"] = int(m["pid"])
                continue
            if typ == "ready":
                return {"ok": True, **report}
            return {"ok": False, "message": m.get("message", "container init failed"),
                    "exit_code": int(m.get("exit_code") or 128), **report}

    def _exec_namespaces(self) -> list[tuple[str, int, int]] | None:
        """The init's namespaces an exec joins, open (name, fd, flag); found once, so that an
        exec does not stat and open them all again.  None: the init is gone (the exec finds
        out and says so)."""
        if self.exec_ns is None:
            from engine.runtime.init import EXEC_NAMESPACES
            found: list[tuple[str, int, int]] = []
            try:
                for name, flag in EXEC_NAMESPACES:
                    theirs = f"/proc/{self.init_pid}/ns/{name}"
                    a, b = os.stat(theirs), os.stat(f"/proc/self/ns/{name}")
                    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
                        found.append((name, os.open(theirs, os.O_RDONLY | os.O_CLOEXEC), flag))
            except OSError:
                for _name, fd, _flag in found:
                    os.close(fd)
                return None
            self.exec_ns = found
        return self.exec_ns

    def _close_exec_ns(self) -> None:
        for _name, fd, _flag in self.exec_ns or []:
            os.close(fd)
        self.exec_ns = None

    def _close_join_fds(self) -> None:
        for fd in self.cgroup_fds:
            os.close(fd)
        self.cgroup_fds = []

    def _preload_exec_code(self) -> None:
        """Import the in-container exec code here, once, so that forked exec children
        find it loaded instead of importing it on every exec (milliseconds each).  A
        shim forked by the shim parent has it already."""
        if "engine.runtime.init" not in sys.modules:
            __import__("engine.runtime.init")
            __import__("engine.oci.caps")

    def _finish_exec(self, ex: Exec) -> None:
        assert ex.exit is not None
        self._close_all(ex.io)
        self.execs.pop(ex.pid, None)
        if ex.client is not None:
            self._send(ex.client, P.ctrl({"event": "exit", **ex.exit}))
            ex.client.exec = None
            ex.client = None


# op -> handler; every request of the protocol (engine.runtime.shim's docstring) has one
OPS: dict[str, Any] = {
    "hello": ShimOps.op_hello,
    "start": ShimOps.op_start,
    "kill": ShimOps.op_kill,
    "resize": ShimOps.op_resize,
    "attach": ShimOps.op_attach,
    "close_stdin": ShimOps.op_close_stdin,
    "wait": ShimOps.op_wait,
    "exec": ShimOps.op_exec,
    **dict.fromkeys(("pause", "resume", "update", "stats", "pids"), ShimOps.op_cgroup),
}
