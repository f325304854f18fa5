"""Per-test-run network resources: bridge names and subnets no other daemon on the machine uses,
and the leftover check of a test daemon's networking (veths, bridges, netns files, iptables chains).

Every address here is derived from the test process id, like the daemons' own --bip, so
concurrent suites (other engineers' too) never share a bridge or a subnet.
"""
from __future__ import annotations

import os
from pathlib import Path

from pydockerd.hostscan import (  # noqa: F401 - the host-side scans, shared with pydockerd.private
    chains_with,
    create_bridge,
    delete_link,
    link_exists,
    ports_of,
    remove_chains,
)

SLOT = os.getpid() % 250


def default_bridge(kind: str) -> str:
    return f"{'pyd' if kind == 'pydockerd' else 'pydr'}{os.getpid() % 100000}"


def bip(kind: str) -> str:
    """The default bridge's address/prefix: 10.213.x.1/24 (pydockerd) or 10.216.x.1/24 (reference)."""
    return f"10.{213 if kind == 'pydockerd' else 216}.{SLOT}.1/24"


def default_address_pool() -> str:
    """--default-address-pool: /28s out of 10.214.x.0/24 (16 networks of 14 addresses)."""
    return f"base=10.214.{SLOT}.0/24,size=28"


def subnet(i: int) -> str:
    """The i-th explicit test subnet (0..15): /28s out of 10.215.x.0/24."""
    assert 0 <= i < 16
    return f"10.215.{SLOT}.{i * 16}/28"


def compose_subnet(i: int) -> str:
    """The i-th subnet (0..15) for networks a compose file or a tool's session declares: /28s out of
    10.217.x.0/24, apart from the daemons' pools and the other tests' subnets."""
    assert 0 <= i < 16
    return f"10.217.{SLOT}.{i * 16}/28"


def host_in(sub: str, n: int) -> str:
    base, _, _ = sub.partition("/")
    a, b, c, d = (int(x) for x in base.split("."))
    return f"{a}.{b}.{c}.{d + n}"


def chain_prefix(data_root: Path) -> str:
    """pydockerd's iptables chain prefix for a data root (engine/network/firewall.py's)."""
    from engine.network.firewall import chain_prefix as prefix_of
    return prefix_of(str(data_root))


def subnet6(i: int) -> str:
    """The i-th explicit IPv6 test subnet: a /64 of a ULA prefix of this run."""
    return f"fd00:215:{SLOT}:{i}::/64"


# A second daemon a test starts with flags of its own (--icc=false, --ipv6 ...), of the session daemon's
# kind: its own bridge, bridge subnet (10.219.x.0/26 or .64/26), address pool (/28s of .128/25 or none)
# and IPv6 prefix, apart from the session daemons' and from pydockerd/private.py's 10.218.0.0/16.
def flagged_bridge(kind: str) -> str:
    return f"{'pyf' if kind == 'pydockerd' else 'pyrf'}{os.getpid() % 100000}"


def flagged_bip(kind: str) -> str:
    return f"10.219.{SLOT}.{1 if kind == 'pydockerd' else 65}/26"


def flagged_address_pool(kind: str) -> str:
    return f"base=10.219.{SLOT}.{128 if kind == 'pydockerd' else 192}/26,size=28"


def flagged_cidr_v6(kind: str) -> str:
    return f"fd00:219:{SLOT}:{1 if kind == 'pydockerd' else 2}::/64"
