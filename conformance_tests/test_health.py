"""Healthchecks: probes as execs, State.Health, `docker ps` status and filter, health_status events,
timeouts, stop/start, validation."""
from __future__ import annotations

import json
import time

import pytest

from conformance_tests.harness import Daemon, wait_until
from conformance_tests.util import inspect, ok, state, until_now

BUSYBOX = "busybox"
LOOP = "while :; do sleep 0.05; done"
FAST = ("--health-interval", "100ms", "--health-timeout", "5s")


def _health(daemon: Daemon, name: str) -> dict:
    return state(daemon, name).get("Health") or {}


def _wait_health(daemon: Daemon, name: str, status: str, timeout: float = 20) -> dict:
    wait_until(lambda: _health(daemon, name).get("Status") == status, timeout, f"{name} to be {status}", interval=0.05)
    return _health(daemon, name)


def test_cmd_shell_healthy(daemon: Daemon, busybox: str, name: str) -> None:
    since = f"{time.time() - 1:.3f}"
    cid = ok(daemon.cli("run", "-d", "--name", name, "--health-cmd", "echo probe-out; exit 0", *FAST,
                        BUSYBOX, "sh", "-c", LOOP)).strip()
    h = _wait_health(daemon, name, "healthy")
    assert h["FailingStreak"] == 0
    entry = h["Log"][-1]
    assert entry["ExitCode"] == 0 and entry["Output"] == "probe-out\n"
    assert set(entry) == {"Start", "End", "ExitCode", "Output"}
    cfg = inspect(daemon, name)["Config"]["Healthcheck"]
    assert cfg["Test"] == ["CMD-SHELL", "echo probe-out; exit 0"] and cfg["Interval"] == 100_000_000
    status = ok(daemon.cli("ps", "--filter", f"name={name}", "--format", "{{.Status}}")).strip()
    assert status.startswith("Up ") and status.endswith("(healthy)")
    assert name in ok(daemon.cli("ps", "--filter", "health=healthy", "--format", "{{.Names}}")).split()
    assert name not in ok(daemon.cli("ps", "--filter", "health=none", "--format", "{{.Names}}")).split()
    out = ok(daemon.cli("events", "--since", since, "--until", until_now(),
                        "--filter", f"container={cid}", "--filter", "event=health_status",
                        "--format", "{{json .}}"))
    actions = [json.loads(line)["Action"] for line in out.splitlines()]
    assert actions == ["health_status: healthy"]


def test_cmd_failing_becomes_unhealthy_after_retries(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--health-cmd", "echo bad >&2; exit 1", "--health-retries", "2",
                  *FAST, BUSYBOX, "sh", "-c", LOOP))
    h = _wait_health(daemon, name, "unhealthy")
    assert h["FailingStreak"] >= 2
    assert h["Log"][-1]["ExitCode"] == 1 and h["Log"][-1]["Output"] == "bad\n"
    wait_until(lambda: len(_health(daemon, name)["Log"]) == 5 and _health(daemon, name)["FailingStreak"] >= 6,
               20, "more than five probes")
    assert len(_health(daemon, name)["Log"]) == 5     # only the last five are kept
    status = ok(daemon.cli("ps", "--filter", f"name={name}", "--format", "{{.Status}}")).strip()
    assert status.endswith("(unhealthy)")


def test_starting_then_healthy_via_api_cmd_form(daemon: Daemon, busybox: str, name: str) -> None:
    body = {"Image": BUSYBOX, "Cmd": ["sh", "-c", LOOP],
            "Healthcheck": {"Test": ["CMD", "sh", "-c", "test -e /tmp/ready"], "Interval": 100_000_000,
                            "Timeout": 5_000_000_000, "Retries": 1000}}
    resp = daemon.raw("POST", f"/containers/create?name={name}", json.dumps(body), {"Content-Type": "application/json"})
    assert resp.status == 201, resp.body
    ok(daemon.cli("start", name))
    h = _health(daemon, name)
    assert h["Status"] == "starting"
    status = ok(daemon.cli("ps", "--filter", f"name={name}", "--format", "{{.Status}}")).strip()
    assert status.endswith("(health: starting)")
    assert name in ok(daemon.cli("ps", "--filter", "health=starting", "--format", "{{.Names}}")).split()
    # Failures keep it "starting" until Retries failures in a row: here a success comes first.
    wait_until(lambda: _health(daemon, name).get("FailingStreak", 0) >= 1, 20, "a failed probe")
    assert _health(daemon, name)["Status"] == "starting"
    ok(daemon.cli("exec", name, "touch", "/tmp/ready"))
    _wait_health(daemon, name, "healthy")


def test_probe_timeout_kills_probe(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--health-cmd", "sleep 30", "--health-interval", "100ms",
                  "--health-timeout", "300ms", "--health-retries", "1", BUSYBOX, "sh", "-c", LOOP))
    h = _wait_health(daemon, name, "unhealthy")
    entry = h["Log"][-1]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (300ms)"
    # The probe was killed: no `sleep 30` piles up in the container.
    procs = ok(daemon.cli("exec", name, "ps", "-o", "args"))
    assert procs.count("sleep 30") <= 1


@pytest.mark.reference_differs("dockerd 20.10 drops the probe's output from the timeout message")
def test_probe_timeout_keeps_output(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--health-cmd", "echo slow; sleep 30", "--health-interval", "100ms",
                  "--health-timeout", "300ms", "--health-retries", "1", BUSYBOX, "sh", "-c", LOOP))
    entry = _wait_health(daemon, name, "unhealthy")["Log"][-1]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (300ms): slow\n"


