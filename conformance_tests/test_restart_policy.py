"""Restart policies: no / always / unless-stopped / on-failure[:N], back-off, stop and kill during
back-off, validation, and what happens to stopped containers when the daemon starts again."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from conformance_tests.harness import Daemon, wait_until
from conformance_tests.util import inspect, ok, since_now, state, until_now, wait_for_log

BUSYBOX = "busybox"
LOOP = "while :; do sleep 0.05; done"


def _since() -> str:
    return f"{time.time() - 1:.3f}"


def _events(daemon: Daemon, since: str, ref: str) -> list[dict]:
    out = ok(daemon.cli("events", "--since", since, "--until", until_now(),
                        "--filter", f"container={ref}", "--format", "{{json .}}"))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_on_failure_2_restarts_exactly_twice(daemon: Daemon, busybox: str, name: str) -> None:
    since = _since()
    cid = ok(daemon.cli("run", "-d", "--restart", "on-failure:2", "--name", name, BUSYBOX, "false")).strip()

    def settled() -> bool:
        st = inspect(daemon, name)
        return st["RestartCount"] == 2 and st["State"]["Status"] == "exited"
    wait_until(settled, 20, "two restarts, then exited")
    info = inspect(daemon, name)
    assert info["State"]["ExitCode"] == 1 and info["State"]["Restarting"] is False
    assert info["State"]["Running"] is False
    actions = [e["Action"] for e in _events(daemon, since, cid) if e["Action"] in ("start", "die")]
    assert actions == ["start", "die"] * 3
    dies = [e for e in _events(daemon, since, cid) if e["Action"] == "die"]
    assert all(e["Actor"]["Attributes"]["exitCode"] == "1" for e in dies)


def test_on_failure_does_not_restart_after_success(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--restart", "on-failure", "--name", name, BUSYBOX, "true"))
    assert ok(daemon.cli("wait", name)).strip() == "0"
    info = inspect(daemon, name)
    assert info["RestartCount"] == 0
    assert info["State"]["Status"] == "exited" and info["State"]["Restarting"] is False


def test_always_restarts_after_success_and_shows_restarting(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--restart", "always", "--name", name, BUSYBOX, "sh", "-c", "exit 3"))
    # The back-off doubles (100 ms, 200 ms, 400 ms...): the container soon spends most of its
    # time waiting to be restarted, and says so.
    seen: dict = {}

    def restarting() -> bool:
        info = inspect(daemon, name)
        if info["State"]["Status"] == "restarting":
            seen.update(info)
            return True
        return False
    wait_until(restarting, 30, "the restarting status", interval=0.02)
    st = seen["State"]
    assert st["Restarting"] is True and st["Running"] is True and st["Pid"] == 0 and st["ExitCode"] == 3
    assert seen["RestartCount"] >= 1
    ps = ok(daemon.cli("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}"))
    assert ps.startswith(("Restarting (3)", "Up "))
    # docker stop during the back-off: no more restarts, exited with the last code.
    ok(daemon.cli("stop", name))
    info = inspect(daemon, name)
    count = info["RestartCount"]
    assert info["State"]["Status"] == "exited" and info["State"]["Restarting"] is False
    assert info["State"]["ExitCode"] == 3
    # A user stop cancels the policy: a later `docker wait` sees it stay exited.
    assert ok(daemon.cli("wait", name)).strip() == "3"
    assert inspect(daemon, name)["RestartCount"] == count


def test_unless_stopped_restarts_running_container_until_stopped(daemon: Daemon, busybox: str, name: str) -> None:
    # Each run exits 0 after a while on its own; the policy brings it back.
    ok(daemon.cli("run", "-d", "--restart", "unless-stopped", "--name", name, BUSYBOX,
                  "sh", "-c", "echo up; sleep 0.2"))
    wait_until(lambda: inspect(daemon, name)["RestartCount"] >= 2, 20, "two restarts")
    ok(daemon.cli("stop", "-t", "1", name))
    info = inspect(daemon, name)
    assert info["State"]["Status"] == "exited" and info["State"]["Restarting"] is False


def test_kill_stops_always_container_for_good(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--restart", "always", "--name", name, BUSYBOX, "sh", "-c", "echo ready; " + LOOP))
    wait_for_log(daemon, name, "ready")
    ok(daemon.cli("kill", name))
    info = inspect(daemon, name)
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 137
    assert info["RestartCount"] == 0


def _info(daemon: Daemon, ref: str) -> dict:
    resp = daemon.raw("GET", f"/containers/{ref}/json")
    assert resp.status == 200, resp.body
    return resp.json()


def test_restart_count_resets_on_manual_start(daemon: Daemon, busybox: str, name: str) -> None:
    cid = ok(daemon.cli("run", "-d", "--restart", "on-failure:1", "--name", name, BUSYBOX, "false")).strip()

    def settled() -> bool:
        info = _info(daemon, cid)
        return info["RestartCount"] == 1 and info["State"]["Status"] == "exited"
    wait_until(settled, 30, "one restart")
    since = since_now()
    ok(daemon.cli("start", name))
    # Counted from 0 again: the manual start, then one more restart is allowed.
    wait_until(lambda: settled() and sum(1 for e in _events(daemon, since, cid) if e["Action"] == "start") == 2,
               30, "the second sequence")
    assert _info(daemon, cid)["RestartCount"] == 1


def test_rm_force_during_backoff(daemon: Daemon, busybox: str, name: str) -> None:
    cid = ok(daemon.cli("run", "-d", "--restart", "always", "--name", name, BUSYBOX, "false")).strip()
    wait_until(lambda: state(daemon, name)["Status"] == "restarting", 30, "restarting", interval=0.02)
    ok(daemon.cli("rm", "-f", name))
    assert daemon.raw("GET", f"/containers/{cid}/json").status == 404


INVALID_POLICIES = [
    ({"Name": "on-failure", "MaximumRetryCount": -1}, "invalid restart policy: maximum retry count cannot be negative"),
    ({"Name": "always", "MaximumRetryCount": 2},
     "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    ({"Name": "sometimes"}, "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', "
                            "'on-failure', or 'unless-stopped'"),
]


@pytest.mark.parametrize("policy, message", INVALID_POLICIES)
@pytest.mark.reference_differs("dockerd 20.10 words these errors differently")
def test_invalid_restart_policies(daemon: Daemon, busybox: str, name: str, policy: dict, message: str) -> None:
    body = json.dumps({"Image": BUSYBOX, "Cmd": ["true"], "HostConfig": {"RestartPolicy": policy}})
    resp = daemon.raw("POST", f"/containers/create?name={name}", body, {"Content-Type": "application/json"})
    assert resp.status == 400
    assert resp.json()["message"] == message
    assert daemon.raw("GET", f"/containers/{name}/json").status == 404


@pytest.mark.parametrize("policy, message", INVALID_POLICIES)
@pytest.mark.reference_differs("dockerd 20.10 words these errors differently")
def test_update_refuses_invalid_restart_policies_with_creates_words(
    daemon: Daemon, busybox: str, name: str, policy: dict, message: str
) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    resp = daemon.raw("POST", f"/containers/{name}/update", json.dumps({"RestartPolicy": policy}),
                      {"Content-Type": "application/json"})
    assert resp.status == 400
    assert resp.json()["message"] == message
    assert inspect(daemon, name)["HostConfig"]["RestartPolicy"]["Name"] == "no"


@pytest.mark.reference_differs("20.10 looks the container up before it checks the settings")
def test_update_of_a_missing_container_checks_the_policy_first(daemon: Daemon) -> None:
    body = json.dumps({"RestartPolicy": {"Name": "sometimes"}})
    resp = daemon.raw("POST", "/containers/no-such-container-here/update", body, {"Content-Type": "application/json"})
    assert resp.status == 400, "dockerd validates the settings before it looks the container up"


def test_auto_remove_with_restart_policy_refused(daemon: Daemon, busybox: str, name: str) -> None:
    body = json.dumps({"Image": BUSYBOX, "Cmd": ["true"],
                       "HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}})
    resp = daemon.raw("POST", f"/containers/create?name={name}", body, {"Content-Type": "application/json"})
    assert resp.status == 400
    assert "can't create 'AutoRemove' container with restart policy" in resp.json()["message"]
    assert daemon.raw("GET", f"/containers/{name}/json").status == 404


def test_cli_refuses_rm_with_restart(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("run", "--rm", "--restart", "always", "--name", name, BUSYBOX, "true")
    assert proc.returncode != 0
    assert "conflicting options: cannot specify both --restart and --rm" in proc.stderr


def _pid_gone(pid: int) -> bool:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_policies_applied_when_daemon_starts(daemon: Daemon, busybox: str, name: str) -> None:
    daemon.require_private()
    names = {p: f"{name}-{p}" for p in ("always", "unless", "onfail", "no", "rm")}
    ok(
        daemon.cli(
            "run", "-d", "--restart", "always", "--name", names["always"], BUSYBOX, "sh", "-c", "echo ready; " + LOOP
        )
    )
    ok(
        daemon.cli(
            "run",
            "-d",
            "--restart",
            "unless-stopped",
            "--name",
            names["unless"],
            BUSYBOX,
            "sh",
            "-c",
            "echo ready; " + LOOP,
        )
    )
    ok(
        daemon.cli(
            "run",
            "-d",
            "--restart",
            "on-failure",
            "--name",
            names["onfail"],
            BUSYBOX,
            "sh",
            "-c",
            "echo ready; " + LOOP,
        )
    )
    ok(daemon.cli("run", "-d", "--name", names["no"], BUSYBOX, "sh", "-c", "echo ready; " + LOOP))
    ok(daemon.cli("run", "-d", "--rm", "--name", names["rm"], BUSYBOX, "sh", "-c", "echo ready; " + LOOP))
    for n in names.values():
        wait_for_log(daemon, n, "ready")
    created_rm = ok(daemon.cli("create", "--rm", "--name", f"{name}-created-rm", BUSYBOX, "true")).strip()
    created_always = ok(daemon.cli("create", "--restart", "always", "--name", f"{name}-created-always",
                                   BUSYBOX, "sh", "-c", LOOP)).strip()
    ok(daemon.cli("stop", "-t", "0", names["always"]))   # stopped by the user: back at daemon start
    ok(daemon.cli("stop", "-t", "0", names["unless"]))   # stopped by the user: stays stopped
    pids = {p: state(daemon, names[p])["Pid"] for p in ("onfail", "no", "rm")}
    daemon.stop(kill9=True)
    try:
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)     # they die while the daemon is down
        wait_until(lambda: all(_pid_gone(p) for p in pids.values()), 20, "the processes to die")
    finally:
        daemon.start()
    wait_until(lambda: state(daemon, names["always"])["Running"], 30, "always to be started again")
    wait_until(lambda: state(daemon, names["onfail"])["Running"], 30, "on-failure (137) to be started again")
    wait_until(lambda: daemon.raw("GET", f"/containers/{names['rm']}/json").status == 404, 30,
               "the --rm container to be removed")
    wait_until(lambda: state(daemon, names["no"])["Status"] == "exited", 30, "no to be exited")
    assert state(daemon, names["no"])["ExitCode"] == 137
    assert state(daemon, names["unless"])["Status"] == "exited"
    # Never started: an `always` container stays created, a `--rm` one is removed.
    assert state(daemon, created_always)["Status"] == "created"
    assert daemon.raw("GET", f"/containers/{created_rm}/json").status == 404
    daemon.cli("rm", "-f", created_always)
    for p in ("always", "onfail"):
        assert inspect(daemon, names[p])["RestartCount"] == 0
    for p in ("always", "unless", "onfail", "no"):
        daemon.cli("rm", "-f", names[p])


def test_auto_remove_after_exit_but_not_on_docker_restart(daemon: Daemon, busybox: str, name: str) -> None:
    cid = ok(daemon.cli("run", "-d", "--rm", "--name", name, BUSYBOX, "sh", "-c",
                        'trap "exit 0" TERM; echo ready; ' + LOOP)).strip()
    wait_for_log(daemon, name, "ready")
    ok(daemon.cli("restart", "-t", "5", name))      # a restart is not an exit: the container stays
    info = inspect(daemon, name)
    assert info["Id"] == cid and info["State"]["Running"] is True
    ok(daemon.cli("stop", name))
    wait_until(lambda: daemon.raw("GET", f"/containers/{cid}/json").status == 404, 20, "auto-removal")


def test_daemon_killed_during_backoff_restarts_container(daemon: Daemon, busybox: str, name: str) -> None:
    daemon.require_private()
    cid = ok(daemon.cli("run", "-d", "--restart", "always", "--name", name, BUSYBOX, "sh", "-c", "exit 5")).strip()
    wait_until(lambda: state(daemon, name)["Status"] == "restarting", 30, "restarting", interval=0.02)
    daemon.stop(kill9=True)
    daemon.start()
    since = since_now()

    def started_again() -> bool:
        return any(e["Action"] == "start" for e in _events(daemon, since, cid))
    wait_until(started_again, 30, "a start after the daemon came back")
    ok(daemon.cli("stop", name))
    st = state(daemon, name)
    assert st["Status"] == "exited" and st["ExitCode"] == 5


def test_exec_refused_while_restarting(daemon: Daemon, busybox: str, name: str) -> None:
    cid = ok(daemon.cli("run", "-d", "--restart", "always", "--name", name, BUSYBOX, "false")).strip()
    seen: dict = {}

    def refused() -> bool:
        # Try while the state says restarting; the container may come up in between.
        if state(daemon, name)["Status"] != "restarting":
            return False
        resp = daemon.raw("POST", f"/containers/{cid}/exec", json.dumps({"Cmd": ["true"]}),
                          {"Content-Type": "application/json"})
        if resp.status == 409 and "restarting" in resp.json()["message"]:
            seen["exec"] = resp.json()["message"]
            return True
        return False
    wait_until(refused, 30, "an exec refused during the back-off", interval=0.02)
    assert seen["exec"] == f"Container {cid} is restarting, wait until the container is running"


def test_restart_policy_docker_py(client, busybox: str, name: str) -> None:
    c = client.containers.run(BUSYBOX, ["sh", "-c", "exit 4"], name=name, detach=True,
                              restart_policy={"Name": "on-failure", "MaximumRetryCount": 1})

    def done() -> bool:
        c.reload()
        return c.attrs["RestartCount"] == 1 and c.status == "exited"
    wait_until(done, 20, "one restart, then exited")
    assert c.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 1}
    assert c.attrs["State"]["ExitCode"] == 4
