"""Resource limits, OOM, pids, pause/unpause, stats and update through the docker CLI and docker-py."""
from __future__ import annotations

import json
import time

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import inspect, ok

BUSYBOX = "busybox"
MEMCG = "/sys/fs/cgroup/memory"


def _fail(proc) -> str:  # the daemon's error line as the CLI prints it
    assert proc.returncode != 0, proc.stdout
    return proc.stderr.strip()


def _container_count(daemon: Daemon) -> int:
    return len(ok(daemon.cli("ps", "-aq")).split())


def test_limits_reach_the_cgroup(daemon: Daemon, busybox: str, name: str) -> None:
    out = ok(daemon.cli(
        "run", "--name", name, "--memory", "32m", "--memory-reservation", "16m", "--cpus", "0.5", "--cpu-shares", "512",
        "--cpuset-cpus", "0", "--pids-limit", "50", "--ulimit", "nofile=100:200", "--oom-score-adj", "300",
        BUSYBOX, "sh", "-c",
        f"cat {MEMCG}/memory.limit_in_bytes {MEMCG}/memory.soft_limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpuset/cpuset.cpus "
        "/sys/fs/cgroup/pids/pids.max /proc/self/oom_score_adj; ulimit -n; ulimit -Hn"))
    assert out.split() == [str(32 << 20), str(16 << 20), "50000", "100000", "512", "0", "50", "300", "100", "200"]
    hc = inspect(daemon, name)["HostConfig"]
    assert hc["Memory"] == 32 << 20
    assert hc["MemorySwap"] == 64 << 20, "dockerd gives twice the memory as memory+swap by default"
    assert hc["NanoCpus"] == 500_000_000 and hc["CpuShares"] == 512 and hc["PidsLimit"] == 50
    assert hc["Ulimits"] == [{"Name": "nofile", "Hard": 200, "Soft": 100}]


def test_no_limit_means_unlimited(daemon: Daemon, busybox: str, name: str) -> None:
    out = ok(daemon.cli("run", "--name", name, "--pids-limit", "-1", BUSYBOX, "cat", "/sys/fs/cgroup/pids/pids.max"))
    assert out.strip() == "max"
    assert inspect(daemon, name)["HostConfig"]["PidsLimit"] is None


