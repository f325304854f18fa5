"""The docker cp fork server: one fresh interpreter (archive_helper --serve) that forks a helper
per operation, and the daemon's end of one operation's pipes."""
from __future__ import annotations

import asyncio
import fcntl
import json
import os
import socket
import subprocess
from typing import Any

_CHUNK = 1 << 20
# The directory holding the `engine` package: the helper is started from this checkout.
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class HelperRun:
    """One helper operation: the pipes to a child of the fork server."""

    def __init__(self, stdout: asyncio.StreamReader, transport: asyncio.BaseTransport,
                 stdin: asyncio.StreamWriter | None) -> None:
        self.stdout = stdout
        self.stdin = stdin
        self._transport = transport
        self.returncode: int | None = None

    async def wait(self) -> int:
        self.close()
        return 0

    def close(self) -> None:
        if self.returncode is None:
            self.returncode = 0
            self._transport.close()
            if self.stdin is not None:
                self.stdin.close()


class ForkServer:
    """A fresh interpreter (archive_helper --serve) that forks a child per operation; started on
    first use and again if it died.  It ends by itself when the daemon closes its socket."""

    def __init__(self, python: str) -> None:
        self._python = python
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    def _start(self) -> socket.socket:
        if self._proc is not None and self._proc.poll() is None and self._sock is not None:
            return self._sock
        self.close()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_SOURCE_ROOT, os.environ.get("PYTHONPATH"))
                                                           if p)}
        try:
            self._proc = subprocess.Popen(
                [self._python, "-m", "engine.containers.archive_helper", "--serve", str(child.fileno())],
                pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
        finally:
            child.close()
        self._sock = parent
        return parent

    async def run(self, spec: dict[str, Any], stdin: bool, client_fd: int | None = None) -> HelperRun:
        """Start one operation; ``client_fd``: the client's connection, for a helper that reads or
        writes the HTTP body itself (it gets its own duplicate)."""
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        for fd in (in_w, out_w):
            try:   # 1 MiB pipes: fewer wake-ups for a 100 MB copy (64 KiB by default)
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _CHUNK)
            except OSError:
                pass
        try:
            message = json.dumps(spec).encode()
            for attempt in (1, 2):
                try:
                    socket.send_fds(self._start(), [message],
                                    [in_r, out_w] + ([client_fd] if client_fd is not None else []))
                    break
                except OSError:
                    self.close()    # the server died: start a new one, once
                    if attempt == 2:
                        raise
        except BaseException:
            for fd in (in_w, out_r):
                os.close(fd)
            raise
        finally:
            os.close(in_r)
            os.close(out_w)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=4 * _CHUNK, loop=loop)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop),
                                                    os.fdopen(out_r, "rb", buffering=0))
        writer = None
        if stdin:
            wt, wp = await loop.connect_write_pipe(lambda: asyncio.streams.FlowControlMixin(loop=loop),
                                                   os.fdopen(in_w, "wb", buffering=0))
            writer = asyncio.StreamWriter(wt, wp, None, loop)
        else:
            os.close(in_w)
        return HelperRun(reader, transport, writer)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            if self._proc.poll() is None:
                try:
                    self._proc.wait(timeout=2)   # EOF on its socket ends it
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
