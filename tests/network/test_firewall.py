"""iptables rules: per-daemon chains, setup/teardown mirror images (real iptables, own chains only)."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from engine.network.firewall import Iptables, NetworkRules, PortRule, chain_prefix

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
