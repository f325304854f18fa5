"""Container lifecycle: detach, logs, stop, kill, wait, rm, attach."""
from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import threading

import pytest

from conformance_tests.harness import Daemon, UnixHTTPConnection, socket_path_of
from conformance_tests.util import (
    StreamReader,
    cli_popen,
    inspect,
    ok,
    since_now,
    state,
    stop_proc,
    until_now,
    wait_for_log,
    wait_for_status,
)

BUSYBOX = "busybox"
# A process that says it is ready, then waits for a line on stdin or a USR1/TERM signal.
LOOP = "while :; do sleep 0.05; done"


def run_d(daemon: Daemon, name: str, script: str, *opts: str) -> str:
    return ok(daemon.cli("run", "-d", "--name", name, *opts, BUSYBOX, "sh", "-c", script)).strip()


def test_logs_follow_and_stop(daemon: Daemon, busybox: str, name: str) -> None:
    script = 'trap "echo after; exit 0" TERM; echo before; ' + LOOP
    run_d(daemon, name, script)
    wait_for_log(daemon, name, "before")
    follower = cli_popen(daemon, "logs", "-f", name)
    try:
        reader = StreamReader(follower)
        reader.read_until("before")
        proc = daemon.cli("stop", name)
        assert ok(proc).strip() == name
        out = reader.read_to_eof()
        assert out.splitlines() == ["before", "after"]
        assert follower.wait(timeout=10) == 0
    finally:
        stop_proc(follower)
    assert state(daemon, name)["ExitCode"] == 0


def test_stop_kills_after_timeout_when_term_is_ignored(daemon: Daemon, busybox: str, name: str) -> None:
    run_d(daemon, name, 'trap "" TERM; echo ready; ' + LOOP)
    wait_for_log(daemon, name, "ready")
    ok(daemon.cli("stop", "-t", "1", name))
    st = state(daemon, name)
    assert st["ExitCode"] == 137
    assert st["Status"] == "exited"


def test_stop_signal_is_honoured(daemon: Daemon, busybox: str, name: str) -> None:
    run_d(daemon, name, 'trap "echo got-usr1; exit 7" USR1; echo ready; ' + LOOP, "--stop-signal", "USR1")
    wait_for_log(daemon, name, "ready")
    assert inspect(daemon, name)["Config"]["StopSignal"] == "USR1"
    ok(daemon.cli("stop", name))
    assert state(daemon, name)["ExitCode"] == 7
    assert "got-usr1" in ok(daemon.cli("logs", name))


def test_stop_stopped_container_is_ok(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    assert ok(daemon.cli("stop", name)).strip() == name
    resp = daemon.raw("POST", f"/containers/{name}/stop")
    assert resp.status == 304


def test_start_started_container_is_304(daemon: Daemon, busybox: str, name: str) -> None:
    run_d(daemon, name, "echo ready; " + LOOP)
    assert daemon.raw("POST", f"/containers/{name}/start").status == 304


def test_logs_options(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "--name", name, BUSYBOX, "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done"))
    assert ok(daemon.cli("logs", name)).splitlines() == [f"line{i}" for i in range(1, 6)]
    assert ok(daemon.cli("logs", "--tail", "2", name)).splitlines() == ["line4", "line5"]
    assert ok(daemon.cli("logs", "--tail", "all", name)).count("line") == 5
    assert ok(daemon.cli("logs", "--tail", "0", name)) == ""
    ts_lines = ok(daemon.cli("logs", "--timestamps", name)).splitlines()
    assert len(ts_lines) == 5
    for line in ts_lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line\d", line), line
    first = ts_lines[0].split()[0]
    after = ok(daemon.cli("logs", "--since", "2099-01-01T00:00:00Z", name))
    assert after == ""
    before = ok(daemon.cli("logs", "--until", "2000-01-01T00:00:00Z", name))
    assert before == ""
    # --since is inclusive of an entry stamped exactly at that time
    assert ok(daemon.cli("logs", "--since", first, name)).splitlines()[0] == "line1"


