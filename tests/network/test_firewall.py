"""iptables rules: per-daemon chains, setup/teardown mirror images (real iptables, own chains only)."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from engine.network.firewall import DualStack, Iptables, NetworkRules, PortRule, chain_prefix

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for iptables")


def _all_rules() -> str:
    return "".join(subprocess.run(["iptables", "-w", "-t", t, "-S"], capture_output=True, text=True,
                                  check=False).stdout for t in ("filter", "nat"))


def test_chain_prefix_is_per_instance() -> None:
    assert chain_prefix("/a") != chain_prefix("/b")
    assert len(chain_prefix("/a") + "-DNAT") <= 28


def test_rules_are_added_once_and_removed_completely() -> None:
    fw = Iptables("test-" + uuid.uuid4().hex)
    net = NetworkRules(bridge="pydfwt0", subnets=("10.254.3.0/24",))
    port = PortRule("pydfwt0", "tcp", "0.0.0.0", 18999, "10.254.3.2", 80)
    try:
        fw.setup()
        fw.setup()
        fw.add_network(net)
        fw.add_network(net)
        fw.add_port(port)
        text = _all_rules()
        assert text.count(f"-j {fw.dnat}") == 2     # PREROUTING and OUTPUT, once each
        assert text.count("--to-destination 10.254.3.2:80") == 1
        assert "-s 10.254.3.0/24 ! -o pydfwt0 -j MASQUERADE" in text
        fw.remove_port(port)
        assert "10.254.3.2:80" not in _all_rules()
    finally:
        fw.remove_network(net)
        fw.teardown()
    assert fw.prefix not in _all_rules()
    assert fw.chains_present() == []


def _all_rules6() -> str:
    return "".join(subprocess.run(["ip6tables", "-w", "-t", t, "-S"], capture_output=True, text=True,
                                  check=False).stdout for t in ("filter", "nat"))


def test_ipv6_rules_go_to_ip6tables_and_are_removed_completely() -> None:
    instance = "test-" + uuid.uuid4().hex
    v4, v6 = Iptables(instance), Iptables(instance, "ip6tables")
    fw = DualStack(v4, v6)
    net = NetworkRules(bridge="pydfwt1", subnets=("10.254.3.16/28", "fd00:254:3::/64"))
    port4 = PortRule("pydfwt1", "tcp", "0.0.0.0", 18998, "10.254.3.18", 80)
    port6 = PortRule("pydfwt1", "tcp", "::", 18998, "fd00:254:3::2", 80)
    try:
        fw.setup()
        fw.add_network(net)
        fw.add_port(port4)
        fw.add_port(port6)
        text4, text6 = _all_rules(), _all_rules6()
        assert "-s 10.254.3.16/28 ! -o pydfwt1 -j MASQUERADE" in text4 and "fd00:254:3::" not in text4
        assert "-s fd00:254:3::/64 ! -o pydfwt1 -j MASQUERADE" in text6 and "10.254.3." not in text6
        assert "--to-destination [fd00:254:3::2]:80" in text6
        assert f"! -d ::1/128 -m addrtype --dst-type LOCAL -j {v6.dnat}" in text6   # ::1: the proxy's
        fw.remove_port(port6)
        assert "fd00:254:3::2" not in _all_rules6()
    finally:
        fw.remove_network(net)
        fw.remove_port(port4)
        fw.teardown()
    assert v6.prefix not in _all_rules6() and v4.prefix not in _all_rules()
    assert v4.chains_present() == [] and v6.chains_present() == []
