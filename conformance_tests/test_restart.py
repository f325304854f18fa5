"""The daemon dies (kill -9) with containers running; after a restart they are still managed."""
from __future__ import annotations

import os
import signal
from pathlib import Path

from conformance_tests.harness import Daemon, wait_until
from conformance_tests.util import StreamReader, cli_popen, inspect, ok, state, stop_proc, wait_for_log

BUSYBOX = "busybox"
SCRIPT = (
    'trap "echo tick" USR1; trap "echo bye; exit 0" TERM; trap "exit 42" USR2; echo ready; while :; do sleep 0.05; done'
)


def _pid_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_kill9_restart_keeps_running_container(daemon: Daemon, busybox: str, name: str) -> None:
    daemon.require_private()
    cid = ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sh", "-c", SCRIPT)).strip()
    wait_for_log(daemon, name, "ready")
    pid = state(daemon, name)["Pid"]
    daemon.restart(kill9=True)
    assert not _pid_gone(pid), "the container's process must survive the daemon's death"
    ps = ok(daemon.cli("ps", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}}")).splitlines()
    assert f"{cid} {name} running" in ps
    st = state(daemon, name)
    assert st["Running"] is True and st["Pid"] == pid
    follower = cli_popen(daemon, "logs", "-f", name)
    try:
        reader = StreamReader(follower)
        reader.read_until("ready")
        ok(daemon.cli("kill", "-s", "USR1", name))
        reader.read_until("tick")  # written after the restart: logs are still collected and followed
        ok(daemon.cli("stop", name))
        out = reader.read_to_eof()
        assert out.splitlines() == ["ready", "tick", "bye"]
    finally:
        stop_proc(follower)
    st = state(daemon, name)
    assert st["Status"] == "exited" and st["ExitCode"] == 0


def test_container_exiting_while_daemon_down_reports_exit_code(daemon: Daemon, busybox: str, name: str) -> None:
    daemon.require_private()
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sh", "-c", SCRIPT))
    wait_for_log(daemon, name, "ready")
    pid = state(daemon, name)["Pid"]
    daemon.stop(kill9=True)
    try:
        os.kill(pid, signal.SIGUSR2)  # the container's own handler exits 42
        wait_until(lambda: _pid_gone(pid), 20, "the container's process to exit")
    finally:
        daemon.start()
    wait_until(lambda: state(daemon, name)["Status"] == "exited", 20, "the daemon to notice the exit")
    st = state(daemon, name)
    assert st["ExitCode"] == 42 and st["Running"] is False and st["Pid"] == 0
    assert ok(daemon.cli("wait", name)).strip() == "42"
    assert name in ok(daemon.cli("ps", "-a", "--filter", "exited=42", "--format", "{{.Names}}")).split()
    ok(daemon.cli("start", name))  # and it can be started again
    wait_for_log(daemon, name, "ready")
    assert inspect(daemon, name)["State"]["Running"] is True


def test_live_restore_false_stops_containers_when_the_daemon_shuts_down(daemon: Daemon, busybox: str,
                                                                        name: str) -> None:
    """--live-restore=false (dockerd's default): a graceful daemon shutdown stops the containers
    (stop signal, then SIGKILL after the stop timeout); they are exited when the daemon is back."""
    daemon.require_private()
    try:
        daemon.stop()
        daemon.extra_args.append("--live-restore=false")   # the last one counts, on both daemons
        daemon.start()
        assert daemon.raw("GET", "/info").json()["LiveRestoreEnabled"] is False
        ok(daemon.cli("run", "-d", "--name", name, "--stop-timeout", "1", BUSYBOX, "sh", "-c",
                      "trap 'echo got-term' TERM; echo ready; while :; do sleep 0.05; done"))
        wait_for_log(daemon, name, "ready")
        pid = state(daemon, name)["Pid"]
        daemon.stop()                                            # SIGTERM: a graceful shutdown
        assert _pid_gone(pid), "a shutdown without live restore stops the containers"
    finally:
        daemon.extra_args.remove("--live-restore=false")
        if daemon.pid is None:
            daemon.start()
    st = state(daemon, name)
    assert st["Status"] == "exited" and st["ExitCode"] == 137    # the trap ignored TERM: killed
    assert "got-term" in ok(daemon.cli("logs", name))
    assert daemon.raw("GET", "/info").json()["LiveRestoreEnabled"] is True   # the session daemon again
