"""The network service on real netlink (root): networks, endpoints in a netns, no leftovers."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from engine.config import Config
from engine.errors import Conflict, Forbidden, InvalidParameter, NotFound
from engine.network import ipam, netlink
from engine.network.firewall import RecordingFirewall
from engine.network.service import NetworkService
from engine.state import Database
from engine.types import Container, ContainerConfig, EndpointConfig, HostConfig

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netlink")

PID = os.getpid()
BIP = f"10.212.{PID % 250}.1/24"
POOL = f"base=10.211.{PID % 250}.0/24,size=28"


def _container(cid: str, mode: str = "default", endpoints: tuple[tuple[str, EndpointConfig], ...] = ()) -> Container:
    return Container(id=cid, name="c" + cid[:4], created="", image_id="", config=ContainerConfig(hostname=cid[:12]),
                     host_config=HostConfig(network_mode=mode, endpoints=endpoints), path="true", args=())


@pytest.fixture()
def svc(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = Config(data_root=tmp_path / "data", exec_root=tmp_path / "exec", bridge=f"pydt{PID % 100000}", bip=BIP,
                 default_address_pools=(ipam.parse_address_pool(POOL),))
    db = Database(cfg.data_root / "db")
    events: list[tuple[str, str, dict[str, str]]] = []
    s = NetworkService(cfg, db, lambda a, i, at: events.append((a, i, at)), RecordingFirewall())
    s.open_sync()
    s.events = events  # type: ignore[attr-defined]
    yield s
    for n in s.networks():
        if n.driver == "bridge":
            netlink.delete_bridge(n.bridge_name)
    db.close()


def _veths_on(bridge: str) -> list[str]:
    base = Path("/sys/class/net") / bridge / "brif"
    return sorted(os.listdir(base)) if base.exists() else []


def test_predefined_networks_and_default_bridge(svc: NetworkService) -> None:
    names = sorted(n.name for n in svc.networks())
    assert names == ["bridge", "host", "none"]
    br = svc.get("bridge")
    assert br.ipam[0].subnet == ipam.make_config(BIP.replace(".1/24", ".0/24")).subnet
    assert netlink.bridge_addresses(br.bridge_name) == [BIP]
    with pytest.raises(Forbidden, match="bridge is a pre-defined network and cannot be removed"):
        asyncio.run(svc.remove("bridge"))


def test_create_errors(svc: NetworkService) -> None:
    async def run():  # type: ignore[no-untyped-def]
        return await svc.create("tnet")

    n = asyncio.run(run())

    async def more() -> None:
        assert n.ipam[0].subnet == f"10.211.{PID % 250}.0/28"
        with pytest.raises(Conflict, match="network with name tnet already exists"):
            await svc.create("tnet")
        with pytest.raises(Forbidden, match="Pool overlaps with other one on this address space"):
            await svc.create("tnet2", ipam_configs=[{"Subnet": f"10.211.{PID % 250}.0/29"}])
        with pytest.raises(NotFound, match='plugin "foo" not found'):
            await svc.create("tnet3", "foo")
        with pytest.raises(NotFound, match="network nosuch not found"):
            svc.get("nosuch")
        assert svc.get(n.id[:6]).id == n.id
        await svc.remove("tnet")

    asyncio.run(more())
    assert not netlink.link_exists(n.bridge_name)
    assert [e[0] for e in svc.events] == ["create", "destroy"]  # type: ignore[attr-defined]


def test_sandbox_setup_and_teardown_are_mirrors(svc: NetworkService) -> None:
    n = asyncio.run(svc.create("tnet", ipam_configs=[{"Subnet": f"10.210.{PID % 250}.0/24"}]))
    static = f"10.210.{PID % 250}.9"
    c1 = _container("a" * 64, "tnet", (("tnet", EndpointConfig(ipv4_address=static)),))
    c2 = _container("b" * 64, "tnet")
    c3 = _container("c" * 64, "tnet", (("tnet", EndpointConfig(ipv4_address=static)),))
    for c in (c1, c2, c3):
        svc.endpoints.record_create(c)
    eps1 = svc.endpoints.setup_sandbox(c1, c1.name)
    eps2 = svc.endpoints.setup_sandbox(c2, c2.name)
    assert eps1[0].ipv4 == f"{static}/24"
    assert eps2[0].ipv4 == f"10.210.{PID % 250}.2/24"
    assert len(_veths_on(n.bridge_name)) == 2
    with pytest.raises(Forbidden, match="has active endpoints"):
        asyncio.run(svc.remove("tnet"))
    # the static address is taken: a third container cannot have it, and keeps nothing
    with pytest.raises(InvalidParameter, match="Address already in use"):
        svc.endpoints.setup_sandbox(c3, c3.name)
    svc.endpoints.teardown_sandbox(c3)
    assert len(_veths_on(n.bridge_name)) == 2
    for c in (c1, c2):
        svc.endpoints.teardown_sandbox(c)
        svc.endpoints.teardown_sandbox(c)      # idempotent
    # the kernel destroys the unmounted namespaces, and their veths, in the background
    deadline = time.monotonic() + 10
    while _veths_on(n.bridge_name) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _veths_on(n.bridge_name) == []
    assert not any(svc.netns_root.iterdir())
    assert svc.store.addresses(n.id) == set()
    for c in (c1, c2, c3):
        svc.endpoints.forget(c)
    asyncio.run(svc.remove("tnet"))


def test_unknown_network_and_ip_on_default_bridge(svc: NetworkService) -> None:
    c = _container("d" * 64, "nosuch")
    svc.endpoints.record_create(c)                # accepted at create, as by dockerd ...
    with pytest.raises(NotFound, match="network nosuch not found"):
        svc.endpoints.setup_sandbox(c, c.name)    # ... and refused at start, before anything is made
    assert not svc.ns_path(c).exists()
    with pytest.raises(InvalidParameter, match="user specified IP address is supported on user defined networks"):
        svc.endpoints.record_create(
            _container("e" * 64, "bridge", (("bridge", EndpointConfig(ipv4_address="10.0.0.5")),)))
