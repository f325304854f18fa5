"""The embedded DNS server of user-defined networks, at 127.0.0.11:53 (UDP and TCP) in each container.

Like dockerd's: names of the containers sharing a user-defined network with the
asker (container name, short id, network aliases) get A/AAAA answers, several
containers with one alias all answer (shuffled, for round robin), their
addresses get PTR answers, and every other question is forwarded to the
upstream servers (the host's, or the container's ``--dns``), whose answer is
passed back as is; SERVFAIL when none answers.

The listening sockets are opened inside the container's namespace by a thread
that enters it (a socket stays in the namespace it was made in) and then
served by the daemon's event loop; the wire format is dnslib's.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnslib import AAAA, PTR, QTYPE, RCODE, RR, A, DNSRecord  # type: ignore[import-untyped]

from . import netns

log = logging.getLogger(__name__)

ADDRESS = "127.0.0.11"
TTL = 600
UPSTREAM_TIMEOUT = 3.0


@dataclass(frozen=True)
class Peer:
    """One answerable name holder on a network the asker shares."""

    names: tuple[str, ...]      # lower case, without the trailing dot
    ptr_name: str               # what its addresses resolve back to
    ipv4: str
    ipv6: str


# (asking container id) -> the peers it can see
PeerLookup = Callable[[str], list[Peer]]
# (asking container id) -> upstream servers as (ip, port)
UpstreamLookup = Callable[[str], list[tuple[str, int]]]


def answer(query: bytes, peers: list[Peer]) -> bytes | None:
    """The local answer to a query, or None when it must be forwarded."""
    return _answer(query, peers)[0]


class Answers:
    """``answer`` remembered by (the query without its id, the peers it was answered from): a name
    asked again (every lookup of a client that does not cache) skips dnslib's parse and pack.
    Answers that shuffle several addresses (round robin) are not kept."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[bytes, tuple[Peer, ...]], bytes | None] = OrderedDict()

    def get(self, query: bytes, peers: list[Peer]) -> bytes | None:
        if len(query) < 12:
            return b""                  # not DNS: no answer at all
        key = (query[2:], tuple(peers))
        if key in self._kept:
            self._kept.move_to_end(key)
            kept = self._kept[key]
            return None if kept is None else query[:2] + kept
        out, cacheable = _answer(query, peers)
        if cacheable and out != b"":
            self._kept[key] = None if out is None else out[2:]
            if len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return out


def _answer(query: bytes, peers: list[Peer]) -> tuple[bytes | None, bool]:
    """(answer, whether the same query and peers always get the same one)."""
    try:
        req = DNSRecord.parse(query)
    except Exception:  # noqa: BLE001 - not DNS: no answer at all
        return b"", False
    if not req.questions:
        return None, True
    q = req.questions[0]
    qname = str(q.qname).rstrip(".").lower()
    qtype = q.qtype
    if qtype == QTYPE.PTR:
        ip = _ptr_address(qname)
        if ip is None:
            return None, True
        hits = [p for p in peers if ip in (p.ipv4, p.ipv6)]
        if not hits:
            return None, True
        reply = req.reply()
        reply.add_answer(RR(q.qname, QTYPE.PTR, rdata=PTR(hits[0].ptr_name + "."), ttl=TTL))
        return bytes(reply.pack()), True
    matching = [p for p in peers if qname in p.names]
    if not matching:
        return None, True
    reply = req.reply()
    random.shuffle(matching)
    for p in matching:
        if qtype in (QTYPE.A, QTYPE.ANY) and p.ipv4:
            reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(p.ipv4), ttl=TTL))
        if qtype in (QTYPE.AAAA, QTYPE.ANY) and p.ipv6:
            reply.add_answer(RR(q.qname, QTYPE.AAAA, rdata=AAAA(p.ipv6), ttl=TTL))
    # a known name without an address of the asked type: an empty NOERROR answer, like dockerd
    return bytes(reply.pack()), len(matching) == 1


def servfail(query: bytes) -> bytes:
    try:
        req = DNSRecord.parse(query)
    except Exception:  # noqa: BLE001
        return b""
    reply = req.reply()
    reply.header.rcode = RCODE.SERVFAIL
    return bytes(reply.pack())