def test_logs_docker_py(client, busybox: str, name: str) -> None:
    c = client.containers.run(BUSYBOX, ["sh", "-c", "echo one; echo two"], detach=True, name=name)
    c.wait(timeout=30)
    assert c.logs(tail=1) == b"two\n"
    stamped = c.logs(timestamps=True).decode().splitlines()
    ts = stamped[0].split()[0]
    parsed = dt.datetime.strptime(ts[:26], "%Y-%m-%dT%H:%M:%S.%f")
    assert abs((dt.datetime.utcnow() - parsed).total_seconds()) < 600
    assert b"".join(c.logs(stream=True, follow=True)) == b"one\ntwo\n"


def test_kill_named_and_numbered_signals(daemon: Daemon, busybox: str, name: str) -> None:
    run_d(daemon, name, 'trap "echo usr1" USR1; trap "echo hup" HUP; echo ready; ' + LOOP)
    wait_for_log(daemon, name, "ready")
    ok(daemon.cli("kill", "-s", "USR1", name))
    wait_for_log(daemon, name, "usr1")
    ok(daemon.cli("kill", "-s", "1", name))  # SIGHUP by number
    wait_for_log(daemon, name, "hup")
    ok(daemon.cli("kill", "-s", "SIGKILL", name))
    wait_for_status(daemon, name, "exited")
    assert state(daemon, name)["ExitCode"] == 137


def test_kill_default_is_sigkill_exit_137(daemon: Daemon, busybox: str, name: str) -> None:
    run_d(daemon, name, "echo ready; " + LOOP)
    wait_for_log(daemon, name, "ready")
    assert ok(daemon.cli("kill", name)).strip() == name
    wait_for_status(daemon, name, "exited")
    assert state(daemon, name)["ExitCode"] == 137
    assert ok(daemon.cli("wait", name)).strip() == "137"


def test_kill_not_running_is_409(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    resp = daemon.raw("POST", f"/containers/{name}/kill")
    assert resp.status == 409
    assert "is not running" in resp.message


def test_wait_cli(daemon: Daemon, busybox: str, name: str) -> None:
    assert daemon.cli("run", "--name", name, BUSYBOX, "sh", "-c", "exit 9").returncode == 9
    assert ok(daemon.cli("wait", name)).strip() == "9"


def _post_wait(daemon: Daemon, ref: str, condition: str) -> tuple[UnixHTTPConnection, object]:
    """Send a wait request and return once the daemon answered its headers (the wait is registered)."""
    conn = UnixHTTPConnection(socket_path_of(daemon.host), timeout=60)
    conn.request("POST", f"/containers/{ref}/wait?condition={condition}")
    return conn, conn.getresponse()


def test_wait_not_running_on_created_returns_at_once(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    conn, resp = _post_wait(daemon, name, "not-running")
    try:
        assert resp.status == 200
        assert json.loads(resp.read())["StatusCode"] == 0
    finally:
        conn.close()


def test_wait_next_exit(daemon: Daemon, busybox: str, name: str) -> None:
    run_d(daemon, name, 'trap "exit 5" USR1; echo ready; ' + LOOP)
    wait_for_log(daemon, name, "ready")
    conn, resp = _post_wait(daemon, name, "next-exit")
    try:
        assert resp.status == 200
        ok(daemon.cli("kill", "-s", "USR1", name))
        assert json.loads(resp.read())["StatusCode"] == 5
    finally:
        conn.close()


def test_wait_removed(daemon: Daemon, busybox: str, name: str) -> None:
    assert daemon.cli("run", "--name", name, BUSYBOX, "sh", "-c", "exit 2").returncode == 2
    conn, resp = _post_wait(daemon, name, "removed")
    try:
        assert resp.status == 200
        ok(daemon.cli("rm", name))
        assert json.loads(resp.read())["StatusCode"] == 2
    finally:
        conn.close()


def test_wait_docker_py(client, busybox: str, name: str) -> None:
    c = client.containers.create(BUSYBOX, ["sh", "-c", "exit 6"], name=name)
    c.start()
    assert c.wait(timeout=30) == {"StatusCode": 6, "Error": None} or c.wait(timeout=30)["StatusCode"] == 6


@pytest.mark.reference_differs("dockerd 20.10 says: You cannot remove a running container <id>. ...")
def test_rm_running_needs_force(daemon: Daemon, busybox: str, name: str) -> None:
    cid = run_d(daemon, name, "echo ready; " + LOOP)
    proc = daemon.cli("rm", name)
    assert proc.returncode == 1
    assert (f'cannot remove container "/{name}": container is running: stop the container before removing '
            "or force remove") in proc.stderr
    assert state(daemon, name)["Running"] is True
    assert ok(daemon.cli("rm", "-f", name)).strip() == name
    assert daemon.raw("GET", f"/containers/{cid}/json").status == 404


def test_rm_v_removes_anonymous_volume(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "--name", name, "-v", "/data", BUSYBOX, "sh", "-c", "echo x > /data/f"))
    mounts = inspect(daemon, name)["Mounts"]
    assert len(mounts) == 1 and mounts[0]["Type"] == "volume" and mounts[0]["Destination"] == "/data"
    vol = mounts[0]["Name"]
    assert vol in ok(daemon.cli("volume", "ls", "-q")).split()
    ok(daemon.cli("rm", "-v", name))
    assert vol not in ok(daemon.cli("volume", "ls", "-q")).split()


def test_rm_unknown(daemon: Daemon) -> None:
    proc = daemon.cli("rm", "no-such-container-x")
    assert proc.returncode == 1
    assert "No such container: no-such-container-x" in proc.stderr


def test_attach_before_start_with_buffered_stdin(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "-i", "--name", name, BUSYBOX, "sh", "-c", "read a; read b; echo got:$a:$b"))
    proc = daemon.cli("start", "-ai", name, input="x\ny\n")
    assert ok(proc) == "got:x:y\n"
    assert state(daemon, name)["ExitCode"] == 0


