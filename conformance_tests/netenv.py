"""Per-test-run network resources: bridge names and subnets no other daemon on the machine uses,
and the leftover check of a test daemon's networking (veths, bridges, netns files, iptables chains).

Every address here is derived from the test process id, like the daemons' own --bip, so
concurrent suites (other engineers' too) never share a bridge or a subnet.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

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
    """pydockerd's iptables chain prefix for a data root (engine/network/firewall.py)."""
    return "PYD-" + hashlib.sha256(str(data_root).encode()).hexdigest()[:8]


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def create_bridge(name: str, address: str) -> None:
    _ip("link", "add", name, "type", "bridge")
    _ip("addr", "add", address, "dev", name)
    _ip("link", "set", name, "up")


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def ports_of(bridge: str) -> list[str]:
    base = Path("/sys/class/net", bridge, "brif")
    return sorted(os.listdir(base)) if base.is_dir() else []


def delete_link(name: str) -> None:
    if link_exists(name):
        _ip("link", "del", name)


TOOLS = ("iptables", "ip6tables")


def chains_with(prefix: str) -> list[str]:
    """Chains named with `prefix` in the filter and nat tables of both families ("ip6tables:nat:X")."""
    found = []
    for tool in TOOLS:
        for table in ("filter", "nat"):
            out = subprocess.run([tool, "-w", "-t", table, "-S"], capture_output=True, text=True,
                                 check=False).stdout
            found += [f"{'' if tool == 'iptables' else 'ip6tables:'}{table}:{line.split()[1]}"
                      for line in out.splitlines() if line.startswith("-N ") and line.split()[1].startswith(prefix)]
    return found


def remove_chains(prefix: str) -> None:
    """Unhook and delete the chains of one daemon (what dockerd and pydockerd leave behind by design)."""
    for tool in TOOLS:
        for table in ("filter", "nat"):
            rules = subprocess.run([tool, "-w", "-t", table, "-S"], capture_output=True, text=True,
                                   check=False).stdout.splitlines()
            for line in rules:
                parts = line.split()
                if parts[:1] == ["-A"] and f"-j {prefix}" in line and not parts[1].startswith(prefix):
                    subprocess.run([tool, "-w", "-t", table, "-D", *parts[1:]], capture_output=True, check=False)
            chains = [line.split()[1] for line in rules if line.startswith(f"-N {prefix}")]
            for flag in ("-F", "-X"):
                for chain in chains:
                    subprocess.run([tool, "-w", "-t", table, flag, chain], capture_output=True, check=False)


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
