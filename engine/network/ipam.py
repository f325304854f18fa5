"""Address management: pools for new networks and addresses inside a network.

Pure logic over ``ipaddress`` objects; the network service persists what it
hands out (one row per address, unique per network, so the same address can
never be handed out twice, also across a daemon restart).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import Forbidden, InvalidParameter, Unavailable
from .types import IPAMConfig

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AddressPool:
    base: ipaddress.IPv4Network | ipaddress.IPv6Network
    size: int


# dockerd's default pools for networks created without --subnet.
DEFAULT_POOLS: tuple[AddressPool, ...] = (
    AddressPool(ipaddress.ip_network("172.17.0.0/16"), 16),
    AddressPool(ipaddress.ip_network("172.18.0.0/15"), 16),
    AddressPool(ipaddress.ip_network("172.20.0.0/14"), 16),
    AddressPool(ipaddress.ip_network("172.24.0.0/14"), 16),
    AddressPool(ipaddress.ip_network("172.28.0.0/14"), 16),
    AddressPool(ipaddress.ip_network("192.168.0.0/16"), 20),
)


def parse_address_pool(spec: str) -> AddressPool:
    """``--default-address-pool base=10.10.0.0/16,size=24``."""
    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise InvalidParameter(f"invalid field '{part}' must be a key=value pair")
        fields[key.strip().lower()] = value.strip()
    if "base" not in fields or "size" not in fields:
        raise InvalidParameter(f"invalid default address pool {spec!r}: base and size are required")
    try:
        base = ipaddress.ip_network(fields["base"], strict=False)
        size = int(fields["size"])
    except ValueError as e:
        raise InvalidParameter(f"invalid default address pool {spec!r}: {e}") from None
    if size < base.prefixlen or size > base.max_prefixlen:
        raise InvalidParameter(f"invalid default address pool {spec!r}: size out of range")
    return AddressPool(base, size)


def overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)


def next_pool(pools: Iterable[AddressPool], in_use: Iterable[IPNetwork]) -> IPNetwork:
    """The first subnet of the pools overlapping nothing in use (dockerd's order)."""
    used = list(in_use)
    for pool in pools:
        for candidate in pool.base.subnets(new_prefix=pool.size):
            if not any(overlaps(candidate, u) for u in used):
                return candidate
    raise Forbidden("could not find an available, non-overlapping IPv4 address pool among the defaults to "
                    "assign to the network")


def parse_subnet(value: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid CIDR address: {value}") from None


def parse_ip(value: str, what: str = "IP address") -> IPAddress:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise InvalidParameter(f"invalid {what}: {value}") from None


def make_config(subnet: str, gateway: str = "", ip_range: str = "",
                aux: dict[str, str] | None = None) -> IPAMConfig:
    """Validate one IPAM config the way dockerd does and fill in the gateway."""
    net = parse_subnet(subnet)
    if net.prefixlen >= net.max_prefixlen - 1 and net.version == 4:
        raise InvalidParameter(f"invalid subnet {subnet}: no room for a gateway and an endpoint")
    rng = None
    if ip_range:
        rng = parse_subnet(ip_range)
        if rng.version != net.version or not rng.subnet_of(net):  # type: ignore[arg-type]
            raise InvalidParameter(f"invalid pool request: sub-pool {ip_range} is not within pool {subnet}")
    if gateway:
        gw = parse_ip(gateway, "gateway")
        if gw not in net:
            raise InvalidParameter(f"no matching subnet for gateway {gateway}")
    else:
        gw = ipaddress.ip_address(int(net.network_address) + 1) if net.num_addresses > 2 else net.network_address
    for addr in (aux or {}).values():
        ip = parse_ip(addr, "auxiliary address")
        if ip not in net:
            raise InvalidParameter(f"no matching subnet for aux-address {addr}")
    return IPAMConfig(subnet=str(net), gateway=str(gw), ip_range=str(rng) if rng else "",
                      aux_addresses=dict(aux or {}))


def reserved(cfg: IPAMConfig) -> set[IPAddress]:
    """Addresses of a config that endpoints never get: network, broadcast, gateway, aux."""
    net = parse_subnet(cfg.subnet)
    out: set[IPAddress] = {net.network_address}
    if net.version == 4:
        out.add(net.broadcast_address)
    if cfg.gateway:
        out.add(ipaddress.ip_address(cfg.gateway))
    out.update(ipaddress.ip_address(a) for a in cfg.aux_addresses.values())
    return out


def pick_address(cfg: IPAMConfig, taken: set[IPAddress]) -> IPAddress:
    """The lowest free address of the config's range (or subnet)."""
    net = parse_subnet(cfg.subnet)
    rng = parse_subnet(cfg.ip_range) if cfg.ip_range else net
    skip = reserved(cfg) | taken
    start = int(rng.network_address)
    end = int(rng.broadcast_address)
    # a /16 has 65k addresses: walk the integers, not a list
    for value in range(start, end + 1):
        ip = ipaddress.ip_address(value) if net.version == 4 else ipaddress.IPv6Address(value)
        if ip not in skip and ip in net:
            return ip
    raise Unavailable(f"no available IPv{net.version} addresses on this network's address pools: "
                      f"{cfg.subnet}")


def check_static(cfg: IPAMConfig | None, address: str, taken: set[IPAddress]) -> IPAddress:
    ip = parse_ip(address)
    if cfg is None or ip not in parse_subnet(cfg.subnet):
        raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {address}")
    if ip in taken or ip in reserved(cfg):
        raise InvalidParameter("Address already in use")
    return ip
