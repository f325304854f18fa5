"""`docker exec`, rename, restart: what compose and testcontainers lean on."""
from __future__ import annotations

import json

import pexpect
import pytest

from conformance_tests.harness import DOCKER_CLI, Daemon, wait_until
from conformance_tests.util import inspect, ok, state, wait_for_log

BUSYBOX = "busybox"
LOOP = "while :; do sleep 0.05; done"


@pytest.fixture
def running(daemon: Daemon, busybox: str, name: str) -> str:
    ok(daemon.cli("run", "-d", "--name", name, "-e", "FROMRUN=1", BUSYBOX, "sh", "-c",
                  'trap "exit 0" TERM; echo ready; ' + LOOP))
    wait_for_log(daemon, name, "ready")
    return name


def test_exec_output_and_exit_code(daemon: Daemon, running: str) -> None:
    assert ok(daemon.cli("exec", running, "echo", "in")) == "in\n"
    proc = daemon.cli("exec", running, "sh", "-c", "echo err >&2; exit 7")
    assert proc.returncode == 7 and proc.stderr == "err\n"


def test_exec_environment_user_workdir(daemon: Daemon, running: str) -> None:
    out = ok(daemon.cli("exec", "-e", "X=y", "-u", "nobody", "-w", "/tmp", running, "sh", "-c",
                        'echo "$X|$FROMRUN|$(id -u)|$(pwd)"'))
    assert out == "y|1|65534|/tmp\n"


def test_exec_stdin(daemon: Daemon, running: str) -> None:
    assert ok(daemon.cli("exec", "-i", running, "cat", input="piped\n")) == "piped\n"


def test_exec_shares_the_container_namespaces(daemon: Daemon, running: str) -> None:
    out = ok(daemon.cli("exec", running, "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '"))
    hostname, cmdline = out.splitlines()
    assert hostname == inspect(daemon, running)["Id"][:12]
    assert cmdline.startswith("sh -c ")


def test_exec_tty(daemon: Daemon, running: str) -> None:
    child = pexpect.spawn(DOCKER_CLI, ["exec", "-it", running, "sh"], env=daemon.cli_env(), timeout=30,
                          encoding="utf-8")
    try:
        child.expect(r"[#$] ")
        child.sendline("echo $((7*6))")
        child.expect("42")
        child.sendline("exit 3")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 3


def test_exec_docker_py(client, running: str) -> None:
    c = client.containers.get(running)
    result = c.exec_run(["sh", "-c", "echo py; exit 2"])
    assert result.exit_code == 2 and result.output == b"py\n"
    split = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert split.output == (b"o\n", b"e\n")


def test_exec_inspect(client, running: str) -> None:
    exec_id = client.api.exec_create(running, ["true"])["Id"]
    client.api.exec_start(exec_id)
    info = client.api.exec_inspect(exec_id)
    assert info["ExitCode"] == 0 and info["Running"] is False
    assert info["ProcessConfig"]["entrypoint"] == "true"
    assert info["ContainerID"] == client.containers.get(running).id


def test_exec_in_stopped_container_is_409(daemon: Daemon, busybox: str, name: str) -> None:
    cid = ok(daemon.cli("create", "--name", name, BUSYBOX, "true")).strip()
    resp = daemon.raw("POST", f"/containers/{name}/exec", body='{"Cmd": ["true"]}')
    assert resp.status == 409
    assert resp.message == f"Container {cid} is not running"
    proc = daemon.cli("exec", name, "true")
    assert proc.returncode == 1 and f"Container {cid} is not running" in proc.stderr


def test_exec_unknown_binary(daemon: Daemon, running: str) -> None:
    proc = daemon.cli("exec", running, "/no/such/bin")
    assert proc.returncode in (126, 127)
    assert "no such file or directory" in proc.stderr + proc.stdout


