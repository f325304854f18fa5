"""The shim's I/O: one selector over the processes' stdio and the clients' sockets.

Output of the container goes to the log, the replay buffer and every attached
client; an exec's output to the connection that started it.  A client that lags
far behind pauses the output it reads (back-pressure instead of unbounded
buffers).  ``ShimIO`` also holds the shim's state; ``shimops.ShimOps`` adds the
request handlers and ``shim.Shim`` the container's lifecycle.
"""
from __future__ import annotations

import errno
import json
import os
import selectors
import socket
import sys

from engine.runtime import protocol as P
from engine.runtime.shimstate import Client, Exec, Stdio

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every shim start
    from typing import Any

    from engine.runtime import cgroups as cg

READ_CHUNK = 65536
HIGH_WATER = 4 * 1024 * 1024     # pause container output while a client lags this much
REPLAY_LIMIT = 64 * 1024         # recent output kept for attach(replay=True)


class ShimIO:
    """The shim's state (all of it: the request handlers and the lifecycle share it) and its I/O."""

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
        self.cgroup_fds: list[int] = []             # the cgroups' join files, open (see Shim.create)
        self.exec_ns: list[tuple[str, int, int]] | None = None  # (name, fd, flag) an exec joins
        self.frozen = False  # the freezer state we set (pause/resume)
        self.log: Any = None
        self.replay: list[tuple[int, bytes]] = []
        self.replay_size = 0
        self.wake_r = -1
        self.error = ""
        self.seccomp = b""                          # compiled filter, for the init and every exec
        self.settle_at: float | None = None        # when to settle (idle after the start)

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

    def _resize(self, io: Stdio, height: int, width: int) -> None:
        if io.master < 0:
            raise OSError(errno.ENOTTY, "the process has no tty")
        import fcntl
        import struct
        fcntl.ioctl(io.master, 0x5414, struct.pack("HHHH", height, width, 0, 0))  # TIOCSWINSZ

    def _handle(self, c: Client, req: dict[str, Any]) -> None:
        raise NotImplementedError  # shimops.ShimOps dispatches requests