def test_attach_to_running_container(daemon: Daemon, busybox: str, name: str) -> None:
    run_d(daemon, name, "echo ready; read line; echo echo:$line", "-i")
    wait_for_log(daemon, name, "ready")
    attacher = subprocess.Popen(
        [*__import__("conformance_tests.harness", fromlist=["DOCKER_CLI"]).DOCKER_CLI.split(), "attach", name],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=daemon.cli_env(),
    )
    try:
        assert attacher.stdin is not None
        attacher.stdin.write(b"ping\n")
        attacher.stdin.flush()
        out = StreamReader(attacher).read_until("echo:ping")
        assert "echo:ping" in out
        assert attacher.wait(timeout=20) == 0
    finally:
        stop_proc(attacher)


def test_docker_py_attach_socket_like_compose(client, busybox: str, name: str) -> None:
    """Attach with stream+logs before start, as compose and docker-py's run do."""
    c = client.containers.create(BUSYBOX, ["sh", "-c", "echo first; echo second"], name=name)
    stream = c.attach(stream=True, logs=True, stdout=True, stderr=True)
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.extend(stream), daemon=True)
    t.start()
    c.start()
    t.join(timeout=30)
    assert not t.is_alive()
    assert b"".join(got) == b"first\nsecond\n"


@pytest.mark.parametrize("restart", ["no", "on-failure:2"])
def test_restart_policy_in_inspect(daemon: Daemon, busybox: str, name: str, restart: str) -> None:
    ok(daemon.cli("create", "--restart", restart, "--name", name, BUSYBOX, "true"))
    policy = inspect(daemon, name)["HostConfig"]["RestartPolicy"]
    want_name, _, count = restart.partition(":")
    assert policy["Name"] == want_name
    assert policy["MaximumRetryCount"] == int(count or 0)


def _prune(daemon: Daemon, flt: dict | None = None) -> tuple[int, dict]:
    import urllib.parse
    query = "?filters=" + urllib.parse.quote(json.dumps(flt)) if flt is not None else ""
    resp = daemon.raw("POST", "/containers/prune" + query)
    return resp.status, resp.json()