def test_rename(daemon: Daemon, running: str, name: str) -> None:
    new = f"{name}-renamed"
    ok(daemon.cli("rename", running, new))
    assert inspect(daemon, new)["Name"] == f"/{new}"
    assert daemon.cli("inspect", running).returncode == 1
    ok(daemon.cli("rename", new, running))


def test_restart(daemon: Daemon, running: str) -> None:
    before = state(daemon, running)
    ok(daemon.cli("restart", "-t", "5", running))
    after = state(daemon, running)
    assert after["Running"] is True
    assert after["Pid"] != before["Pid"]
    assert after["StartedAt"] > before["StartedAt"]
    assert inspect(daemon, running)["RestartCount"] == 0, "a manual restart does not count"


# ---------------------------------------------------------------- exec completeness
EXEC_KEYS = {"ID", "Running", "ExitCode", "ProcessConfig", "OpenStdin", "OpenStderr", "OpenStdout", "CanRemove",
             "ContainerID", "DetachKeys", "Pid"}
JSON = {"Content-Type": "application/json"}


def _exec_create(daemon: Daemon, ctr: str, body: dict) -> str:  # type: ignore[type-arg]
    resp = daemon.raw("POST", f"/containers/{ctr}/exec", body=json.dumps(body), headers=JSON)
    assert resp.status == 201, resp.body
    return str(resp.json()["Id"])


def _exec_info(daemon: Daemon, eid: str) -> dict:  # type: ignore[type-arg]
    resp = daemon.raw("GET", f"/exec/{eid}/json")
    assert resp.status == 200, resp.body
    return resp.json()  # type: ignore[no-any-return]


def test_exec_inspect_lifecycle_and_exec_ids(daemon: Daemon, running: str) -> None:
    """Created -> running (ExitCode null, a Pid, listed in the container's ExecIDs) ->
    exited (exit code kept, gone from ExecIDs)."""
    script = "while [ ! -e /tmp/go-exec ]; do sleep 0.05; done; exit 5"
    eid = _exec_create(daemon, running, {"Cmd": ["sh", "-c", script], "User": "nobody", "Privileged": False,
                                         "Tty": True, "DetachKeys": "ctrl-x"})
    info = _exec_info(daemon, eid)
    assert set(info) == EXEC_KEYS
    assert info["ID"] == eid and info["Running"] is False and info["ExitCode"] is None and info["Pid"] == 0
    assert info["ProcessConfig"] == {"tty": True, "entrypoint": "sh", "arguments": ["-c", script],
                                     "privileged": False, "user": "nobody"}
    assert info["CanRemove"] is False and info["DetachKeys"] == "GA=="   # base64 of b"\\x18"
    assert info["OpenStdin"] is False and info["OpenStdout"] is False and info["OpenStderr"] is False
    assert info["ContainerID"] == inspect(daemon, running)["Id"]
    assert eid in inspect(daemon, running)["ExecIDs"]

    resp = daemon.raw("POST", f"/exec/{eid}/start", body=json.dumps({"Detach": True}), headers=JSON)
    assert resp.status == 200
    info = _exec_info(daemon, eid)
    assert info["Running"] is True and info["ExitCode"] is None and info["Pid"] > 0
    again = daemon.raw("POST", f"/exec/{eid}/start", body=json.dumps({"Detach": True}), headers=JSON)
    assert again.status == 409 and again.message == f"Error: Exec command {eid} is already running"
    assert daemon.raw("POST", f"/exec/{eid}/resize?h=30&w=90").status == 200
    assert eid in inspect(daemon, running)["ExecIDs"]

    ok(daemon.cli("exec", running, "touch", "/tmp/go-exec"))
    wait_until(lambda: _exec_info(daemon, eid)["Running"] is False, 20, "the exec to exit")
    info = _exec_info(daemon, eid)
    assert info["ExitCode"] == 5 and info["Pid"] > 0
    assert eid not in (inspect(daemon, running)["ExecIDs"] or [])


