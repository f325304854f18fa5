"""pydockerd.private's daemon API beyond the plugin's session: explicit networking, restarts with
the same roots (also after kill -9), and a teardown that leaves nothing (chains, cgroup parent,
bridge, dir)."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from pydockerd import hostscan
from pydockerd.private import PrivateDaemon

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a daemon needs root")


def test_two_daemons_of_one_process_get_their_own_bridge_and_subnets(tmp_path: Path) -> None:
    a = PrivateDaemon(tmp_path / "a")
    b = PrivateDaemon(tmp_path / "b")
    assert a.bridge != b.bridge and len(a.bridge) <= 15
    assert len({a.bip, b.bip}) == 2 and len({a.address_pool, b.address_pool}) == 2
    assert a.cgroup_parent != b.cgroup_parent
    explicit = PrivateDaemon(tmp_path / "c", ["--debug"], bridge="none", address_pool="", cgroup_parent="x")
    argv = explicit.argv
    assert argv[argv.index("--bridge") + 1] == "none" and "--bip" not in argv
    assert "--default-address-pool" not in argv and argv[argv.index("--cgroup-parent") + 1] == "x"
    assert argv[-1] == "--debug"


def test_restart_keeps_the_roots_and_teardown_leaves_nothing() -> None:
    d = PrivateDaemon()
    name = f"keep-{uuid.uuid4().hex[:8]}"
    try:
        d.start()
        status, _ = d.request("POST", "/volumes/create", body={"Name": name})
        assert status == 201
        first = d.pid
        d.restart(kill9=True)
        assert d.pid is not None and d.pid != first
        status, vol = d.request("GET", f"/volumes/{name}")
        assert status == 200 and vol["Name"] == name, "the volume outlives a kill -9 and a restart"
        d.extra_args.append("--debug")
        d.restart()
        assert "--debug" in hostscan.cmdline_of(d.pid or 0)
        prefix = d.chain_prefix()
        assert prefix and hostscan.chains_with(prefix), "pydockerd made its chains"
        assert hostscan.link_exists(d.bridge)
    finally:
        d.teardown()
    assert not d.root.exists()
    assert hostscan.chains_with(prefix) == [] and not hostscan.link_exists(d.bridge)
    assert hostscan.processes_mentioning(str(d.root)) == []
    assert d.leaks == {} and d.network_leftovers == [] and d.mount_leftovers == []
    assert all(not (h / d.cgroup_parent).exists() for h in hostscan.cgroup_hierarchies())


def test_chains_of_a_prefix_are_found_and_removed() -> None:
    prefix = f"PYT-{uuid.uuid4().hex[:6]}"
    chain = f"{prefix}-X"
    subprocess.run(["iptables", "-w", "-N", chain], check=True)
    subprocess.run(["iptables", "-w", "-A", "FORWARD", "-i", "pytnone0", "-j", chain], check=True)
    try:
        assert hostscan.chains_with(prefix) == [f"filter:{chain}"]
    finally:
        hostscan.remove_chains(prefix)
    assert hostscan.chains_with(prefix) == []
    rules = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True, check=True).stdout
    assert chain not in rules
