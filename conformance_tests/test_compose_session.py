"""docker compose v2 beyond `up -d`: attached `up` stopped with Ctrl-C, `logs -f`, `exec` with a
tty, `events --json` around a `restart`; bad input (an unhealthy dependency, a published port
already taken, a missing build context) ending with compose's own error and nothing half-made; and
compose's labels and label filters compared with a peer daemon of the other kind.

Networks declared here take netenv.compose_subnet(13..15) (0-12 belong to test_compose.py and the
client-tool tests).
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from conformance_tests import netenv
from conformance_tests.harness import DOCKER_CLI, Daemon, wait_until
from conformance_tests.images import build_busybox_rootfs
from conformance_tests.peer import make_peer
from conformance_tests.test_compose import Project
from conformance_tests.util import ok

# a service that says when it started, waits for a file exec creates, says so, and idles; it
# answers SIGTERM at once (sh as pid 1 would ignore it and make every stop wait for the timeout)
TICKER = textwrap.dedent("""\
    name: {project}
    services:
      app:
        image: busybox
        init: true
        command: ["sh", "-c", "echo app-started; until [ -f /tmp/go ]; do sleep 0.1; done;
                              echo after-go; exec sleep 600"]
        stop_grace_period: 5s
      side:
        image: busybox
        init: true
        command: ["sh", "-c", "echo side-started; exec sleep 600"]
    networks:
      default:
        ipam:
          config:
            - subnet: "{subnet}"
    """)


def _project(daemon: Daemon, root: Path, text: str, slot: int = 13, **more: object) -> Project:
    name = f"cmq{uuid.uuid4().hex[:8]}"
    d = root / name
    d.mkdir(parents=True)
    (d / "compose.yaml").write_text(text.format(project=name, subnet=netenv.compose_subnet(slot), **more))
    return Project(daemon, name, d)


def _popen(p: Project, *args: str, **kw: Any) -> subprocess.Popen[str]:
    env = {**p.daemon.cli_env(), "DOCKER_BUILDKIT": "0"}
    return subprocess.Popen([DOCKER_CLI, "compose", "--project-directory", str(p.dir), "-f",
                             str(p.dir / "compose.yaml"), "-p", p.name, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, env=env, **kw)


class LineReader:
    """Lines of a child's stdout read as they come, with a deadline for each wait."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buf = b""
        self.lines: list[str] = []
        self.eof = False

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.eof = True
            return
        self.buf += chunk
        *done, self.buf = self.buf.split(b"\n")
        self.lines += [line.decode(errors="replace") for line in done]

    def wait_for(self, predicate: Any, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            if self.eof:
                raise AssertionError(f"output ended before {what}:\n" + "\n".join(self.lines))
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out waiting for {what}:\n" + "\n".join(self.lines))
            self._read(min(left, 1.0))

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._read(min(deadline - time.monotonic(), 1.0))


def _end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def _states(p: Project) -> dict[str, str]:
    return {str(c["Names"]): str(c["State"]) for c in p.containers()}


def test_up_attached_streams_prefixed_output_and_ctrl_c_stops_it(daemon: Daemon, busybox: str,
                                                                  tmp_path: Path) -> None:
    p = _project(daemon, tmp_path, TICKER)
    proc = _popen(p, "up", "--no-color")
    try:
        out = LineReader(proc)
        out.wait_for(lambda line: _says(line, "app-1", "app-started"), 120, "app's first prefixed line")
        out.wait_for(lambda line: _says(line, "side-1", "side-started"), 120, "side's first line")
        # output made after `up` attached is streamed too
        p.ok("exec", "-T", "app", "touch", "/tmp/go")
        out.wait_for(lambda line: _says(line, "app-1", "after-go"), 60, "app's new line")
        proc.send_signal(signal.SIGINT)             # what Ctrl-C on the terminal sends compose
        proc.wait(timeout=120)
        out.drain(10)
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert proc.returncode == 130, (proc.returncode, out.lines, err)
        assert out.lines[0] == "Attaching to app-1, side-1", out.lines
        assert out.lines[-1] == "Gracefully Stopping... press Ctrl+C again to force", out.lines
        assert f" Container {p.name}-app-1  Stopped" in err.splitlines(), err
        assert f" Container {p.name}-side-1  Stopped" in err.splitlines(), err
        # tini passed on compose's SIGTERM: the processes ended by it
        assert _exit_codes(p, "app-1", "side-1") == [143, 143]
        states = _states(p)
        assert states == {f"{p.name}-app-1": "exited", f"{p.name}-side-1": "exited"}, states
    finally:
        _end(proc)
        p.compose("down", "-v", "--timeout", "1")


def _says(line: str, replica: str, text: str) -> bool:
    """A log line of compose's: the replica's name, padded to the longest one shown so far, '| ', text."""
    prefix, sep, rest = line.partition(" | ")
    return bool(sep) and prefix.rstrip(" ") == replica and rest == text


def _exit_codes(p: Project, *replicas: str) -> list[int]:
    return [int(p.daemon.client.containers.get(f"{p.name}-{r}").attrs["State"]["ExitCode"]) for r in replicas]


STUBBORN = textwrap.dedent("""\
    name: {project}
    services:
      app:
        image: busybox
        # sleep as pid 1 ignores SIGTERM: only a kill ends it
        command: ["sleep", "600"]
        stop_grace_period: 2s
    networks:
      default:
        ipam:
          config:
            - subnet: "{subnet}"
    """)


def test_ctrl_c_typed_on_a_terminal(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    """compose on a pty: ^C from the terminal (SIGINT to its process group) stops the project.
    (A second ^C while a stop is still waiting out a grace period leaves compose 2.40 hanging against
    either daemon, so it is not tested.)"""
    p = _project(daemon, tmp_path, TICKER)
    env = {**daemon.cli_env(), "DOCKER_BUILDKIT": "0"}
    child = pexpect.spawn(DOCKER_CLI, ["compose", "--project-directory", str(p.dir), "-p", p.name, "up",
                                       "--menu=false", "--no-color"], env=env, timeout=120, encoding="utf-8",
                          dimensions=(40, 160))
    try:
        child.expect("Attaching to app-1, side-1")
        child.expect(r"app-1 +\| app-started")
        wait_until(lambda: set(_states(p).values()) == {"running"}, 60, "both services to run")
        child.sendcontrol("c")
        child.expect("Gracefully Stopping")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 130, (child.exitstatus, child.signalstatus, child.before)
        assert _states(p) == {f"{p.name}-app-1": "exited", f"{p.name}-side-1": "exited"}
        assert _exit_codes(p, "app-1", "side-1") == [143, 143]
    finally:
        if child.isalive():
            child.terminate(force=True)
        p.compose("down", "-v", "--timeout", "1")


def test_ctrl_c_kills_what_ignores_sigterm_after_its_grace_period(daemon: Daemon, busybox: str,
                                                                 tmp_path: Path) -> None:
    p = _project(daemon, tmp_path, STUBBORN)
    proc = _popen(p, "up", "--no-color")
    try:
        out = LineReader(proc)
        out.wait_for(lambda line: line == "Attaching to app-1", 120, "compose to attach")
        wait_until(lambda: _states(p) == {f"{p.name}-app-1": "running"}, 60, "app to run")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        out.drain(10)
        assert proc.returncode == 130, out.lines
        assert out.lines[-1] == "Gracefully Stopping... press Ctrl+C again to force", out.lines
        assert _states(p) == {f"{p.name}-app-1": "exited"}
        assert _exit_codes(p, "app-1") == [137]    # the daemon's SIGKILL once the grace period ran out
    finally:
        _end(proc)
        p.compose("down", "-v", "--timeout", "1")


def test_up_exit_code_from_a_service_stops_the_others(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    p = _project(daemon, tmp_path, textwrap.dedent("""\
        name: {project}
        services:
          job:
            image: busybox
            command: ["sh", "-c", "echo job-done; exit 3"]
          side:
            image: busybox
            init: true
            command: ["sleep", "600"]
        networks:
          default:
            ipam:
              config:
                - subnet: "{subnet}"
        """))
    try:
        proc = p.compose("up", "--no-color", "--exit-code-from", "job", timeout=300)
        assert proc.returncode == 3, (proc.stdout, proc.stderr)
        lines = [line.replace("\x1b[K", "") for line in proc.stdout.splitlines() if line.strip()]
        assert _says(lines[1], "job-1", "job-done"), lines
        assert {"job-1 exited with code 3", "side-1 exited with code 143"} <= set(lines), lines
        assert "Aborting on container exit..." in proc.stderr, proc.stderr
        assert _states(p) == {f"{p.name}-job-1": "exited", f"{p.name}-side-1": "exited"}
    finally:
        p.compose("down", "-v", "--timeout", "1")


def test_logs_follow_streams_new_prefixed_lines_and_ends_when_the_project_stops(daemon: Daemon, busybox: str,
                                                                               tmp_path: Path) -> None:
    p = _project(daemon, tmp_path, TICKER)
    try:
        p.ok("up", "-d", timeout=300)
        proc = _popen(p, "logs", "-f", "--no-color")
        try:
            out = LineReader(proc)
            out.wait_for(lambda line: _says(line, "app-1", "app-started"), 60, "app's earlier line")
            out.wait_for(lambda line: _says(line, "side-1", "side-started"), 60, "side's earlier line")
            assert not any("after-go" in line for line in out.lines)
            p.ok("exec", "-T", "app", "touch", "/tmp/go")
            out.wait_for(lambda line: _says(line, "app-1", "after-go"), 60, "a line written after logs -f started")
            tail = p.ok("logs", "--no-color", "--timestamps", "--tail", "1", "app").splitlines()
            assert len(tail) == 1 and re.fullmatch(
                r"app-1 +\| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z after-go", tail[0]), tail
            assert p.ok("logs", "--no-log-prefix", "side") == "side-started\n"
            p.ok("stop", "--timeout", "5")
            proc.wait(timeout=60)                   # following ends once every container stopped
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            _end(proc)
    finally:
        p.compose("down", "-v", "--timeout", "1")


def test_exec_with_a_tty(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    p = _project(daemon, tmp_path, TICKER)
    try:
        p.ok("up", "-d", timeout=300)
        env = {**daemon.cli_env(), "DOCKER_BUILDKIT": "0"}
        child = pexpect.spawn(DOCKER_CLI, ["compose", "--project-directory", str(p.dir), "-p", p.name,
                                           "exec", "app", "sh"], env=env, timeout=60, encoding="utf-8",
                              dimensions=(33, 101))
        try:
            child.expect(r"[#$] ")
            child.sendline("tty; stty size; exit 7")
            child.expect(r"/dev/pts/\d+")
            child.expect(r"33 101")
            child.expect(pexpect.EOF)
        finally:
            child.close()
        assert child.exitstatus == 7, (child.exitstatus, child.before)
    finally:
        p.compose("down", "-v", "--timeout", "1")


def test_run_rm_with_a_tty(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    p = _project(daemon, tmp_path, TICKER)
    try:
        env = {**daemon.cli_env(), "DOCKER_BUILDKIT": "0"}
        child = pexpect.spawn(DOCKER_CLI, ["compose", "--project-directory", str(p.dir), "-p", p.name,
                                           "run", "--rm", "-e", "WHO=tty-run", "--no-deps", "side", "sh"],
                              env=env, timeout=120, encoding="utf-8", dimensions=(40, 120))
        try:
            child.expect(r"[#$] ")
            child.sendline('tty; stty size; echo "$WHO"; exit 5')
            child.expect(r"/dev/pts/\d+")
            child.expect(r"40 120")
            child.expect(r"tty-run")
            child.expect(pexpect.EOF)
        finally:
            child.close()
        assert child.exitstatus == 5, (child.exitstatus, child.before)
        wait_until(lambda: _states(p) == {}, 60, "the one-off container to be removed")
    finally:
        p.compose("down", "-v", "--timeout", "1")


def test_events_json_reports_a_restart(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    p = _project(daemon, tmp_path, TICKER)
    try:
        p.ok("up", "-d", timeout=300)
        proc = _popen(p, "events", "--json")
        try:
            out = LineReader(proc)
            # nothing tells when compose has subscribed: exec in the other service until its
            # event comes through, then restart
            def probe(line: str) -> bool:
                return bool(json.loads(line).get("service") == "side")
            deadline = time.monotonic() + 60
            while True:
                p.ok("exec", "-T", "side", "true")
                try:
                    out.wait_for(probe, 2, "an event of the probe exec")
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
            out.lines.clear()
            p.ok("restart", "--timeout", "5", "app")
            seen: list[dict[str, Any]] = []

            def event(line: str) -> bool:
                ev = json.loads(line)
                if ev.get("service") == "side":     # the probe's exec_die and the like
                    return False
                seen.append(ev)
                return bool(ev.get("action") == "restart")
            out.wait_for(event, 60, "the restart event")
        finally:
            _end(proc)
        actions = [ev["action"] for ev in seen]
        assert actions == ["kill", "die", "stop", "start", "restart"], seen
        assert seen[0]["attributes"]["signal"] == "15" and seen[1]["attributes"]["exitCode"] == "143", seen
        for ev in seen:
            assert ev["type"] == "container" and ev["service"] == "app", ev
            assert ev["attributes"]["name"] == f"{p.name}-app-1", ev
            assert ev["attributes"]["image"] == "busybox", ev
            assert len(ev["id"]) == 64 and ev["time"], ev
    finally:
        p.compose("down", "-v", "--timeout", "1")


# ---------------------------------------------------------------- bad input

def test_an_unhealthy_dependency_fails_up_wait(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    p = _project(daemon, tmp_path, textwrap.dedent("""\
        name: {project}
        services:
          db:
            image: busybox
            init: true
            command: ["sleep", "600"]
            healthcheck:
              test: ["CMD", "false"]
              interval: 1s
              timeout: 2s
              retries: 2
          app:
            image: busybox
            command: ["sleep", "600"]
            depends_on:
              db:
                condition: service_healthy
        networks:
          default:
            ipam:
              config:
                - subnet: "{subnet}"
        """), slot=14)
    try:
        proc = p.compose("up", "-d", "--wait", timeout=300)
        assert proc.returncode == 1, (proc.returncode, proc.stderr)
        assert f"dependency failed to start: container {p.name}-db-1 is unhealthy" in proc.stderr, proc.stderr
        states = _states(p)
        assert states == {f"{p.name}-db-1": "running", f"{p.name}-app-1": "created"}, states
        health = daemon.client.containers.get(f"{p.name}-db-1").attrs["State"]["Health"]["Status"]
        assert health == "unhealthy"
    finally:
        p.compose("down", "-v", "--timeout", "1")
    assert _states(p) == {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_published_port_already_taken_on_the_host(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    p = _project(daemon, tmp_path, textwrap.dedent("""\
        name: {project}
        services:
          web:
            image: busybox
            init: true
            command: ["sleep", "600"]
            ports:
              - "127.0.0.1:{port}:80"
        networks:
          default:
            ipam:
              config:
                - subnet: "{subnet}"
        """), slot=14, port=port)
    try:
        proc = p.compose("up", "-d", timeout=300)
        assert proc.returncode == 1, (proc.returncode, proc.stderr)
        assert f"127.0.0.1:{port}" in proc.stderr and "address already in use" in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith(
            f"Error response from daemon: driver failed programming external connectivity on endpoint {p.name}-web-1 "
        ), proc.stderr
        assert _states(p) == {f"{p.name}-web-1": "created"}
    finally:
        p.compose("down", "-v", "--timeout", "1")
        holder.close()
    assert _states(p) == {}


def test_a_port_taken_by_another_service(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    port = _free_port()
    p = _project(daemon, tmp_path, textwrap.dedent("""\
        name: {project}
        services:
          first:
            image: busybox
            init: true
            command: ["sleep", "600"]
            ports:
              - "127.0.0.1:{port}:80"
          second:
            image: busybox
            init: true
            command: ["sleep", "600"]
            depends_on: [first]
            ports:
              - "127.0.0.1:{port}:80"
        networks:
          default:
            ipam:
              config:
                - subnet: "{subnet}"
        """), slot=14, port=port)
    try:
        proc = p.compose("up", "-d", timeout=300)
        assert proc.returncode == 1, (proc.returncode, proc.stderr)
        last = proc.stderr.strip().splitlines()[-1]
        assert last == (f"Error response from daemon: driver failed programming external connectivity on endpoint "
                        f"{p.name}-second-1 ") + last.split(f"{p.name}-second-1 ", 1)[1], proc.stderr
        assert last.endswith(f"Bind for 127.0.0.1:{port} failed: port is already allocated"), proc.stderr
        assert _states(p) == {f"{p.name}-first-1": "running", f"{p.name}-second-1": "created"}
    finally:
        p.compose("down", "-v", "--timeout", "1")
    assert _states(p) == {}
    with socket.socket() as s:                      # the port was given back
        s.bind(("127.0.0.1", port))


def test_a_missing_build_context(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    p = _project(daemon, tmp_path, textwrap.dedent("""\
        name: {project}
        services:
          web:
            build: ./nowhere
        networks:
          default:
            ipam:
              config:
                - subnet: "{subnet}"
        """), slot=14)
    try:
        proc = p.compose("up", "-d", timeout=300)
        assert proc.returncode == 1, (proc.returncode, proc.stderr)
        assert f'unable to prepare context: path "{p.dir / "nowhere"}" not found' in proc.stderr, proc.stderr
        assert _states(p) == {}
        nets = ok(daemon.cli("network", "ls", "-q", "--filter", f"label=com.docker.compose.project={p.name}"))
        assert nets == ""
    finally:
        p.compose("down", "-v", "--timeout", "1")


# ---------------------------------------------------------------- labels, against a peer daemon

LABELLED = textwrap.dedent("""\
    name: {project}
    services:
      app:
        build: ./app
        init: true
        labels:
          mine: "yes"
        volumes:
          - data:/data
        networks: [default, back]
        depends_on:
          db:
            condition: service_started
      db:
        image: busybox
        init: true
        command: ["sleep", "600"]
        networks: [back]
    networks:
      default:
        ipam:
          config:
            - subnet: "{subnet}"
      back:
        labels:
          tier: back
        ipam:
          config:
            - subnet: "{subnet_back}"
    volumes:
      data:
        labels:
          kept: "no"
    """)


@pytest.fixture(scope="module")
def peer(daemon: Daemon) -> Iterator[Daemon]:
    if not daemon.private:
        pytest.skip("needs a private session daemon to start a peer of the other kind")
    d = make_peer(daemon)
    try:
        tar = build_busybox_rootfs(d.root / "busybox-rootfs.tar")
        ok(d.cli("import", "--change", 'CMD ["sh"]', "-", "busybox:latest", input=tar.read_bytes(), timeout=120))
        yield d
    finally:
        d.teardown()


def _labels_seen(d: Daemon, p: Project) -> dict[str, Any]:
    flt = f"label=com.docker.compose.project={p.name}"
    names = {kind: sorted(ok(d.cli(*cmd, "--filter", flt, "--format", "{{.Name}}" if kind != "container"
                                   else "{{.Names}}")).split())
             for kind, cmd in (("container", ("ps", "-a")), ("network", ("network", "ls")),
                               ("volume", ("volume", "ls")))}
    seen: dict[str, Any] = {"names": names}
    for service in ("app", "db"):
        cid = ok(d.cli("ps", "-a", "-q", "--filter", flt, "--filter", f"label=com.docker.compose.service={service}"))
        labels = json.loads(ok(d.cli("inspect", cid.strip())))[0]["Config"]["Labels"]
        # image ids differ (each daemon imported busybox itself): only their shape is compared
        assert labels.pop("com.docker.compose.image").startswith("sha256:")
        seen[service] = labels
    for net in ("default", "back"):
        seen[net] = json.loads(ok(d.cli("network", "inspect", f"{p.name}_{net}")))[0]["Labels"]
    seen["volume"] = json.loads(ok(d.cli("volume", "inspect", f"{p.name}_data")))[0]["Labels"]
    seen["image"] = json.loads(ok(d.cli("image", "inspect", f"{p.name}-app")))[0]["Config"]["Labels"]
    return seen


def test_labels_and_label_filters_match_the_other_daemon(daemon: Daemon, peer: Daemon, busybox: str,
                                                         tmp_path: Path) -> None:
    here = _project(daemon, tmp_path, LABELLED, slot=14, subnet_back=netenv.compose_subnet(15))
    (here.dir / "app").mkdir()
    (here.dir / "app" / "Dockerfile").write_text('FROM busybox\nLABEL from.dockerfile=1\nCMD ["sleep", "600"]\n')
    there = Project(peer, here.name, here.dir)      # the same project, files and paths on both
    try:
        here.ok("up", "-d", timeout=300)
        there.ok("up", "-d", timeout=300)
        mine, theirs = _labels_seen(daemon, here), _labels_seen(peer, there)
        assert mine == theirs
        # `compose ls` finds projects by their labels alone
        listed = [json.loads(ok(d.cli("compose", "ls", "--all", "--format", "json"))) for d in (daemon, peer)]
        assert listed[0] == listed[1] == [{"Name": here.name, "Status": "running(2)",
                                           "ConfigFiles": str(here.dir / "compose.yaml")}], listed
        ps = [sorted((r["Service"], r["State"]) for r in map(json.loads, prj.ok("ps", "--format", "json").splitlines()))
              for prj in (here, there)]
        assert ps[0] == ps[1] == [("app", "running"), ("db", "running")], ps
        assert mine["names"] == {"container": [f"{here.name}-app-1", f"{here.name}-db-1"],
                                 "network": [f"{here.name}_back", f"{here.name}_default"],
                                 "volume": [f"{here.name}_data"]}
        assert mine["app"]["mine"] == "yes" and mine["app"]["from.dockerfile"] == "1"
        assert mine["app"]["com.docker.compose.project.working_dir"] == str(here.dir)
        assert mine["app"]["com.docker.compose.depends_on"] == "db:service_started:false"
        assert mine["default"]["com.docker.compose.network"] == "default"
        assert mine["back"]["tier"] == "back" and mine["volume"]["kept"] == "no"
    finally:
        here.compose("down", "-v", "--rmi", "local", "--timeout", "1")
        there.compose("down", "-v", "--rmi", "local", "--timeout", "1")
