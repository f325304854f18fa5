"""IPAM: dockerd's pools, subnet checks, address choice."""
from __future__ import annotations

import ipaddress

import pytest

from engine.errors import Forbidden, InvalidParameter, Unavailable
from engine.network import ipam


def net(s: str) -> ipam.IPNetwork:
    return ipaddress.ip_network(s)


def test_default_pools_follow_dockerd_order() -> None:
    pools = ipam.DEFAULT_POOLS
    assert ipam.next_pool(pools, []) == net("172.17.0.0/16")
    assert ipam.next_pool(pools, [net("172.17.0.0/16")]) == net("172.18.0.0/16")
    used = [net(f"172.{i}.0.0/16") for i in range(17, 32)]
    assert ipam.next_pool(pools, used) == net("192.168.0.0/20")
    assert ipam.next_pool(pools, [*used, net("192.168.0.0/20")]) == net("192.168.16.0/20")


def test_pool_skips_overlapping_subnets_and_runs_out() -> None:
    pool = ipam.parse_address_pool("base=10.9.0.0/24,size=26")
    assert ipam.next_pool([pool], [net("10.9.0.0/25")]) == net("10.9.0.128/26")
    with pytest.raises(Forbidden, match="could not find an available, non-overlapping IPv4 address pool"):
        ipam.next_pool([pool], [net("10.9.0.0/24")])


@pytest.mark.parametrize("spec", ["base=10.0.0.0/8", "size=24", "base=10.0.0.0/16,size=8", "10.0.0.0/8"])
def test_bad_address_pool(spec: str) -> None:
    with pytest.raises(InvalidParameter):
        ipam.parse_address_pool(spec)


def test_make_config_fills_the_gateway_and_checks_it() -> None:
    cfg = ipam.make_config("10.5.0.0/24")
    assert (cfg.subnet, cfg.gateway) == ("10.5.0.0/24", "10.5.0.1")
    with pytest.raises(InvalidParameter, match="no matching subnet for gateway 10.6.0.1"):
        ipam.make_config("10.5.0.0/24", gateway="10.6.0.1")
    with pytest.raises(InvalidParameter, match="is not within pool"):
        ipam.make_config("10.5.0.0/24", ip_range="10.6.0.0/25")
    with pytest.raises(InvalidParameter, match="invalid CIDR address: nope"):
        ipam.make_config("nope")


def test_pick_skips_reserved_and_taken_and_honours_the_range() -> None:
    cfg = ipam.make_config("10.5.0.0/24", ip_range="10.5.0.128/25", aux={"r": "10.5.0.128"})
    taken = {ipaddress.ip_address("10.5.0.129")}
    assert str(ipam.pick_address(cfg, taken)) == "10.5.0.130"
    small = ipam.make_config("10.5.1.0/30")   # .1 gateway, .2 the only endpoint address
    assert str(ipam.pick_address(small, set())) == "10.5.1.2"
    with pytest.raises(Unavailable, match="no available IPv4 addresses"):
        ipam.pick_address(small, {ipaddress.ip_address("10.5.1.2")})


def test_static_address_checks() -> None:
    cfg = ipam.make_config("10.5.0.0/24")
    assert str(ipam.check_static(cfg, "10.5.0.9", set())) == "10.5.0.9"
    with pytest.raises(InvalidParameter, match="no configured subnet or ip-range contain the IP address 10.7.0.9"):
        ipam.check_static(cfg, "10.7.0.9", set())
    with pytest.raises(InvalidParameter, match="Address already in use"):
        ipam.check_static(cfg, "10.5.0.9", {ipaddress.ip_address("10.5.0.9")})
    with pytest.raises(InvalidParameter, match="Address already in use"):
        ipam.check_static(cfg, "10.5.0.1", set())     # the gateway
