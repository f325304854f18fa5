"""Byte streams over accepted sockets: plain (unix/TCP) and TLS, both able to half-close.

Everything above this module (the h11 driver, hijacked connections) sees only
``Stream``.  asyncio's own TLS transport cannot half-close (on close_notify it
drops the whole connection), so TLS is done here by hand over a raw
non-blocking socket with ``ssl.MemoryBIO`` + ``SSLContext.wrap_bio``: a
close_notify from the client reads as EOF while our writes go on, and
``unwrap()`` sends our own close_notify when we are done.
"""
from __future__ import annotations

import asyncio
import fcntl
import socket
import ssl
import struct
import termios
from dataclasses import dataclass
from typing import Any, Protocol

RECV_SIZE = 65536


@dataclass(frozen=True)
class PeerInfo:
    """Who is on the other end, as far as the transport can tell."""

    scheme: str  # "http" or "https"
    server: tuple[str, int | None] | None  # ASGI "server": (host, port) or (socket path, None)
    client: tuple[str, int] | None  # ASGI "client": (host, port); None over unix sockets
    peer_creds: tuple[int, int, int] | None = None  # (pid, uid, gid) via SO_PEERCRED on unix sockets
    tls_client_cert: dict[str, Any] | None = None  # ssl.SSLObject.getpeercert() when a cert was verified

    def as_extension(self) -> dict[str, Any]:
        return {"peer_creds": self.peer_creds, "tls_client_cert": self.tls_client_cert}


class Stream(Protocol):
    peer: PeerInfo

    async def recv(self, max_bytes: int = RECV_SIZE) -> bytes:
        """Next bytes from the peer; b"" once the peer stopped sending (half-close or hang-up).

        Raises ConnectionError when the connection was reset."""
        ...

    async def sendall(self, data: bytes) -> None:
        """Write every byte; raises ConnectionError when the peer is gone."""
        ...

    async def shutdown_write(self) -> None:
        """Our half-close: no more bytes from us, reading goes on."""
        ...

    def unsent_bytes(self) -> int:
        """Bytes we wrote that the peer has not consumed yet (unix) / not acknowledged (TCP)."""
        ...

    def close(self) -> None: ...


def peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    if sock.family != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


class SocketStream:
    """A plain unix or TCP connection on a non-blocking socket."""

    def __init__(self, sock: socket.socket, peer: PeerInfo) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.peer = peer
        self._loop = asyncio.get_running_loop()
        # loop.sock_sendall must not run twice at once on one socket (the second
        # would replace the first one's writer callback): serialise writers.
        self._write_lock = asyncio.Lock()
        self._closed = False

    async def recv(self, max_bytes: int = RECV_SIZE) -> bytes:
        return await self._loop.sock_recv(self.sock, max_bytes)

    def recv_nowait(self, max_bytes: int = RECV_SIZE) -> bytes | None:
        """What the socket has now (b"" at EOF), or None when nothing is there yet."""
        try:
            return self.sock.recv(max_bytes)
        except (BlockingIOError, InterruptedError):
            return None

    async def wait_readable(self) -> None:
        """Until the socket has input (or EOF/error); cancelling it loses no byte, unlike a
        cancelled sock_recv whose bytes may already have been taken off the socket."""
        fut: asyncio.Future[None] = self._loop.create_future()
        fd = self.sock.fileno()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        self._loop.add_reader(fd, ready)
        try:
            await fut
        finally:
            self._loop.remove_reader(fd)

    def fileno(self) -> int:
        return self.sock.fileno()

    async def sendall(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionResetError("connection closed")
        async with self._write_lock:
            await self._loop.sock_sendall(self.sock, data)

    async def shutdown_write(self) -> None:
        async with self._write_lock:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def unsent_bytes(self) -> int:
        return _outq(self.sock)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.sock.close()


def _outq(sock: socket.socket) -> int:
    if sock.fileno() < 0:
        return 0
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", buf)[0])


class TLSStream:
    """TLS over a raw non-blocking socket, driven through memory BIOs."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, peer: PeerInfo) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.peer = peer
        self._loop = asyncio.get_running_loop()
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._in, self._out, server_side=True)
        self._write_lock = asyncio.Lock()
        self._eof = False
        self._sent_close_notify = False
        self._closed = False

    async def handshake(self) -> None:
        """Complete the TLS handshake; raises ssl.SSLError / ConnectionError on failure."""
        while True:
            try:
                self._ssl.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    raise ConnectionResetError("peer closed during the TLS handshake") from None
            except ssl.SSLError:
                # Send our alert (e.g. "certificate required") before giving up.
                try:
                    await self._flush()
                except OSError:
                    pass
                raise
        await self._flush()
        cert = self._ssl.getpeercert()
        if cert:
            self.peer = PeerInfo(self.peer.scheme, self.peer.server, self.peer.client, None, dict(cert))

    async def _fill(self) -> bool:
        """Move the next bytes from the socket into the TLS engine; False at EOF."""
        data = await self._loop.sock_recv(self.sock, RECV_SIZE)
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True

    async def _flush(self) -> None:
        async with self._write_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        data = self._out.read()
        if data:
            await self._loop.sock_sendall(self.sock, data)

    async def recv(self, max_bytes: int = RECV_SIZE) -> bytes:
        while not self._eof:
            try:
                data = self._ssl.read(max_bytes)
            except ssl.SSLWantReadError:
                if self._out.pending:
                    await self._flush()
                await self._fill()
                continue
            except ssl.SSLZeroReturnError:
                # close_notify: the client finished sending (the CLI's CloseWrite).
                self._eof = True
                break
            except ssl.SSLEOFError:
                # TCP EOF without close_notify: the client stopped sending all the same.
                self._eof = True
                break
            except ssl.SSLError as err:
                raise ConnectionResetError(f"TLS error: {err}") from err
            if self._out.pending:
                await self._flush()  # e.g. a KeyUpdate answer
            if not data:
                # CPython reports a received close_notify as b"" rather than SSLZeroReturnError.
                self._eof = True
                break
            return data
        return b""

    async def sendall(self, data: bytes) -> None:
        if self._closed or self._sent_close_notify:
            raise ConnectionResetError("connection closed")
        async with self._write_lock:
            try:
                self._ssl.write(data)
            except ssl.SSLError as err:
                raise ConnectionResetError(f"TLS error: {err}") from err
            await self._flush_locked()

    async def shutdown_write(self) -> None:
        async with self._write_lock:
            if self._sent_close_notify or self._closed:
                return
            self._sent_close_notify = True
            try:
                self._ssl.unwrap()
            except ssl.SSLWantReadError:
                pass  # our close_notify is written; the client's may come later
            except ssl.SSLError:
                pass
            try:
                await self._flush_locked()
                # Also a TCP FIN, for clients that stop at the TCP level only.
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def unsent_bytes(self) -> int:
        return _outq(self.sock)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.sock.close()