def test_long_output_is_cut_at_4096_bytes(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--health-cmd", "head -c 5000 /dev/zero | tr '\\0' x",
                  *FAST, BUSYBOX, "sh", "-c", LOOP))
    entry = _wait_health(daemon, name, "healthy")["Log"][-1]
    assert entry["Output"] == "x" * 4096 + "..."


def test_no_healthcheck_and_none(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sh", "-c", LOOP))
    assert "Health" not in state(daemon, name)
    assert name in ok(daemon.cli("ps", "--filter", "health=none", "--format", "{{.Names}}")).split()
    other = name + "-none"
    try:
        ok(daemon.cli("run", "-d", "--name", other, "--no-healthcheck", BUSYBOX, "sh", "-c", LOOP))
        assert inspect(daemon, other)["Config"]["Healthcheck"]["Test"] == ["NONE"]
        assert "Health" not in state(daemon, other)
    finally:
        daemon.cli("rm", "-f", other)


def test_health_stops_with_container_and_restarts_with_it(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--health-cmd", "exit 0", *FAST, BUSYBOX,
                  "sh", "-c", 'trap "exit 0" TERM; ' + LOOP))
    _wait_health(daemon, name, "healthy")
    ok(daemon.cli("stop", name))
    after_stop = _health(daemon, name)
    assert after_stop["Status"] == "unhealthy"      # dockerd: a stopped monitor means unhealthy
    ok(daemon.cli("start", name))
    h = _health(daemon, name)
    assert h["Status"] in ("starting", "healthy")
    _wait_health(daemon, name, "healthy")
    assert len(_health(daemon, name)["Log"]) >= min(5, len(after_stop["Log"]) + 1)


@pytest.mark.parametrize("field, value, message", [
    ("Interval", 500_000, "Interval in Healthcheck cannot be less than 1ms"),
    ("Timeout", 10, "Timeout in Healthcheck cannot be less than 1ms"),
    ("Retries", -1, "Retries in Healthcheck cannot be negative"),
    ("StartPeriod", 999, "StartPeriod in Healthcheck cannot be less than 1ms"),
])
def test_invalid_healthcheck(daemon: Daemon, busybox: str, name: str, field: str, value: int, message: str) -> None:
    body = {"Image": BUSYBOX, "Cmd": ["true"], "Healthcheck": {"Test": ["CMD", "true"], field: value}}
    resp = daemon.raw("POST", f"/containers/create?name={name}", json.dumps(body), {"Content-Type": "application/json"})
    assert resp.status == 400
    assert resp.json()["message"] == message
    assert daemon.raw("GET", f"/containers/{name}/json").status == 404


def test_health_docker_py(client, busybox: str, name: str) -> None:
    c = client.containers.run(BUSYBOX, ["sh", "-c", LOOP], name=name, detach=True,
                              healthcheck={"test": ["CMD-SHELL", "exit 0"], "interval": 100_000_000})
    wait_until(lambda: (c.reload() or True) and c.attrs["State"].get("Health", {}).get("Status") == "healthy",
               20, "docker-py to see healthy")
    assert c.health == "healthy"


@pytest.mark.reference_differs("dockerd 20.10 does not resume probes of containers it restores")
def test_health_survives_daemon_restart(daemon: Daemon, busybox: str, name: str) -> None:
    daemon.require_private()
    ok(daemon.cli("run", "-d", "--name", name, "--health-cmd", "exit 0", *FAST, BUSYBOX, "sh", "-c", LOOP))
    _wait_health(daemon, name, "healthy")
    daemon.restart(kill9=True)
    restarted = time.time()

    def probed_again() -> bool:
        h = _health(daemon, name)
        last = h["Log"][-1]["End"] if h.get("Log") else ""
        return h.get("Status") == "healthy" and last[:19] >= time.strftime(
            "%Y-%m-%dT%H:%M:%S", time.gmtime(restarted + 1)
        )

    wait_until(probed_again, 20, "probes after the daemon restart")


def test_failures_in_start_period_do_not_count(daemon: Daemon, busybox: str, name: str) -> None:
    # StartInterval (API 1.44) sets the pace inside the start period; older daemons use Interval.
    body = {"Image": BUSYBOX, "Cmd": ["sh", "-c", LOOP],
            "Healthcheck": {"Test": ["CMD-SHELL", "exit 1"], "Retries": 1, "Interval": 100_000_000,
                            "StartInterval": 100_000_000, "StartPeriod": 60 * 10**9}}
    resp = daemon.raw("POST", f"/containers/create?name={name}", json.dumps(body), {"Content-Type": "application/json"})
    assert resp.status == 201, resp.body
    ok(daemon.cli("start", name))
    wait_until(lambda: len(_health(daemon, name).get("Log") or []) >= 2, 20, "two probes")
    h = _health(daemon, name)
    assert h["Status"] == "starting" and h["FailingStreak"] == 0
    assert all(e["ExitCode"] == 1 for e in h["Log"])
    cfg = inspect(daemon, name)["Config"]["Healthcheck"]
    assert cfg["StartPeriod"] == 60 * 10**9


def test_pause_stops_probes_and_unpause_resumes_them(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--health-cmd", "exit 0", *FAST, BUSYBOX, "sh", "-c", LOOP))
    _wait_health(daemon, name, "healthy")
    ok(daemon.cli("pause", name))
    try:
        assert _health(daemon, name)["Status"] == "unhealthy"     # dockerd: a stopped monitor
    finally:
        ok(daemon.cli("unpause", name))
    _wait_health(daemon, name, "healthy")
