"""Links, addresses and routes through netlink (pyroute2).  Blocking: call off the event loop.

Setup and teardown mirror each other: ``ensure_bridge``/``delete_bridge`` and
``attach``/``detach``; every teardown step tolerates what is already gone, so a
daemon restart can settle a half-done state.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from . import netns

ENODEV = 19
EEXIST = 17


def random_mac() -> str:
    """A random, locally administered unicast MAC (newer Docker no longer derives it from the IP)."""
    raw = bytearray(secrets.token_bytes(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def veth_name() -> str:
    return "veth" + secrets.token_hex(4)[:7]


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def link_exists(name: str) -> bool:
    with IPRoute() as ipr:
        return _index(ipr, name) is not None


def ensure_bridge(name: str, gateways: list[str], mtu: int = 1500) -> None:
    """Create the bridge if missing, give it the gateway addresses ("ip/prefix"), bring it up."""
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        if idx is None:
            try:
                ipr.link("add", ifname=name, kind="bridge", address=random_mac())
            except NetlinkError as e:
                if e.code != EEXIST:
                    raise
            idx = _index(ipr, name)
            assert idx is not None
        if mtu and mtu != 1500:
            ipr.link("set", index=idx, mtu=mtu)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx)}
        for gw in gateways:
            iface = ipaddress.ip_interface(gw)
            if (str(iface.ip), iface.network.prefixlen) in have:
                continue
            kw: dict[str, Any] = {"flags": 0x02} if iface.version == 6 else {}   # IFA_F_NODAD: usable at once
            ipr.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen, **kw)
        ipr.link("set", index=idx, state="up")


def delete_bridge(name: str) -> None:
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        if idx is not None:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=idx)


def bridge_addresses(name: str) -> list[str]:
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        if idx is None:
            return []
        return [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=idx)]


@dataclass(frozen=True)
class Attachment:
    """One interface inside a namespace, plugged into a bridge."""

    bridge: str
    host_ifname: str
    ifname: str                 # inside the namespace: eth0, eth1, ...
    mac: str
    addresses: tuple[str, ...]  # "ip/prefix"
    gateways: tuple[str, ...]   # default routes (v4 and/or v6); empty for --internal
    mtu: int = 1500


def attach(ns_path: Path, a: Attachment) -> None:
    """veth pair: host end on the bridge, the other end moved into the namespace and configured."""
    tmp_peer = "pyd" + secrets.token_hex(5)[:10]
    with IPRoute() as ipr:
        br = _index(ipr, a.bridge)
        if br is None:
            raise OSError(ENODEV, f"bridge {a.bridge} not found")
        ipr.link("add", ifname=a.host_ifname, kind="veth", peer={"ifname": tmp_peer, "mtu": a.mtu}, mtu=a.mtu)
        try:
            host = _index(ipr, a.host_ifname)
            peer = _index(ipr, tmp_peer)
            assert host is not None and peer is not None
            fd = os.open(ns_path, os.O_RDONLY)
            try:
                ipr.link("set", index=peer, net_ns_fd=fd)
            finally:
                os.close(fd)
            ipr.link("set", index=host, master=br)
            ipr.link("set", index=host, state="up")
        except BaseException:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", ifname=a.host_ifname)
            raise
    with netns.entered(ns_path):
        inner = IPRoute()
    with inner:
        idx = _index(inner, tmp_peer)
        assert idx is not None
        inner.link("set", index=idx, ifname=a.ifname, address=a.mac)
        if any(":" in addr for addr in a.addresses):
            _no_dad(ns_path, a.ifname)
        for addr in a.addresses:
            iface = ipaddress.ip_interface(addr)
            kw: dict[str, Any] = {}
            if iface.version == 6:
                kw["flags"] = 0x02  # IFA_F_NODAD: usable at once, like dockerd's
            inner.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen, **kw)
        inner.link("set", index=idx, state="up")
        lo = _index(inner, "lo")
        if lo is not None:
            inner.link("set", index=lo, state="up")
        for gw in a.gateways:
            ip = ipaddress.ip_address(gw)
            dst = "default" if ip.version == 4 else "::/0"
            with contextlib.suppress(NetlinkError):
                inner.route("add", dst=dst, gateway=gw, family=10 if ip.version == 6 else 2)


def set_sysctl(key: str, value: str) -> None:
    """A host sysctl under /proc/sys ("net/ipv4/conf/br0/route_localnet")."""
    with open(f"/proc/sys/{key}", "w") as f:
        f.write(value)


def bridge_netfilter(*, ipv6: bool) -> None:
    """Bridged traffic through iptables (dockerd does this for icc=false): load br_netfilter when its
    sysctls are missing, and turn them on."""
    base = Path("/proc/sys/net/bridge")
    if not base.is_dir():
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False)
    for key in ("bridge-nf-call-iptables",) + (("bridge-nf-call-ip6tables",) if ipv6 else ()):
        path = base / key
        if path.exists() and path.read_text().strip() != "1":
            path.write_text("1")


def _no_dad(ns_path: Path, ifname: str) -> None:
    """No duplicate address detection on the interface: its addresses are ours alone, and a
    container's first packets must not wait for DAD (dockerd turns it off too)."""
    with netns.entered(ns_path):
        # /proc/sys/net is the namespace of whoever opens it
        with contextlib.suppress(OSError), open(f"/proc/sys/net/ipv6/conf/{ifname}/accept_dad", "w") as f:
            f.write("0")


def loopback_up(ns_path: Path) -> None:
    with netns.entered(ns_path):
        inner = IPRoute()
    with inner:
        lo = _index(inner, "lo")
        if lo is not None:
            inner.link("set", index=lo, state="up")


def detach(host_ifname: str) -> None:
    """Delete the host end of a veth (the kernel deletes its peer); gone already is fine."""
    with IPRoute() as ipr:
        idx = _index(ipr, host_ifname)
        if idx is not None:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=idx)


def detach_in_ns(ns_path: Path, ifname: str) -> None:
    """Delete an interface from inside a namespace (disconnect of a running container)."""
    with netns.entered(ns_path):
        inner = IPRoute()
    with inner:
        idx = _index(inner, ifname)
        if idx is not None:
            with contextlib.suppress(NetlinkError):
                inner.link("del", index=idx)


def interface_counters(ns_path: Path) -> dict[str, dict[str, int]]:
    """Per-interface rx/tx counters inside a namespace (docker stats' networks)."""
    with netns.entered(ns_path):
        inner = IPRoute()
    out: dict[str, dict[str, int]] = {}
    with inner:
        for link in inner.get_links():
            name = link.get_attr("IFLA_IFNAME")
            st = link.get_attr("IFLA_STATS64") or {}
            if name == "lo" or not st:
                continue
            out[name] = {k: int(st.get(k, 0)) for k in (
                "rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
                "tx_bytes", "tx_packets", "tx_errors", "tx_dropped")}
    return out
