"""The per-container supervisor (pydockerd's shim, dockerd's containerd-shim) and what starts
shims (pydockerd's shim parent, dockerd's containerd): what survives whose death."""
from __future__ import annotations

import os
import signal
from pathlib import Path

from conformance_tests.harness import Daemon, ReferenceDockerd, processes_mentioning, wait_until
from conformance_tests.util import ok, state, wait_for_log

BUSYBOX = "busybox"
MANY = 50
COUNTER = 'i=0; while :; do echo "n=$i"; i=$((i+1)); sleep 0.2; done'
SHIM_MARKER = {"pydockerd": "engine.runtime.shim", "dockerd": "containerd-shim"}


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _counts(daemon: Daemon, name: str) -> list[int]:
    out = ok(daemon.cli("logs", name))
    return [int(line[2:]) for line in out.splitlines() if line.startswith("n=")]


def _shim_of(daemon: Daemon, cid: str) -> int:
    pids = processes_mentioning(SHIM_MARKER[daemon.kind], cid)
    assert len(pids) == 1, f"expected one shim naming {cid}, found {pids}"
    return pids[0]


def _starter(daemon: Daemon) -> int:
    """The process that starts shims: pydockerd's shim parent, dockerd's containerd."""
    if daemon.kind == "dockerd":
        assert isinstance(daemon.proc, ReferenceDockerd) and daemon.proc.containerd is not None
        return daemon.proc.containerd.pid
    assert daemon.pid is not None
    pids = [p for p in processes_mentioning("shim-parent", str(daemon.exec_root))
            if Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(daemon.pid)]
    assert len(pids) == 1, f"expected one shim parent, found {pids}"
    return pids[0]


def test_kill9_daemon_with_many_containers(daemon: Daemon, busybox: str, name: str) -> None:
    """All keep running, the restarted daemon reconnects to each, and no output is lost."""
    daemon.require_private()
    names = [f"{name}-{i}" for i in range(MANY)]
    try:
        for n in names:
            ok(daemon.cli("run", "-d", "--name", n, BUSYBOX, "sh", "-c", COUNTER))
        for n in names:
            wait_for_log(daemon, n, "n=1")
        pids = {n: state(daemon, n)["Pid"] for n in names}
        daemon.restart(kill9=True)
        assert [n for n, p in pids.items() if _gone(p)] == [], "containers died with the daemon"
        running = set(ok(daemon.cli("ps", "--filter", f"name={name}-", "--format", "{{.Names}}")).split())
        assert running == set(names)
        after = {n: max(_counts(daemon, n)) for n in names}

        def all_logged_past_restart() -> bool:
            return all(max(_counts(daemon, n)) > after[n] + 1 for n in names)
        wait_until(all_logged_past_restart, 60, "output written after the restart in every log")
        for n in names:
            seen = _counts(daemon, n)
            assert seen == list(range(len(seen))), f"{n}: a gap in the log across the restart"
        assert ok(daemon.cli("exec", names[0], "echo", "reconnected")).strip() == "reconnected"
        ok(daemon.cli("kill", names[-1]))
        wait_until(lambda: state(daemon, names[-1])["Status"] == "exited", 20, "the killed container to exit")
        assert state(daemon, names[-1])["ExitCode"] == 137
    finally:
        daemon.cli("rm", "-f", *names, timeout=300)


def test_kill9_shim_starter(daemon: Daemon, busybox: str, name: str) -> None:
    """Killing what starts shims leaves running containers alone; the next run works."""
    daemon.require_private()
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sh", "-c", COUNTER))
    wait_for_log(daemon, name, "n=1")
    pid = state(daemon, name)["Pid"]
    starter = _starter(daemon)
    os.kill(starter, signal.SIGKILL)
    wait_until(lambda: _gone(starter), 10, "the killed process to exit")
    if daemon.kind == "dockerd":
        assert isinstance(daemon.proc, ReferenceDockerd) and daemon.proc.containerd is not None
        daemon.proc.containerd.wait()
        daemon.proc.start_containerd()  # containerd's supervisor (systemd) restarts it
    assert not _gone(pid)

    def run_works() -> bool:
        # dockerd reconnects to the restarted containerd on its own time; pydockerd must
        # start the next container at once (a new shim parent, or a fresh interpreter).
        proc = daemon.cli("run", "--rm", BUSYBOX, "echo", "next")
        assert proc.returncode == 0 or daemon.kind == "dockerd", proc.stderr
        return proc.returncode == 0 and proc.stdout.strip() == "next"
    wait_until(run_works, 60, "a container to run after the kill")
    st = state(daemon, name)
    assert st["Running"] is True and st["Pid"] == pid
    assert ok(daemon.cli("exec", name, "echo", "still")).strip() == "still"
    if daemon.kind == "pydockerd":
        assert _starter(daemon) != starter, "a new shim parent serves the next starts"
    ok(daemon.cli("rm", "-f", name))