def test_exec_created_but_not_started_is_dropped_when_the_container_stops(daemon: Daemon, running: str) -> None:
    eid = _exec_create(daemon, running, {"Cmd": ["true"]})
    ran = _exec_create(daemon, running, {"Cmd": ["true"]})
    assert daemon.raw("POST", f"/exec/{ran}/start", body=json.dumps({"Detach": False}), headers=JSON).status \
        in (101, 200)
    wait_until(lambda: _exec_info(daemon, ran)["ExitCode"] == 0, 20, "the exec to exit")
    ok(daemon.cli("stop", "-t", "0", running))
    gone = daemon.raw("GET", f"/exec/{eid}/json")
    assert gone.status == 404 and gone.message == f"No such exec instance: {eid}"
    # one that ran stays inspectable (dockerd collects those minutes later)
    assert _exec_info(daemon, ran)["ExitCode"] == 0
    assert inspect(daemon, running)["ExecIDs"] is None


def test_exec_start_twice_attached_reports_in_the_stream(daemon: Daemon, running: str) -> None:
    eid = _exec_create(daemon, running, {"Cmd": ["true"], "AttachStdout": True, "AttachStderr": True})
    first = daemon.raw("POST", f"/exec/{eid}/start", body=json.dumps({"Detach": False}), headers=JSON)
    assert first.status == 200
    wait_until(lambda: _exec_info(daemon, eid)["ExitCode"] == 0, 20, "the exec to exit")
    second = daemon.raw("POST", f"/exec/{eid}/start", body=json.dumps({"Detach": False}), headers=JSON)
    assert second.status == 200   # the stream is open before the start fails
    assert f"Error: Exec command {eid} has already run".encode() in second.body
    detached = daemon.raw("POST", f"/exec/{eid}/start", body=json.dumps({"Detach": True}), headers=JSON)
    assert detached.status == 409 and detached.message == f"Error: Exec command {eid} has already run"


def test_exec_bad_detach_keys(daemon: Daemon, running: str) -> None:
    for keys in ("ctrl-", "ctrl-ab", "ab"):
        resp = daemon.raw("POST", f"/containers/{running}/exec", body=json.dumps({"Cmd": ["true"], "DetachKeys": keys}),
                          headers=JSON)
        assert resp.status == 500 and resp.message == f"Invalid escape keys ({keys}) provided"
    info = _exec_info(daemon, _exec_create(daemon, running, {"Cmd": ["true"], "DetachKeys": "ctrl-@,ctrl-_,a"}))
    assert info["DetachKeys"] == "AB9h"   # base64 of b"\\x00\\x1fa"


def test_exec_unknown_ids_are_404(daemon: Daemon) -> None:
    for method, path in (("GET", "/exec/nope/json"), ("POST", "/exec/nope/resize?h=1&w=1")):
        resp = daemon.raw(method, path)
        assert resp.status == 404 and resp.message == "No such exec instance: nope"
    resp = daemon.raw("POST", "/exec/nope/start", body="{}", headers=JSON)
    assert resp.status == 404 and resp.message == "No such exec instance: nope"


@pytest.mark.reference_differs("runc cannot apply the full set here: this host has no CAP_SYS_RESOURCE")
def test_exec_privileged_gets_every_capability(daemon: Daemon, running: str) -> None:
    plain = ok(daemon.cli("exec", running, "grep", "CapEff", "/proc/self/status")).split()[1]
    full = ok(daemon.cli("exec", "--privileged", running, "grep", "CapEff", "/proc/self/status")).split()[1]
    bounding = ok(daemon.cli("exec", "--privileged", running, "grep", "CapBnd", "/proc/self/status")).split()[1]
    assert int(plain, 16) == 0xA80425FB          # Docker's default set
    assert int(full, 16) == int(bounding, 16) and int(full, 16) > int(plain, 16)
    assert int(full, 16) & (1 << 21)              # CAP_SYS_ADMIN
    # every capability the daemon holds (the daemon runs with this machine's bounding set)
    with open("/proc/self/status") as f:
        ours = next(line.split()[1] for line in f if line.startswith("CapBnd:"))
    assert int(full, 16) == int(ours, 16)


