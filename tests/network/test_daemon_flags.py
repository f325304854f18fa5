"""The networking daemon flags and daemon.json keys become Config fields."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from compat_server.daemon import DaemonError, network_options, resolve_options
from engine.network.ipam import AddressPool


def test_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"iptables": False, "icc": False, "userland-proxy": False, "ip": "127.0.0.1",
                               "mtu": 1400, "dns": ["10.0.0.53"], "dns-search": ["example.test"],
                               "dns-opts": ["ndots:2"], "fixed-cidr": "10.9.0.0/25",
                               "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}]}))
    opts = network_options(resolve_options(["--config-file", str(cfg)]))
    assert opts["iptables"] is False and opts["icc"] is False and opts["userland_proxy"] is False
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
