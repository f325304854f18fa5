"""The userland proxy: forwards a host address and port to a container's, for what DNAT cannot reach
(traffic to loopback, where the kernel never routes to a bridge), like dockerd's docker-proxy."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

log = logging.getLogger(__name__)

_UDP_IDLE = 60.0
_CHUNK = 256 * 1024


def bind_socket(proto: str, host_ip: str, port: int) -> socket.socket:
    """Bind the host side first (the caller learns "address in use" before anything else is set up)."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host_ip, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


class Proxy:
    """One published port's proxy; ``close()`` stops it and every connection it carries."""

    def __init__(self, proto: str, sock: socket.socket, target: tuple[str, int]) -> None:
        self.proto = proto
        self.sock = sock
        self.target = target
        self._server: asyncio.AbstractServer | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._udp_peers: dict[Any, tuple[asyncio.DatagramTransport, asyncio.TimerHandle]] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.proto == "tcp":
            self._server = await asyncio.start_server(self._serve_tcp, sock=self.sock)
        else:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpFront(self), sock=self.sock)

    async def _serve_tcp(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                br, bw = await asyncio.open_connection(*self.target)
            except OSError:
                w.close()
                return
            with contextlib.suppress(Exception):
                await asyncio.gather(_pipe(r, bw), _pipe(br, w))
            for x in (w, bw):
                x.close()
        finally:
            self._tasks.discard(task)

    async def udp_forward(self, data: bytes, client: Any) -> None:
        loop = asyncio.get_running_loop()
        entry = self._udp_peers.get(client)
        if entry is None:
            front = self._transport
            assert front is not None
            back, _ = await loop.create_datagram_endpoint(
                lambda: _UdpBack(front, client), remote_addr=self.target)
            timer = loop.call_later(_UDP_IDLE, self._udp_expire, client)
            self._udp_peers[client] = (back, timer)
        else:
            back, timer = entry
            timer.cancel()
            self._udp_peers[client] = (back, loop.call_later(_UDP_IDLE, self._udp_expire, client))
        back.sendto(data)

    def _udp_expire(self, client: Any) -> None:
        entry = self._udp_peers.pop(client, None)
        if entry:
            entry[0].close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._transport is not None:
            self._transport.close()
        for back, timer in self._udp_peers.values():
            timer.cancel()
            back.close()
        self._udp_peers.clear()
        for t in list(self._tasks):
            t.cancel()
        self.sock.close()


class _UdpFront(asyncio.DatagramProtocol):
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def datagram_received(self, data: bytes, addr: Any) -> None:
        asyncio.get_running_loop().create_task(self.proxy.udp_forward(data, addr))


class _UdpBack(asyncio.DatagramProtocol):
    def __init__(self, front: asyncio.DatagramTransport, client: Any) -> None:
        self.front = front
        self.client = client

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.front.is_closing():
            self.front.sendto(data, self.client)