def test_exec_console_size_and_tty(daemon: Daemon, running: str) -> None:
    if daemon.reference:
        pytest.skip("ConsoleSize on exec create is API 1.42+")
    eid = _exec_create(daemon, running, {"Cmd": ["stty", "size"], "Tty": True, "AttachStdout": True,
                                         "ConsoleSize": [33, 111]})
    resp = daemon.raw("POST", f"/exec/{eid}/start", body=json.dumps({"Tty": True, "ConsoleSize": [33, 111]}),
                      headers=JSON)
    assert resp.status == 200 and b"33 111" in resp.body


def test_exec_console_size_from_create(daemon: Daemon, running: str) -> None:
    if daemon.reference:
        pytest.skip("ConsoleSize on exec create is API 1.42+")
    eid = _exec_create(daemon, running, {"Cmd": ["stty", "size"], "Tty": True, "AttachStdout": True,
                                         "ConsoleSize": [21, 77]})
    resp = daemon.raw("POST", f"/exec/{eid}/start", body=json.dumps({"Tty": True}), headers=JSON)
    assert resp.status == 200 and b"21 77" in resp.body


def test_exec_console_size_ignored_before_api_1_42(daemon: Daemon, running: str) -> None:
    body = json.dumps({"Cmd": ["stty", "size"], "Tty": True, "AttachStdout": True, "ConsoleSize": [21, 77]})
    resp = daemon.raw("POST", f"/v1.41/containers/{running}/exec", body=body, headers=JSON)
    assert resp.status == 201
    out = daemon.raw("POST", f"/v1.41/exec/{resp.json()['Id']}/start",
                     body=json.dumps({"Tty": True, "ConsoleSize": [21, 77]}), headers=JSON)
    assert out.status == 200 and b"21 77" not in out.body


def test_exec_detached_cli(daemon: Daemon, running: str) -> None:
    ok(daemon.cli("exec", "-d", running, "sh", "-c", "echo bg > /tmp/detached"))
    wait_until(lambda: daemon.cli("exec", running, "cat", "/tmp/detached").stdout == "bg\n", 20, "detached exec")


def test_exec_it_through_a_real_pty(daemon: Daemon, running: str) -> None:
    """`docker exec -it` with the CLI on a pty we own: the prompt, the window size, an exit code."""
    import os
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the CLI, on the pty's slave side
        env = daemon.cli_env()
        os.execvpe(DOCKER_CLI, [DOCKER_CLI, "exec", "-it", running, "sh"], env)
    out = b""

    def read_until(needle: bytes, timeout: float = 20) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while needle not in out:
            left = deadline - time.monotonic()
            assert left > 0, f"{needle!r} not seen: {out!r}"
            if select.select([fd], [], [], left)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                out += chunk
    try:
        read_until(b"# ")
        os.write(fd, b"echo $((6*7))-$(tty)\r")
        read_until(b"42-/dev/pts/")
        os.write(fd, b"exit 4\r")
        read_until(b"\x00nothing", timeout=10)   # to EOF
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 4
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


