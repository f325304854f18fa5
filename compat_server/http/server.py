"""The front server: owns every listener and every client connection."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import socket
import ssl
from dataclasses import dataclass

from .connection import ASGIApp, Connection
from .hijack import HIJACK_PATH, HijackHandler
from .listeners import (
    ListenAddress,
    ListenerError,
    TLSOptions,
    bind_tcp,
    bind_unix,
    is_loopback,
    make_ssl_context,
    parse_host,
    resolve_group,
)
from .stream import PeerInfo, SocketStream, Stream, TLSStream, peer_credentials

log = logging.getLogger(__name__)

TLS_HANDSHAKE_TIMEOUT = 30.0


@dataclass
class _Listener:
    address: ListenAddress
    sock: socket.socket
    tls: ssl.SSLContext | None
    inode: int = 0  # unix: the socket file we created, so we only ever remove our own


class Server:
    def __init__(self, app: ASGIApp, hijack_handler: HijackHandler, *, hosts: list[str],
                 tls: TLSOptions | None, group: str | None, allow_insecure_tcp: bool = False,
                 hijack_path: re.Pattern[str] = HIJACK_PATH) -> None:
        """``hijack_path``: POST paths given to ``hijack_handler`` instead of the app (attach and
        exec start by default; BuildKit's /session or /grpc could be added)."""
        self.app = app
        self.hijack_path = hijack_path
        self.hijack_handler = hijack_handler
        self.hosts = list(hosts)
        self.tls = tls
        self.group = group
        self.allow_insecure_tcp = allow_insecure_tcp
        self._listeners: list[_Listener] = []
        self._accept_tasks: list[asyncio.Task[None]] = []
        self._connections: dict[asyncio.Task[None], Connection | None] = {}
        self._closed = asyncio.Event()
        self._closing = False

    @property
    def bound(self) -> list[tuple[str, object]]:
        """("unix", path) or ("tcp", (host, port)) for each listener, with the real port when 0 was asked."""
        out: list[tuple[str, object]] = []
        for lst in self._listeners:
            if lst.address.kind == "unix":
                out.append(("unix", lst.address.path))
            else:
                out.append(("tcp", lst.sock.getsockname()[:2]))
        return out

    async def start(self) -> None:
        """Bind every listener and start accepting; raises ListenerError with a clear message."""
        if not self.hosts:
            raise ListenerError("no hosts to listen on")
        addresses = [parse_host(h, self.tls is not None) for h in self.hosts]
        ctx = make_ssl_context(self.tls) if self.tls is not None and any(
            a.kind == "tcp" for a in addresses) else None
        try:
            for addr in addresses:
                self._listeners.append(self._bind(addr, ctx))
        except BaseException:
            self._close_listeners()
            raise
        for lst in self._listeners:
            self._accept_tasks.append(asyncio.ensure_future(self._accept_loop(lst)))

    def _bind(self, addr: ListenAddress, ctx: ssl.SSLContext | None) -> _Listener:
        if addr.kind == "unix":
            gid = resolve_group(self.group)
            sock = bind_unix(addr.path, gid)
            return _Listener(addr, sock, None, os.stat(addr.path).st_ino)
        if ctx is None and not self.allow_insecure_tcp and not is_loopback(addr.host, addr.port):
            raise ListenerError(
                f"refusing to listen on {addr.spec} without TLS: anyone who can reach it gets root on this host; "
                "use --tlsverify, or --tls=false to accept the risk"
            )
        return _Listener(addr, bind_tcp(addr), ctx)

    async def serve_forever(self) -> None:
        await self._closed.wait()

    async def _accept_loop(self, lst: _Listener) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, addr = await loop.sock_accept(lst.sock)
            except asyncio.CancelledError:
                raise
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("accept on %s failed: %s; retrying shortly", lst.address.spec, err)
                    await asyncio.sleep(0.1)  # back off instead of spinning while descriptors are short
                    continue
                if lst.sock.fileno() < 0:
                    return
                log.warning("accept on %s failed: %s", lst.address.spec, err)
                continue
            task = asyncio.ensure_future(self._handle(lst, sock, addr))
            self._connections[task] = None
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._connections.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("connection handler crashed", exc_info=task.exception())

    async def _handle(self, lst: _Listener, sock: socket.socket, addr: object) -> None:
        try:
            stream = await self._make_stream(lst, sock, addr)
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError) as err:
            log.debug("connection on %s dropped before HTTP: %s", lst.address.spec, err)
            sock.close()
            return
        conn = Connection(stream, self.app, self.hijack_handler, self.hijack_path)
        me = asyncio.current_task()
        if me is not None:
            self._connections[me] = conn
        if self._closing:
            stream.close()
            return
        try:
            await conn.serve()
        finally:
            stream.close()  # idempotent; covers a bug escaping serve()

    async def _make_stream(self, lst: _Listener, sock: socket.socket, addr: object) -> Stream:
        if lst.address.kind == "unix":
            peer = PeerInfo("http", (lst.address.path, None), None, peer_credentials(sock))
            return SocketStream(sock, peer)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = sock.getsockname()[:2]
        assert isinstance(addr, tuple)
        client = (str(addr[0]), int(addr[1]))
        if lst.tls is None:
            return SocketStream(sock, PeerInfo("http", (host, port), client))
        stream = TLSStream(sock, lst.tls, PeerInfo("https", (host, port), client))
        await asyncio.wait_for(stream.handshake(), TLS_HANDSHAKE_TIMEOUT)
        return stream

    def _close_listeners(self) -> None:
        for lst in self._listeners:
            lst.sock.close()
            if lst.address.kind == "unix":
                try:
                    if os.stat(lst.address.path).st_ino == lst.inode:
                        os.unlink(lst.address.path)
                except OSError:
                    pass
        self._listeners = []

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting and remove our unix sockets; close idle connections at once, let active
        requests finish for up to ``grace`` seconds, then cancel the rest (streams, attaches)."""
        self._closing = True
        for task in self._accept_tasks:
            task.cancel()
        await asyncio.gather(*self._accept_tasks, return_exceptions=True)
        self._accept_tasks = []
        self._close_listeners()
        for task, conn in list(self._connections.items()):
            if conn is not None:
                conn.closing = True
                if conn.idle:
                    task.cancel()
        pending = [t for t in self._connections if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=grace)
        self._closed.set()
