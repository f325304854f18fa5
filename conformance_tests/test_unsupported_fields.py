"""A create field that is accepted is acted on: what pydockerd cannot honour is refused.

The refusals are pydockerd's own behaviour (dockerd honours these fields), so those tests
run against pydockerd only and are skipped against the reference with that reason.  The
values clients send by default must never be refused: those tests and the ones where
dockerd itself refuses the value on Linux run against both daemons.
"""
from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import inspect, ok

BUSYBOX = "busybox"


@pytest.fixture
def only_pydockerd(daemon: Daemon) -> None:
    if daemon.kind != "pydockerd":
        pytest.skip("pydockerd-only behaviour: dockerd honours this field, pydockerd refuses it")


def _refused_by_cli(daemon: Daemon, name: str, args: list[str], words: str) -> None:
    before = set(daemon.list_container_ids())
    proc = daemon.cli("run", "--name", name, *args, BUSYBOX, "true")
    assert proc.returncode == 125, (proc.stdout, proc.stderr)
    assert f"Error response from daemon: {words}" in proc.stderr
    assert set(daemon.list_container_ids()) == before, "a refused create leaves no container"


@pytest.mark.parametrize(("args", "words"), [
    (["--cgroup-parent", "/mine"], "HostConfig.CgroupParent is not supported by pydockerd"),
    (["--storage-opt", "size=1G"], "HostConfig.StorageOpt is not supported by pydockerd"),
    (["--gpus", "all"], "HostConfig.DeviceRequests is not supported by pydockerd"),
    (["--annotation", "org.example.a=b"], "HostConfig.Annotations is not supported by pydockerd"),
    (["--cpu-rt-runtime", "950000"], "HostConfig.CpuRealtimeRuntime is not supported by pydockerd"),
], ids=["cgroup-parent", "storage-opt", "gpus", "annotation", "cpu-rt-runtime"])
def test_cli_flags_pydockerd_cannot_honour_are_refused(daemon: Daemon, busybox: str, name: str,
                                                       only_pydockerd: None, args: list[str],
                                                       words: str) -> None:
    _refused_by_cli(daemon, name, args, words)


def test_network_driver_options_are_refused(daemon: Daemon, busybox: str, name: str,
                                            only_pydockerd: None) -> None:
    net = f"{name}-net"
    ok(daemon.cli("network", "create", net))
    try:
        _refused_by_cli(daemon, name, ["--network", f"name={net},driver-opt=com.example.x=1"],
                        f"NetworkingConfig.EndpointsConfig[{net}].DriverOpts is not supported by pydockerd")
    finally:
        ok(daemon.cli("network", "rm", net))


def test_docker_py_network_disabled_is_refused(client: Any, busybox: str, name: str,
                                               only_pydockerd: None) -> None:
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.create(BUSYBOX, "true", name=name, network_disabled=True)
    assert e.value.status_code == 400
    assert "Config.NetworkDisabled is not supported by pydockerd" in str(e.value.explanation)


def test_update_refuses_what_it_would_not_apply(daemon: Daemon, busybox: str, name: str,
                                                only_pydockerd: None) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    proc = daemon.cli("update", "--cpu-rt-runtime", "1000", name)
    assert proc.returncode != 0
    assert "UpdateConfig.CpuRealtimeRuntime is not supported by pydockerd" in proc.stderr
    # what update applies still works, with the CLI's other fields at their zero values
    ok(daemon.cli("update", "--memory", "64m", "--memory-swap", "128m", name))
    assert inspect(daemon, name)["HostConfig"]["Memory"] == 64 << 20


# --- dockerd refuses these on Linux too: its words, on both daemons

def test_isolation_other_than_default_is_refused_with_dockerds_words(daemon: Daemon, busybox: str,
                                                                    name: str) -> None:
    _refused_by_cli(daemon, name, ["--isolation", "hyperv"],
                    "Invalid isolation: \"hyperv\" - linux only supports 'default'")


@pytest.mark.reference_differs("dockerd 20.10 answers this validation error with 500; newer dockerd "
                               "wraps it as an invalid parameter (400)")