def _ptr_address(qname: str) -> str | None:
    for suffix, version in ((".in-addr.arpa", 4), (".ip6.arpa", 6)):
        if qname.endswith(suffix):
            labels = qname[: -len(suffix)].split(".")
            try:
                if version == 4:
                    return str(ipaddress.IPv4Address(".".join(reversed(labels))))
                digits = "".join(reversed(labels))
                return str(ipaddress.IPv6Address(int(digits, 16)))
            except (ValueError, ipaddress.AddressValueError):
                return None
    return None


async def forward_udp(query: bytes, upstreams: list[tuple[str, int]]) -> bytes:
    loop = asyncio.get_running_loop()
    for host, port in upstreams:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            try:
                await loop.sock_connect(s, (host, port))
                await loop.sock_sendall(s, query)
                data = await asyncio.wait_for(loop.sock_recv(s, 65535), UPSTREAM_TIMEOUT)
            except (TimeoutError, OSError):
                continue
            if data[:2] == query[:2]:
                return data
    return servfail(query)


async def forward_tcp(query: bytes, upstreams: list[tuple[str, int]]) -> bytes:
    for host, port in upstreams:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(host, port), UPSTREAM_TIMEOUT)
        except (TimeoutError, OSError):
            continue
        try:
            w.write(struct.pack(">H", len(query)) + query)
            await w.drain()
            size = struct.unpack(">H", await asyncio.wait_for(r.readexactly(2), UPSTREAM_TIMEOUT))[0]
            return await asyncio.wait_for(r.readexactly(size), UPSTREAM_TIMEOUT)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            continue
        finally:
            w.close()
    return servfail(query)


def open_sockets(ns_path: Path) -> tuple[socket.socket, socket.socket]:
    """Blocking: UDP and TCP sockets on 127.0.0.11:53 inside the namespace."""
    with netns.entered(ns_path):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        for s in (udp, tcp):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ADDRESS, 53))
            s.setblocking(False)
        tcp.listen(64)
    except BaseException:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: EmbeddedDNS, cid: str) -> None:
        self.server = server
        self.cid = cid
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport here

    def datagram_received(self, data: bytes, addr: Any) -> None:
        local = self.server.answers.get(data, self.server.peers(self.cid))
        if local is None:
            self.server.spawn(self._reply(data, addr))     # forwarded: off the receive path
        elif local and self.transport is not None:
            self.transport.sendto(local, addr)

    async def _reply(self, data: bytes, addr: Any) -> None:
        out = await self.server.resolve(self.cid, data, tcp=False)
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)


class EmbeddedDNS:
    def __init__(self, peers: PeerLookup, upstreams: UpstreamLookup) -> None:
        self._peers = peers
        self._upstreams = upstreams
        self.answers = Answers()
        self._served: dict[str, list[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def peers(self, cid: str) -> list[Peer]:
        return self._peers(cid)

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resolve(self, cid: str, query: bytes, *, tcp: bool) -> bytes:
        local = self.answers.get(query, self._peers(cid))
        if local is not None:
            return local
        ups = self._upstreams(cid)
        return await (forward_tcp(query, ups) if tcp else forward_udp(query, ups))

    async def serve(self, cid: str, ns_path: Path) -> None:
        """Start answering in the container's namespace (idempotent)."""
        if cid in self._served:
            return
        udp, tcp = await asyncio.to_thread(open_sockets, ns_path)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self, cid), sock=udp)

        async def on_tcp(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await r.readexactly(2)
                    query = await r.readexactly(struct.unpack(">H", head)[0])
                    out = await self.resolve(cid, query, tcp=True)
                    w.write(struct.pack(">H", len(out)) + out)
                    await w.drain()
            except (asyncio.IncompleteReadError, OSError):
                pass
            finally:
                w.close()

        server = await asyncio.start_server(on_tcp, sock=tcp)
        self._served[cid] = [transport, server]

    async def stop(self, cid: str) -> None:
        for item in self._served.pop(cid, []):
            with contextlib.suppress(Exception):
                item.close()

    async def close(self) -> None:
        for cid in list(self._served):
            await self.stop(cid)
        for t in list(self._tasks):
            t.cancel()