def test_container_prune_filters_and_events(daemon: Daemon, busybox: str, name: str) -> None:
    keep_running = run_d(daemon, name + "-run", "echo ready; " + LOOP, "-l", "prune-t=1")
    old = ok(daemon.cli("create", "--name", name + "-old", "-l", "prune-t=1", "-l", "tier=db", BUSYBOX, "true")).strip()
    web = ok(
        daemon.cli("create", "--name", name + "-web", "-l", "prune-t=1", "-l", "tier=web", BUSYBOX, "true")
    ).strip()
    other = ok(daemon.cli("create", "--name", name + "-other", BUSYBOX, "true")).strip()
    try:
        status, body = _prune(daemon, {"label": ["prune-t=1"], "label!": ["tier=web"], "until": ["-1h"]})
        assert status == 200
        assert body == {"ContainersDeleted": [old], "SpaceReclaimed": body["SpaceReclaimed"]}, body
        assert isinstance(body["SpaceReclaimed"], int)
        since = since_now()
        status, body = _prune(daemon, {"label": ["prune-t"], "until": ["1h"]})   # all created less than 1h ago
        assert status == 200 and body["ContainersDeleted"] is None, body
        status, body = _prune(daemon, {"label": ["prune-t"]})
        assert status == 200 and body["ContainersDeleted"] == [web], body
        out = ok(daemon.cli("events", "--since", since, "--until", until_now(), "--format", "{{json .}}"))
        # (other tests' late events may fall into the window: keep this test's own)
        events = [e for e in map(json.loads, out.splitlines())
                  if e["Type"] == "container" and e["Actor"]["ID"] in ("", web)]
        assert [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in events] == [
            ("container", "prune", ""), ("container", "destroy", web), ("container", "prune", "")]
        assert events[0]["Actor"]["Attributes"] == {"reclaimed": "0"}
        assert set(events[2]["Actor"]["Attributes"]) == {"reclaimed"}
        assert state(daemon, keep_running)["Running"] is True       # running containers are never pruned
        assert daemon.raw("GET", f"/containers/{other}/json").status == 200
    finally:
        for n in ("-run", "-old", "-web", "-other"):
            daemon.cli("rm", "-f", name + n)


@pytest.mark.parametrize("flt, message", [
    ({"bogus": ["1"]}, "invalid filter 'bogus'"),
    ({"until": ["abc"]}, 'failed to parse value as time or duration: "abc"'),
    ({"until": ["1h", "2h"]}, "more than one until filter specified"),
])
def test_container_prune_bad_filters(daemon: Daemon, busybox: str, name: str, flt: dict, message: str) -> None:
    cid = ok(daemon.cli("create", "--name", name, BUSYBOX, "true")).strip()
    status, body = _prune(daemon, flt)
    assert status in (400, 500)      # dockerd 20.10 answers 500 for the `until` ones
    assert body["message"].lower() == message.lower()
    assert daemon.raw("GET", f"/containers/{cid}/json").status == 200   # nothing removed


def test_container_prune_cli(daemon: Daemon, busybox: str, name: str) -> None:
    cid = ok(daemon.cli("create", "--name", name, "-l", "prune-cli=1", BUSYBOX, "true")).strip()
    out = ok(daemon.cli("container", "prune", "-f", "--filter", "label=prune-cli=1"))
    assert out.splitlines()[:2] == ["Deleted Containers:", cid]
    assert "Total reclaimed space:" in out
    assert daemon.raw("GET", f"/containers/{cid}/json").status == 404


def test_rm_link_on_non_link_is_refused(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    proc = daemon.cli("rm", "--link", name)
    assert proc.returncode == 1
    assert "Conflict, cannot remove the default link name of the container" in proc.stderr
    assert daemon.raw("GET", f"/containers/{name}/json").status == 200


def test_rm_force_removes_running_container_and_emits_kill_die_destroy(daemon: Daemon, busybox: str, name: str) -> None:
    since = since_now()
    cid = run_d(daemon, name, "echo ready; " + LOOP)
    ok(daemon.cli("rm", "-f", "-v", name))
    assert daemon.raw("GET", f"/containers/{cid}/json").status == 404
    out = ok(daemon.cli("events", "--since", since, "--until", until_now(), "--filter", f"container={cid}",
                        "--format", "{{.Action}}"))
    assert out.split() == ["create", "start", "kill", "die", "destroy"]


def test_container_prune_docker_py(client, busybox: str, name: str) -> None:
    c = client.containers.create(BUSYBOX, ["true"], name=name, labels={"prune-py": "1"})
    report = client.containers.prune(filters={"label": "prune-py=1"})
    assert report["ContainersDeleted"] == [c.id] and isinstance(report["SpaceReclaimed"], int)
    assert client.containers.prune(filters={"label": "prune-py=1"})["ContainersDeleted"] is None


def test_rm_link_unknown_is_404(daemon: Daemon) -> None:
    resp = daemon.raw("DELETE", "/containers/no-such-link-x?link=1")
    assert resp.status == 404
    assert resp.json()["message"] == "No such container: no-such-link-x"
