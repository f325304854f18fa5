"""The embedded DNS server's answers (wire format through dnslib) and forwarding."""
from __future__ import annotations

import asyncio
import socket

from dnslib import QTYPE, RCODE, DNSRecord

from engine.network import dns

PEERS = [
    dns.Peer(names=("web1", "aaaaaaaaaaaa", "web"), ptr_name="web1.net", ipv4="10.1.0.2", ipv6=""),
    dns.Peer(names=("web2", "bbbbbbbbbbbb", "web"), ptr_name="web2.net", ipv4="10.1.0.3", ipv6="fd00::3"),
]


def ask(name: str, qtype: str = "A") -> DNSRecord:
    out = dns.answer(bytes(DNSRecord.question(name, qtype).pack()), PEERS)
    assert out is not None
    return DNSRecord.parse(out)


def test_names_aliases_and_round_robin() -> None:
    assert [str(r.rdata) for r in ask("web1").rr] == ["10.1.0.2"]
    assert [str(r.rdata) for r in ask("WEB2.").rr] == ["10.1.0.3"]
    assert [str(r.rdata) for r in ask("aaaaaaaaaaaa").rr] == ["10.1.0.2"]
    orders = {tuple(str(r.rdata) for r in ask("web").rr) for _ in range(50)}
    assert orders == {("10.1.0.2", "10.1.0.3"), ("10.1.0.3", "10.1.0.2")}
    assert [str(r.rdata) for r in ask("web2", "AAAA").rr] == ["fd00::3"]
    assert ask("web1", "AAAA").rr == [] and ask("web1", "AAAA").header.rcode == RCODE.NOERROR


def test_ptr_and_unknown_names() -> None:
    r = ask("3.0.1.10.in-addr.arpa", "PTR")
    assert r.rr[0].rtype == QTYPE.PTR and str(r.rr[0].rdata) == "web2.net."
    assert dns.answer(bytes(DNSRecord.question("example.test").pack()), PEERS) is None
    assert dns.answer(bytes(DNSRecord.question("9.9.9.9.in-addr.arpa", "PTR").pack()), PEERS) is None


def test_forwarding_passes_the_upstream_answer_or_servfail() -> None:
    async def run() -> None:
        class Upstream(asyncio.DatagramProtocol):
            def connection_made(self, t: asyncio.BaseTransport) -> None:
                self.t = t

            def datagram_received(self, data: bytes, addr: object) -> None:
                req = DNSRecord.parse(data)
                reply = req.reply()
                reply.add_answer(*__import__("dnslib").RR.fromZone(f"{req.q.qname} 60 A 192.0.2.77"))
                self.t.sendto(reply.pack(), addr)  # type: ignore[attr-defined]

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Upstream, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        q = bytes(DNSRecord.question("outside.test").pack())
        got = DNSRecord.parse(await dns.forward_udp(q, [("127.0.0.1", port)]))
        assert [str(r.rdata) for r in got.rr] == ["192.0.2.77"]
        transport.close()
        # nobody listens there: SERVFAIL after the timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        old = dns.UPSTREAM_TIMEOUT
        dns.UPSTREAM_TIMEOUT = 0.3
        try:
            failed = DNSRecord.parse(await dns.forward_udp(q, [("127.0.0.1", dead)]))
        finally:
            dns.UPSTREAM_TIMEOUT = old
        assert failed.header.rcode == RCODE.SERVFAIL

    asyncio.run(run())


def test_remembered_answers_carry_the_new_id_and_follow_the_peers() -> None:
    answers = dns.Answers(size=4)
    q1 = DNSRecord.question("web1")
    q2 = DNSRecord.question("web1")
    q1.header.id, q2.header.id = 1111, 2222
    first, again = answers.get(bytes(q1.pack()), PEERS), answers.get(bytes(q2.pack()), PEERS)
    assert first is not None and again is not None
    assert DNSRecord.parse(first).header.id == 1111 and DNSRecord.parse(again).header.id == 2222
    assert again[2:] == first[2:] and [str(r.rdata) for r in DNSRecord.parse(again).rr] == ["10.1.0.2"]
    moved = [dns.Peer(names=("web1",), ptr_name="web1.net", ipv4="10.1.0.9", ipv6="")]
    out = answers.get(bytes(q2.pack()), moved)       # another set of peers: answered afresh
    assert out is not None and [str(r.rdata) for r in DNSRecord.parse(out).rr] == ["10.1.0.9"]
    # several addresses for one name are still shuffled (round robin), not remembered in one order
    orders = set()
    for _ in range(50):
        out = answers.get(bytes(DNSRecord.question("web").pack()), PEERS)
        assert out is not None
        orders.add(tuple(str(r.rdata) for r in DNSRecord.parse(out).rr))
    assert orders == {("10.1.0.2", "10.1.0.3"), ("10.1.0.3", "10.1.0.2")}
    assert answers.get(bytes(DNSRecord.question("example.test").pack()), PEERS) is None
    assert answers.get(b"\x00\x01", PEERS) == b""
    for i in range(10):
        answers.get(bytes(DNSRecord.question(f"n{i}").pack()), PEERS)
    assert len(answers._kept) <= 4