def test_memory_hog_is_oom_killed(daemon: Daemon, busybox: str, name: str) -> None:
    since = str(int(time.time()) - 1)
    proc = daemon.cli("run", "--name", name, "--memory", "32m", BUSYBOX, "sh", "-c", "x=a; while true; do x=$x$x; done",
                      timeout=120)
    assert proc.returncode == 137, proc.stderr
    state = inspect(daemon, name)["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    until = str(int(time.time()) + 1)
    events = ok(daemon.cli("events", "--since", since, "--until", until, "--filter", f"container={name}",
                           "--format", "{{.Action}}"))
    actions = events.split()
    assert "oom" in actions and "die" in actions
    assert actions.index("oom") < actions.index("die")


def test_pids_limit_stops_a_fork_bomb(daemon: Daemon, busybox: str, name: str) -> None:
    # An inner shell forks sleeps until the pids limit refuses; the outer shell
    # then reports with builtins only (it cannot fork any more either).
    proc = daemon.cli("run", "--name", name, "--pids-limit", "10", BUSYBOX, "sh", "-c",
                      "sh -c 'while true; do sleep 60 & done'; echo bomb-stopped; "
                      "read n < /sys/fs/cgroup/pids/pids.current; echo $n", timeout=60)
    lines = proc.stdout.split()
    assert lines[0] == "bomb-stopped", (proc.stdout, proc.stderr)
    assert 3 <= int(lines[1]) <= 10
    assert "can't fork" in proc.stderr or "Resource temporarily unavailable" in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--memory", "1k"], "Minimum memory limit allowed is 6MB"),
        (
            ["--memory", "8m", "--memory-swap", "4m"],
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        (["--memory-swap", "8m"], "You should always set the Memory limit when using Memoryswap limit, see usage"),
        (["--memory-reservation", "1k"], "Minimum memory reservation allowed is 6MB"),
        (["--cpus", "-1"], "Range of CPUs is from 0.01 to"),
        (["--cpus", "1000"], "Range of CPUs is from 0.01 to"),
        (
            ["--cpu-period", "100"],
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (["--cpu-quota", "100"], "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (["--cpus", "1", "--cpu-period", "50000"], "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
        (["--cpuset-cpus", "4096"], "Requested CPUs are not available - requested 4096, available: "),
        (["--cpuset-cpus", "x"], "Invalid value x for cpuset cpus: invalid format: x"),
        (["--cpuset-mems", "4096"], "Requested memory nodes are not available - requested 4096, available: "),
        (["--oom-score-adj", "2000"], "Invalid value 2000, range for oom score adj is [-1000, 1000]"),
    ],
)
def test_absurd_limits_are_refused(daemon: Daemon, busybox: str, name: str, args: list[str], message: str) -> None:
    before = _container_count(daemon)
    err = _fail(daemon.cli("create", "--name", name, *args, BUSYBOX, "true"))
    assert f"Error response from daemon: {message}" in err
    assert _container_count(daemon) == before, "no half-made container"
    raw = daemon.raw("POST", "/containers/create", json.dumps({"Image": BUSYBOX, "HostConfig": {"Memory": 1024}}),
                     {"Content-Type": "application/json"})
    assert raw.status == 400 and raw.message == "Minimum memory limit allowed is 6MB"


def test_pause_and_unpause(daemon: Daemon, busybox: str, name: str) -> None:
    since = str(int(time.time()) - 1)
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sleep", "1000"))
    cid = inspect(daemon, name)["Id"]
    ok(daemon.cli("pause", name))
    state = inspect(daemon, name)["State"]
    assert state["Status"] == "paused" and state["Paused"] is True and state["Running"] is True
    assert ok(daemon.cli("ps", "--filter", f"name={name}", "--format", "{{.Status}}")).strip().endswith("(Paused)")
    assert ok(daemon.cli("ps", "-q", "--filter", "status=paused", "--filter", f"name={name}")).strip() == cid[:12]
    assert _fail(daemon.cli("pause", name)) == f"Error response from daemon: Container {cid} is already paused"
    err = _fail(daemon.cli("exec", name, "true"))
    # dockerd names the container as the client did
    assert err == f"Error response from daemon: Container {name} is paused, unpause the container before exec"
    ok(daemon.cli("unpause", name))
    assert inspect(daemon, name)["State"]["Status"] == "running"
    assert _fail(daemon.cli("unpause", name)) == f"Error response from daemon: Container {cid} is not paused"
    assert ok(daemon.cli("exec", name, "echo", "alive")) == "alive\n"
    until = str(int(time.time()) + 1)
    actions = ok(daemon.cli("events", "--since", since, "--until", until, "--filter", f"container={name}",
                            "--format", "{{.Action}}")).split()
    assert actions.count("pause") == 1 and actions.count("unpause") == 1


def test_pause_errors_on_stopped_and_missing(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    cid = inspect(daemon, name)["Id"]
    assert _fail(daemon.cli("pause", name)) == f"Error response from daemon: Container {cid} is not running"
    assert _fail(daemon.cli("unpause", name)) == f"Error response from daemon: Container {cid} is not paused"
    r = daemon.raw("POST", "/containers/no-such-container-here/pause")
    assert r.status == 404 and r.message == "No such container: no-such-container-here"


@pytest.mark.parametrize("verb", ["stop", "kill"])
def test_stop_or_kill_a_paused_container(daemon: Daemon, busybox: str, name: str, verb: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sleep", "1000"))
    ok(daemon.cli("pause", name))
    ok(daemon.cli(verb, *(["-t", "1"] if verb == "stop" else []), name))
    state = inspect(daemon, name)["State"]
    assert (state["Status"], state["Paused"], state["ExitCode"]) == ("exited", False, 137)


def test_stats_no_stream_shows_real_numbers(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--memory", "64m", "--pids-limit", "50", BUSYBOX, "sleep", "1000"))
    out = ok(daemon.cli("stats", "--no-stream", "--format", "{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}", name))
    mem, pids, cpu = out.strip().split("|")
    used, limit = (s.strip() for s in mem.split("/"))
    assert limit == "64MiB"
    assert used != "0B"
    assert pids == "1"
    assert cpu.endswith("%")


def test_stats_api_shapes(client, daemon: Daemon, busybox: str, name: str) -> None:
    c = client.containers.run(BUSYBOX, ["sleep", "1000"], name=name, detach=True, mem_limit="64m")
    s = c.stats(stream=False)
    assert s["name"] == "/" + name and s["id"] == c.id
    assert s["memory_stats"]["limit"] == 64 << 20 and s["memory_stats"]["usage"] > 0
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] > 0 and s["cpu_stats"]["online_cpus"] >= 1
    assert s["cpu_stats"]["system_cpu_usage"] > s["precpu_stats"]["system_cpu_usage"] > 0, \
        "stream=false carries the previous sample"
    assert s["pids_stats"]["current"] == 1
    one = c.stats(stream=False, one_shot=True)
    assert one["preread"] == "0001-01-01T00:00:00Z" and "system_cpu_usage" not in one["precpu_stats"]
    stream = c.stats(stream=True, decode=True)
    first, second = next(stream), next(stream)
    assert second["preread"] == first["read"]
    stream.close()
    c.stop(timeout=0)
    stopped = c.stats(stream=False)
    assert stopped["read"] == "0001-01-01T00:00:00Z" and stopped["memory_stats"] == {}


def test_update_live_container(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--memory", "32m", "--memory-swap", "64m", BUSYBOX, "sleep", "1000"))
    ok(daemon.cli("update", "--memory", "100m", "--memory-swap", "200m", "--cpus", "1", "--pids-limit", "20",
                  "--restart", "on-failure:3", name))
    out = ok(daemon.cli("exec", name, "cat", f"{MEMCG}/memory.limit_in_bytes", f"{MEMCG}/memory.memsw.limit_in_bytes",
                        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/pids/pids.max"))
    assert out.split() == [str(100 << 20), str(200 << 20), "100000", "20"]
    hc = inspect(daemon, name)["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"]) == (100 << 20, 200 << 20, 10**9, 20)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}


def test_update_errors(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--memory", "32m", BUSYBOX, "sleep", "1000"))
    cid = inspect(daemon, name)["Id"]
    err = _fail(daemon.cli("update", "--memory", "100m", name))
    assert err == (f"Error response from daemon: Cannot update container {cid}: Memory limit should be smaller than "
                   "already set memoryswap limit, update the memoryswap at the same time")
    r = daemon.raw(
        "POST", f"/containers/{name}/update", json.dumps({"Memory": 1024}), {"Content-Type": "application/json"}
    )
    assert r.status == 400 and r.message == "Minimum memory limit allowed is 6MB"
    ok(daemon.cli("rm", "-f", name))
    err = _fail(daemon.cli("update", "--memory", "64m", name))
    assert err == f"Error response from daemon: No such container: {name}"
    ok(daemon.cli("run", "-d", "--rm", "--name", name, BUSYBOX, "sleep", "1000"))
    err = _fail(daemon.cli("update", "--restart", "always", name))
    assert "Restart policy cannot be updated because AutoRemove is enabled for the container" in err


def test_paused_container_survives_daemon_restart(daemon: Daemon, busybox: str, name: str) -> None:
    daemon.require_private()
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sleep", "1000"))
    ok(daemon.cli("pause", name))
    daemon.restart(kill9=True)
    state = inspect(daemon, name)["State"]
    assert (state["Status"], state["Paused"]) == ("paused", True)
    ok(daemon.cli("unpause", name))
    assert ok(daemon.cli("exec", name, "echo", "thawed")) == "thawed\n"


def _a_block_device() -> str:
    import os
    import stat as st

    for name in sorted(os.listdir("/sys/block")):
        path = f"/dev/{name}"
        if os.path.exists(path) and st.S_ISBLK(os.stat(path).st_mode):
            return path
    raise AssertionError("this machine has no block device node in /dev")


def test_block_io_throttles_per_device(daemon: Daemon, busybox: str, name: str) -> None:
    import os

    dev = _a_block_device()
    rdev = os.stat(dev).st_rdev
    devno = f"{os.major(rdev)}:{os.minor(rdev)}"
    out = ok(daemon.cli("run", "--name", name, "--device-read-bps", f"{dev}:1mb", "--device-write-iops", f"{dev}:50",
                        BUSYBOX, "cat", "/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device",
                        "/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device"))
    assert out.split("\n")[:2] == [f"{devno} 1048576", f"{devno} 50"]
    hc = inspect(daemon, name)["HostConfig"]
    assert hc["BlkioDeviceReadBps"] == [{"Path": dev, "Rate": 1048576}]
    assert hc["BlkioDeviceWriteIOps"] == [{"Path": dev, "Rate": 50}]
    proc = daemon.cli("run", "--rm", "--device-read-bps", "/dev/no-such-disk:1mb", BUSYBOX, "true")
    assert proc.returncode != 0
    assert "stat /dev/no-such-disk: no such file or directory" in proc.stderr
