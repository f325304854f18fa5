"""Port specs (dockerd's create-time checks) and host port allocation."""
from __future__ import annotations

import asyncio
import socket

import pytest

from engine.errors import EngineError, InvalidParameter
from engine.network.firewall import PortRule, RecordingFirewall
from engine.network.ports import (
    PortPublisher,
    parse_port_range,
    split_proto_port,
    validate_port_bindings,
)


def test_split_and_ranges() -> None:
    assert split_proto_port("80/udp") == ("udp", "80")
    assert split_proto_port("80") == ("tcp", "80")
    assert parse_port_range("8000-8002") == (8000, 8002)
    for bad in ("", "abc", "70000", "90-80", "-5"):
        with pytest.raises(ValueError):
            parse_port_range(bad)


@pytest.mark.parametrize("bindings, text", [
    ({"abc/tcp": [("", "80")]}, 'invalid port specification: "abc"'),
    ({"70000/tcp": [("", "80")]}, 'invalid port specification: "70000"'),
    ({"80-81/tcp": [("", "80")]}, 'invalid port specification: "80-81"'),
    ({"80/tcp": [("", "90-80")]}, 'invalid port specification: "90-80"'),
    ({"80/tcp": [("", "abc")]}, 'invalid port specification: "abc"'),
    ({"80/tcp": [("", "")]}, None),
])
def test_validate_port_bindings(bindings: dict[str, list[tuple[str, str]]], text: str | None) -> None:
    if text is None:
        validate_port_bindings(bindings)
        return
    with pytest.raises(InvalidParameter) as err:
        validate_port_bindings(bindings)
    assert err.value.message == text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_publish_records_rules_and_refuses_a_taken_port() -> None:
    async def run() -> None:
        fw = RecordingFirewall()
        pub = PortPublisher(fw, userland_proxy=False)
        port = _free_port()
        made = await pub.publish("c1", "ep1", "br0", "10.0.0.2", [(80, "tcp", "127.0.0.1", str(port))])
        assert [(b.host_ip, b.host_port, b.container_port) for b in made] == [("127.0.0.1", port, 80)]
        assert fw.ports == {PortRule("br0", "tcp", "127.0.0.1", port, "10.0.0.2", 80)}
        with pytest.raises(EngineError, match=f"Bind for 127.0.0.1:{port} failed: port is already allocated"):
            await pub.publish("c2", "ep2", "br0", "10.0.0.3", [(80, "tcp", "127.0.0.1", str(port))])
        # the failed one left nothing behind; the first one still holds its rule
        assert fw.ports == {PortRule("br0", "tcp", "127.0.0.1", port, "10.0.0.2", 80)}
        await pub.unpublish("c1")
        assert fw.ports == set()
        # free again
        await pub.publish("c2", "ep2", "br0", "10.0.0.3", [(80, "tcp", "127.0.0.1", str(port))])
        await pub.unpublish("c2")

    asyncio.run(run())


def test_port_held_by_another_process_is_address_in_use() -> None:
    async def run() -> None:
        fw = RecordingFirewall()
        pub = PortPublisher(fw, userland_proxy=False)
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen(1)
            port = holder.getsockname()[1]
            with pytest.raises(EngineError, match="address already in use"):
                await pub.publish("c1", "ep1", "br0", "10.0.0.2", [(80, "tcp", "127.0.0.1", str(port))])
        assert fw.ports == set()

    asyncio.run(run())


def test_ephemeral_ports_are_distinct() -> None:
    async def run() -> None:
        pub = PortPublisher(RecordingFirewall(), userland_proxy=False)
        made = await pub.publish("c1", "ep", "br0", "10.0.0.2",
                                 [(80, "tcp", "127.0.0.1", ""), (81, "tcp", "127.0.0.1", "")])
        assert len({b.host_port for b in made}) == 2
        await pub.unpublish("c1")

    asyncio.run(run())


def test_userland_proxy_forwards_tcp() -> None:
    async def run() -> None:
        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"got " + await r.read(100))
            await w.drain()
            w.close()

        backend = await asyncio.start_server(echo, "127.0.0.1", 0)
        bport = backend.sockets[0].getsockname()[1]
        pub = PortPublisher(RecordingFirewall(), userland_proxy=True)
        made = await pub.publish("c1", "ep", "br0", "127.0.0.1", [(bport, "tcp", "127.0.0.1", "")])
        r, w = await asyncio.open_connection("127.0.0.1", made[0].host_port)
        w.write(b"hi")
        w.write_eof()
        assert await r.read() == b"got hi"
        w.close()
        await pub.unpublish("c1")
        backend.close()

    asyncio.run(run())
