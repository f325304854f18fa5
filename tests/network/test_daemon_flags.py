"""The networking daemon flags and daemon.json keys become Config fields."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from compat_server.daemon import DaemonError, network_options, resolve_options
from engine.network.ipam import AddressPool


def test_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"icc": False, "userland-proxy": False, "ip": "127.0.0.1",
                               "ipv6": True, "fixed-cidr-v6": "fd00:9::/64",
                               "mtu": 1400, "dns": ["10.0.0.53"], "dns-search": ["example.test"],
                               "dns-opts": ["ndots:2"], "fixed-cidr": "10.9.0.0/25",
                               "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}]}))
    opts = network_options(resolve_options(["--config-file", str(cfg)]))
    assert opts["iptables"] is True and opts["icc"] is False and opts["userland_proxy"] is False
    assert opts["ipv6"] is True and opts["fixed_cidr_v6"] == "fd00:9::/64"
    assert opts["ip_masq"] is True
    assert (opts["default_ip"], opts["mtu"], opts["fixed_cidr"]) == ("127.0.0.1", 1400, "10.9.0.0/25")
    assert (opts["dns"], opts["dns_search"], opts["dns_options"]) == (("10.0.0.53",), ("example.test",), ("ndots:2",))
    (pool,) = opts["default_address_pools"]
    assert isinstance(pool, AddressPool) and str(pool.base) == "10.10.0.0/16" and pool.size == 24


def test_command_line_pool_and_a_bad_one(tmp_path: Path) -> None:
    none = str(tmp_path / "empty.json")
    Path(none).write_text("{}")
    opts = network_options(resolve_options(["--config-file", none, "--default-address-pool",
                                            "base=10.10.0.0/16,size=24", "--ip-masq=false"]))
    assert opts["ip_masq"] is False and str(opts["default_address_pools"][0].base) == "10.10.0.0/16"
    with pytest.raises(DaemonError):
        network_options(resolve_options(["--config-file", none, "--default-address-pool", "size=24"]))


def test_icc_false_needs_iptables_and_v6_cidr_is_checked(tmp_path: Path) -> None:
    none = str(tmp_path / "empty.json")
    Path(none).write_text("{}")
    with pytest.raises(DaemonError, match=r"You specified --iptables=false with --icc=false\. ICC=false uses "
                                          r"iptables to function\. Please set --icc or --iptables to true"):
        network_options(resolve_options(["--config-file", none, "--iptables=false", "--icc=false"]))
    assert network_options(resolve_options(["--config-file", none, "--iptables=false"]))["icc"] is True
    for bad in ("fd00::/129", "10.0.0.0/24"):
        with pytest.raises(DaemonError):
            network_options(resolve_options(["--config-file", none, "--fixed-cidr-v6", bad]))