def test_killed_shim_records_the_container_as_killed(daemon: Daemon, busybox: str, name: str) -> None:
    cid = ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sleep", "1000")).strip()
    pid = state(daemon, name)["Pid"]
    _wait_exec(pid, "sleep 1000")  # until its execve the init carries its shim's command line
    shim = _shim_of(daemon, cid)
    os.kill(shim, signal.SIGKILL)
    wait_until(lambda: state(daemon, name)["Status"] == "exited", 30, "the container to be recorded as exited")
    st = state(daemon, name)
    assert (st["Running"], st["Pid"], st["ExitCode"], st["Error"], st["OOMKilled"]) == (False, 0, 137, "", False)
    wait_until(lambda: _gone(pid), 10, "the container's process to be gone")
    assert ok(daemon.cli("wait", name)).strip() == "137"
    ok(daemon.cli("start", name))  # and it runs again
    assert state(daemon, name)["Running"] is True
    ok(daemon.cli("rm", "-f", name))
    assert processes_mentioning(SHIM_MARKER[daemon.kind], cid) == []


def _fds(pid: int) -> dict[int, str]:
    base = f"/proc/{pid}/fd"
    return {int(fd): os.readlink(f"{base}/{fd}") for fd in os.listdir(base)}


def _locks_held_by(pid: int) -> list[str]:
    return [line for line in Path("/proc/locks").read_text().splitlines() if line.split()[4] == str(pid)]


def _wait_exec(pid: int, cmdline: str) -> None:
    """A started container's process may not have reached its execve yet (its runtime's
    descriptors close there): wait until it runs ``cmdline``."""
    def running() -> bool:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip() == cmdline
    wait_until(running, 10, f"process {pid} to exec {cmdline!r}")


def test_container_processes_hold_only_their_stdio(daemon: Daemon, busybox: str, name: str) -> None:
    """Nothing of the daemon or of the process that forked the shim reaches a container."""
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sleep", "1000"))
    pid = state(daemon, name)["Pid"]
    _wait_exec(pid, "sleep 1000")
    fds = _fds(pid)
    assert sorted(fds) == [0, 1, 2], fds
    assert fds[0] == "/dev/null" and fds[1].startswith("pipe:") and fds[2].startswith("pipe:"), fds
    assert _locks_held_by(pid) == []
    ok(daemon.cli("exec", "-d", name, "sleep", "999"))

    def exec_pid() -> int | None:
        rows = ok(daemon.cli("top", name, "-o", "pid,args")).splitlines()[1:]
        found = [int(r.split()[0]) for r in rows if "sleep 999" in r]
        return found[0] if found else None
    wait_until(lambda: exec_pid() is not None, 20, "the exec'd process to show in top")
    epid = exec_pid()
    assert epid is not None
    _wait_exec(epid, "sleep 999")
    efds = _fds(epid)
    assert sorted(efds) == [0, 1, 2], efds
    assert _locks_held_by(epid) == []
    ok(daemon.cli("rm", "-f", name))


def test_tty_container_holds_only_its_terminal(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "-t", "--name", name, BUSYBOX, "sleep", "1000"))
    pid = state(daemon, name)["Pid"]
    _wait_exec(pid, "sleep 1000")
    fds = _fds(pid)
    assert sorted(fds) == [0, 1, 2] and len(set(fds.values())) == 1, fds
    assert fds[0].startswith("/dev/pts/"), fds
    ok(daemon.cli("rm", "-f", name))