def test_exec_detach_keys_end_the_stream(daemon: Daemon, running: str) -> None:
    """A tty exec with stdin: its detach keys (here ctrl-x) close the hijacked stream on
    the daemon's side (docker-py and raw clients rely on it; the CLI also watches itself)."""
    import socket
    import time

    eid = _exec_create(daemon, running, {"Cmd": ["sh"], "Tty": True, "AttachStdin": True, "AttachStdout": True,
                                         "DetachKeys": "ctrl-x"})
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(daemon.host[len("unix://"):])
    try:
        body = json.dumps({"Detach": False, "Tty": True}).encode()
        sock.sendall(f"POST /exec/{eid}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        sock.settimeout(20)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        wait_until(lambda: _exec_info(daemon, eid)["Running"] is True, 20, "the exec to run")
        sock.sendall(b"echo still-here > /tmp/detach-test\r")
        wait_until(lambda: daemon.cli("exec", running, "cat", "/tmp/detach-test").stdout == "still-here\n", 20,
                   "the shell to run the command")
        sock.sendall(b"\x18")
        deadline = time.monotonic() + 20
        while sock.recv(4096):        # the daemon ends the stream
            assert time.monotonic() < deadline
        # (whether the shell then sees EOF on its terminal differs between versions: not checked)
    finally:
        sock.close()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["-w", "/nonexistent", "pwd"],
            'chdir to cwd ("/nonexistent") set in config.json failed: no such file or directory',
        ),
        (["-w", "relative", "pwd"], "Cwd must be an absolute path"),
        (["-u", "nosuchuser", "id"], "unable to find user nosuchuser: no matching entries in passwd file"),
        (["-u", "root:nosuchgroup", "id"], "unable to find group nosuchgroup: no matching entries in group file"),
        (["/no/such/bin"], 'exec: "/no/such/bin": stat /no/such/bin: no such file or directory'),
        (["nosuchcmd"], 'exec: "nosuchcmd": executable file not found in $PATH'),
        (["/etc/passwd"], 'exec: "/etc/passwd": permission denied'),
    ],
)
def test_exec_start_failures_exit_126(daemon: Daemon, running: str, args: list[str], message: str) -> None:
    proc = daemon.cli("exec", *args[:-1], running, args[-1])
    assert proc.returncode == 126, proc
    assert message in proc.stdout + proc.stderr


def test_exec_numeric_user_and_env(daemon: Daemon, running: str) -> None:
    assert ok(daemon.cli("exec", "-u", "1234:5678", running, "id")) == "uid=1234 gid=5678 groups=5678\n"
    out = ok(daemon.cli("exec", "-e", "ZZ=1", "-e", "FROMRUN=over", running, "sh", "-c", 'echo "$ZZ $FROMRUN $HOME"'))
    assert out == "1 over /root\n"


def test_exec_gets_the_container_capabilities(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", BUSYBOX,
                  "sleep", "1000"))
    own = ok(daemon.cli("exec", name, "sh", "-c", "grep CapEff /proc/1/status")).split()[1]
    execd = ok(daemon.cli("exec", name, "grep", "CapEff", "/proc/self/status")).split()[1]
    assert execd == own
    assert int(execd, 16) & (1 << 12) and not int(execd, 16) & 1   # NET_ADMIN yes, CHOWN no


@pytest.mark.parametrize("body, message", [
    ('{"Cmd": "true"}', "into Go struct field Exec{}.Cmd of type []string"),
    ('{"Cmd": ["true", 1]}', "cannot unmarshal number into Go struct field Exec{}.Cmd of type string"),
    ('{"Cmd": []}', "No exec command specified"),
], ids=["string", "number", "empty"])
def test_exec_create_bad_bodies(daemon: Daemon, running: str, body: str, message: str) -> None:
    resp = daemon.raw("POST", f"/containers/{running}/exec", body=body, headers=JSON)
    assert resp.status == 400
    wanted = [message.format("Config" if daemon.reference else "Options")] if "{}" in message else [message]
    assert any(w in resp.message for w in wanted), resp.message


def test_exec_unknown_container_is_404(daemon: Daemon) -> None:
    resp = daemon.raw("POST", "/containers/no-such-ctr/exec", body='{"Cmd": ["true"]}', headers=JSON)
    assert resp.status == 404 and resp.message == "No such container: no-such-ctr"


def test_exec_output_of_a_fast_process_is_complete(daemon: Daemon, running: str, client) -> None:  # type: ignore[no-untyped-def]
    """A process that writes a lot and exits at once: no byte lost, both streams, exit code kept."""
    c = client.containers.get(running)
    for _ in range(3):
        result = c.exec_run(["sh", "-c", "head -c 300000 /dev/zero; echo tail >&2; exit 9"], demux=True)
        assert result.exit_code == 9
        assert len(result.output[0]) == 300000 and result.output[1] == b"tail\n"