def test_windows_io_limits_are_refused_with_dockerds_words(client: Any, busybox: str, name: str) -> None:
    hc = client.api.create_host_config()
    hc["IOMaximumIOps"] = 100
    with pytest.raises(docker.errors.APIError) as e:
        client.api.create_container(BUSYBOX, "true", name=name, host_config=hc)
    assert e.value.status_code == 400
    assert "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps" \
        in str(e.value.explanation)


# --- the clients' defaults are not refusals (both daemons)

def test_plain_cli_run_and_create_are_not_refused(daemon: Daemon, busybox: str, name: str) -> None:
    assert ok(daemon.cli("run", "--rm", BUSYBOX, "echo", "ran")) == "ran\n"
    ok(daemon.cli("create", "-it", "--name", name, BUSYBOX, "sh"))
    hc = inspect(daemon, name)["HostConfig"]
    assert hc["CgroupParent"] == "" and hc["Isolation"] in ("", "default")


def test_cli_flags_that_are_acted_on_pass(daemon: Daemon, busybox: str, name: str) -> None:
    # values of refused-in-part fields that are acted on, and a link (copied by the CLI
    # into the endpoint's Links as well)
    ok(daemon.cli("run", "-d", "--name", f"{name}-a", BUSYBOX, "sleep", "30"))
    try:
        out = ok(daemon.cli("run", "--rm", "--cgroupns", "private", "--isolation", "default",
                            "--link", f"{name}-a:peer", BUSYBOX, "echo", "ok"))
        assert out == "ok\n"
    finally:
        daemon.cli("rm", "-f", f"{name}-a")


def _cgroup_paths(daemon: Daemon, *args: str) -> set[str]:
    out = ok(daemon.cli("run", "--rm", *args, BUSYBOX, "cat", "/proc/self/cgroup"))
    return {line.split(":", 2)[2] for line in out.splitlines() if line.split(":", 2)[1] != ""}


def test_cgroupns_private_and_host_are_acted_on(daemon: Daemon, busybox: str, name: str) -> None:
    # private: the container's cgroups are the root of its own cgroup namespace
    assert _cgroup_paths(daemon, "--cgroupns", "private") == {"/"}
    # host: the host's view, the container's own cgroup path
    assert "/" not in _cgroup_paths(daemon, "--cgroupns", "host")
    # the default on this cgroup v1 host is dockerd's: host, and inspect says so
    assert "/" not in _cgroup_paths(daemon)
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    assert inspect(daemon, name)["HostConfig"]["CgroupnsMode"] == "host"
    # an exec joins the container's cgroup namespace
    ok(daemon.cli("run", "-d", "--name", f"{name}-p", "--cgroupns", "private", BUSYBOX, "sleep", "30"))
    try:
        out = ok(daemon.cli("exec", f"{name}-p", "cat", "/proc/self/cgroup"))
        assert {line.split(":", 2)[2] for line in out.splitlines() if line.split(":", 2)[1] != ""} == {"/"}
        assert inspect(daemon, f"{name}-p")["HostConfig"]["CgroupnsMode"] == "private"
    finally:
        daemon.cli("rm", "-f", f"{name}-p")


def test_docker_py_run_is_not_refused(client: Any, busybox: str) -> None:
    out = client.containers.run(BUSYBOX, ["echo", "hello"], remove=True)
    assert out == b"hello\n"


def test_network_connect_refuses_a_link_it_would_not_act_on(daemon: Daemon, busybox: str, name: str,
                                                            only_pydockerd: None) -> None:
    net = f"{name}-net"
    ok(daemon.cli("network", "create", net))
    try:
        ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
        proc = daemon.cli("network", "connect", "--link", f"{name}:peer", net, name)
        assert proc.returncode != 0
        assert "EndpointConfig.Links is not supported by pydockerd" in proc.stderr
        ok(daemon.cli("network", "connect", "--alias", "other", net, name))   # the defaults pass
        assert net in inspect(daemon, name)["NetworkSettings"]["Networks"]
    finally:
        daemon.cli("rm", "-f", name)
        ok(daemon.cli("network", "rm", net))
