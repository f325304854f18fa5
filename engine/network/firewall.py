"""Firewall rules for bridge networks and published ports, in chains of this daemon's own.

``Firewall`` is the interface the network service talks to; ``Iptables``
implements it with the iptables command, ``RecordingFirewall`` records the
calls for unit tests.  Every chain carries the daemon's prefix (derived from
its data root), so two daemons on one machine never touch each other's rules:

    filter FORWARD     -> <P>-FWD     (per-network accept/isolation, published ports)
                          <P>-ISO     (from one of our bridges to another: dropped, like dockerd's
                                       DOCKER-ISOLATION chains)
    nat    PREROUTING  -> <P>-DNAT    (published ports, traffic arriving from outside)
    nat    OUTPUT      -> <P>-DNAT    (published ports, host-originated, loopback included)
    nat    POSTROUTING -> <P>-POST    (masquerade of each subnet, hairpin, host-originated)

Traffic from the host to 127.0.0.1:<port> is DNATed too (``route_localnet`` on the bridge, and
a masquerade of host-sourced packets leaving through it), as dockerd does with
``--userland-proxy=false``: the kernel path is much faster than any proxy and keeps
working while the daemon is down.  The userland proxy still holds each host port (and
serves what iptables does not cover: IPv6, and ``--iptables=false``).

IPv6 networks get the same chains from ip6tables (``DualStack`` sends each rule to
the family of its addresses); host-originated traffic to ``::1`` cannot be DNATed
out of loopback, so the userland proxy serves it.

Setup appends only rules that are missing and teardown deletes only rules that
exist, so both can be repeated (daemon restart after a kill -9).
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)


def chain_prefix(instance: str) -> str:
    return "PYD-" + hashlib.sha256(instance.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class NetworkRules:
    bridge: str
    subnets: tuple[str, ...]
    internal: bool = False
    masquerade: bool = True
    icc: bool = True


@dataclass(frozen=True)
class PortRule:
    bridge: str
    proto: str
    host_ip: str          # "" or "0.0.0.0" = every address
    host_port: int
    container_ip: str
    container_port: int


class Firewall(Protocol):
    def setup(self) -> None: ...
    def teardown(self) -> None: ...
    def add_network(self, rules: NetworkRules) -> None: ...
    def remove_network(self, rules: NetworkRules) -> None: ...
    def add_port(self, rule: PortRule) -> None: ...
    def remove_port(self, rule: PortRule) -> None: ...


@dataclass
class RecordingFirewall:
    """A fake: remembers what is installed, for tests of the rule logic."""

    calls: list[tuple[str, object]] = field(default_factory=list)
    networks: set[NetworkRules] = field(default_factory=set)
    ports: set[PortRule] = field(default_factory=set)

    def setup(self) -> None:
        self.calls.append(("setup", None))

    def teardown(self) -> None:
        self.calls.append(("teardown", None))

    def add_network(self, rules: NetworkRules) -> None:
        self.calls.append(("add_network", rules))
        self.networks.add(rules)

    def remove_network(self, rules: NetworkRules) -> None:
        self.calls.append(("remove_network", rules))
        self.networks.discard(rules)

    def add_port(self, rule: PortRule) -> None:
        self.calls.append(("add_port", rule))
        self.ports.add(rule)

    def remove_port(self, rule: PortRule) -> None:
        self.calls.append(("remove_port", rule))
        self.ports.discard(rule)


class NoFirewall:
    """--iptables=false."""

    def setup(self) -> None: ...
    def teardown(self) -> None: ...
    def add_network(self, rules: NetworkRules) -> None: ...
    def remove_network(self, rules: NetworkRules) -> None: ...
    def add_port(self, rule: PortRule) -> None: ...
    def remove_port(self, rule: PortRule) -> None: ...


class DualStack:
    """IPv4 rules to one firewall, IPv6 rules to the other (each keeps its own family's subnets)."""

    def __init__(self, v4: Firewall, v6: Firewall) -> None:
        self.v4 = v4
        self.v6 = v6

    def setup(self) -> None:
        self.v4.setup()
        self.v6.setup()

    def teardown(self) -> None:
        self.v4.teardown()
        self.v6.teardown()

    def add_network(self, rules: NetworkRules) -> None:
        self.v4.add_network(rules)
        self.v6.add_network(rules)

    def remove_network(self, rules: NetworkRules) -> None:
        self.v4.remove_network(rules)
        self.v6.remove_network(rules)

    def add_port(self, rule: PortRule) -> None:
        (self.v6 if ":" in rule.container_ip else self.v4).add_port(rule)

    def remove_port(self, rule: PortRule) -> None:
        (self.v6 if ":" in rule.container_ip else self.v4).remove_port(rule)


class Iptables:
    """One address family's rules: ``iptables`` (IPv4 subnets of each network) or ``ip6tables`` (IPv6)."""

    def __init__(self, instance: str, binary: str = "iptables") -> None:
        self.prefix = chain_prefix(instance)
        self.binary = binary
        self.v6 = binary == "ip6tables"
        # ::1 never leaves loopback after a DNAT (the proxy serves it); 127.0.0.1 does with route_localnet
        self._local = (["!", "-d", "::1/128"] if self.v6 else []) + ["-m", "addrtype", "--dst-type", "LOCAL"]
        self.fwd = self.prefix + "-FWD"
        self.dnat = self.prefix + "-DNAT"
        self.post = self.prefix + "-POST"
        self.iso = self.prefix + "-ISO"      # traffic between two of this daemon's networks: dropped

    # --------------------------------------------------------------- plumbing
    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, "-w", *args], check=False, capture_output=True, text=True)

    def _ensure(self, table: str, chain: str, rule: list[str], *, first: bool = False) -> None:
        if self._run("-t", table, "-C", chain, *rule).returncode == 0:
            return
        op = ["-I", chain, "1"] if first else ["-A", chain]
        res = self._run("-t", table, *op, *rule)
        if res.returncode != 0:
            raise OSError(f"iptables: {res.stderr.strip()}")

    def _delete(self, table: str, chain: str, rule: list[str]) -> None:
        while self._run("-t", table, "-C", chain, *rule).returncode == 0:
            if self._run("-t", table, "-D", chain, *rule).returncode != 0:
                break

    def _new_chain(self, table: str, chain: str) -> None:
        if self._run("-t", table, "-S", chain).returncode != 0:
            self._run("-t", table, "-N", chain)

    def _drop_chain(self, table: str, chain: str) -> None:
        if self._run("-t", table, "-S", chain).returncode == 0:
            self._run("-t", table, "-F", chain)
            self._run("-t", table, "-X", chain)

    # -------------------------------------------------------------- interface
    def setup(self) -> None:
        self._new_chain("filter", self.fwd)
        self._new_chain("filter", self.iso)
        self._new_chain("nat", self.dnat)
        self._new_chain("nat", self.post)
        self._ensure("filter", "FORWARD", ["-j", self.fwd], first=True)
        self._ensure("nat", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", self.dnat])
        self._ensure("nat", "OUTPUT", [*self._local, "-j", self.dnat])
        self._ensure("nat", "POSTROUTING", ["-j", self.post])

    def teardown(self) -> None:
        self._delete("filter", "FORWARD", ["-j", self.fwd])
        self._delete("nat", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", self.dnat])
        self._delete("nat", "OUTPUT", [*self._local, "-j", self.dnat])
        self._delete("nat", "POSTROUTING", ["-j", self.post])
        self._drop_chain("filter", self.fwd)
        self._drop_chain("filter", self.iso)
        self._drop_chain("nat", self.dnat)
        self._drop_chain("nat", self.post)

    def _network_rules(self, r: NetworkRules) -> list[tuple[str, str, list[str]]]:
        br = r.bridge
        out: list[tuple[str, str, list[str]]] = []
        subnets = [s for s in r.subnets if (":" in s) == self.v6]
        if self.v6 and not subnets:
            return out          # an IPv4-only network: nothing for ip6tables
        if r.internal:
            for s in subnets:
                out.append(("filter", self.fwd, ["-i", br, "!", "-d", s, "-j", "DROP"]))
                out.append(("filter", self.fwd, ["-o", br, "!", "-s", s, "-j", "DROP"]))
        else:
            out.append(("filter", self.fwd, ["-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                                             "-j", "ACCEPT"]))
            # leaving for another of our bridges is dropped in ISO; anything else is accepted
            out.append(("filter", self.fwd, ["-i", br, "!", "-o", br, "-j", self.iso]))
            out.append(("filter", self.fwd, ["-i", br, "!", "-o", br, "-j", "ACCEPT"]))
            if r.masquerade:
                for s in subnets:
                    out.append(("nat", self.post, ["-s", s, "!", "-o", br, "-j", "MASQUERADE"]))
            out.append(("nat", self.dnat, ["-i", br, "-j", "RETURN"]))
            if not self.v6:
                # host-originated (127.0.0.1 included) to a published port: answer to the bridge address
                out.append(("nat", self.post, ["-o", br, "-m", "addrtype", "--src-type", "LOCAL",
                                               "-j", "MASQUERADE"]))
        out.append(("filter", self.fwd, ["-i", br, "-o", br, "-j", "ACCEPT" if r.icc else "DROP"]))
        out.append(("filter", self.iso, ["-o", br, "-j", "DROP"]))
        return out

    def add_network(self, rules: NetworkRules) -> None:
        for table, chain, rule in self._network_rules(rules):
            self._ensure(table, chain, rule)

    def remove_network(self, rules: NetworkRules) -> None:
        for table, chain, rule in self._network_rules(rules):
            self._delete(table, chain, rule)

    def _port_rules(self, p: PortRule) -> list[tuple[str, str, list[str], bool]]:
        dst = ["-d", p.host_ip] if p.host_ip not in ("", "0.0.0.0", "::") else []
        to = f"[{p.container_ip}]:{p.container_port}" if self.v6 else f"{p.container_ip}:{p.container_port}"
        return [
            ("nat", self.dnat, ["-p", p.proto, *dst, "--dport", str(p.host_port), "!", "-i", p.bridge,
                                "-j", "DNAT", "--to-destination", to], False),
            ("filter", self.fwd, ["-d", p.container_ip, "!", "-i", p.bridge, "-o", p.bridge, "-p", p.proto,
                                  "--dport", str(p.container_port), "-j", "ACCEPT"], True),
            ("nat", self.post, ["-s", p.container_ip, "-d", p.container_ip, "-p", p.proto,
                                "--dport", str(p.container_port), "-j", "MASQUERADE"], False),
        ]

    def add_port(self, rule: PortRule) -> None:
        for table, chain, r, first in self._port_rules(rule):
            self._ensure(table, chain, r, first=first)

    def remove_port(self, rule: PortRule) -> None:
        for table, chain, r, _ in self._port_rules(rule):
            self._delete(table, chain, r)

    def chains_present(self) -> list[str]:
        out = []
        for table in ("filter", "nat"):
            res = self._run("-t", table, "-S")
            out += [line.split()[1] for line in res.stdout.splitlines()
                    if line.startswith("-N ") and line.split()[1].startswith(self.prefix)]
        return out


def firewall_for(config: Config) -> Firewall:
    """The daemon's firewall: none with --iptables=false; IPv6 rules too where ip6tables exists."""
    if not config.iptables:
        return NoFirewall()
    v4 = Iptables(str(config.data_root))
    if shutil.which("ip6tables") is None:
        return v4
    return DualStack(v4, Iptables(str(config.data_root), "ip6tables"))
