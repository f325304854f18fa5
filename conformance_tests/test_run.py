"""`docker run` and container configuration, through the CLI and docker-py."""
from __future__ import annotations

import os
import re

import pexpect
import pytest

from conformance_tests.harness import DOCKER_CLI, Daemon
from conformance_tests.util import inspect, ok

BUSYBOX = "busybox"


def test_run_echo(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("run", "--rm", BUSYBOX, "echo", "hello")
    assert ok(proc) == "hello\n"


def test_run_stdin(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("run", "-i", "--rm", BUSYBOX, "cat", input="hi\n")
    assert ok(proc) == "hi\n"


def test_run_exit_code(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("run", "--name", name, BUSYBOX, "sh", "-c", "exit 3")
    assert proc.returncode == 3
    st = inspect(daemon, name)["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 3 and st["Running"] is False


def test_run_stdout_and_stderr_are_separate(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("run", "--rm", BUSYBOX, "sh", "-c", "echo out; echo err >&2")
    assert proc.stdout == "out\n"
    assert proc.stderr == "err\n"


def test_run_unknown_command_is_127(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("run", "--rm", BUSYBOX, "/no/such/binary")
    assert proc.returncode == 127
    assert "no such file or directory" in proc.stderr


def test_run_rm_removes_container(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "--rm", "--name", name, BUSYBOX, "true"))
    proc = daemon.cli("inspect", name)
    assert proc.returncode == 1
    assert f"No such object: {name}" in proc.stderr


def test_docker_py_run_returns_output(client, busybox: str) -> None:
    out = client.containers.run(BUSYBOX, ["sh", "-c", "echo from-py"], remove=True)
    assert out == b"from-py\n"


def test_docker_py_run_nonzero_raises(client, busybox: str) -> None:
    import docker.errors
    with pytest.raises(docker.errors.ContainerError) as err:
        client.containers.run(BUSYBOX, ["sh", "-c", "echo oops >&2; exit 4"], remove=True)
    assert err.value.exit_status == 4
    assert b"oops" in err.value.stderr


def test_docker_py_run_detach_wait_logs(client, busybox: str, name: str) -> None:
    c = client.containers.run(BUSYBOX, ["sh", "-c", "echo a; echo b >&2"], detach=True, name=name)
    assert c.wait(timeout=30)["StatusCode"] == 0
    assert c.logs(stdout=True, stderr=False) == b"a\n"
    assert c.logs(stdout=False, stderr=True) == b"b\n"
    c.reload()
    assert c.status == "exited"


def test_env_workdir_hostname_labels_entrypoint(client, busybox: str, name: str) -> None:
    c = client.containers.create(
        BUSYBOX,
        command=["-c", 'echo "$FOO|$(pwd)|$(hostname)|$0"'],
        entrypoint=["sh"],
        environment={"FOO": "bar baz"},
        working_dir="/made/by/daemon",
        hostname="myhost",
        labels={"com.example.k": "v"},
        name=name,
    )
    c.start()
    assert c.wait(timeout=30)["StatusCode"] == 0
    assert c.logs() == b"bar baz|/made/by/daemon|myhost|sh\n"
    attrs = client.api.inspect_container(c.id)
    assert "FOO=bar baz" in attrs["Config"]["Env"]
    assert attrs["Config"]["WorkingDir"] == "/made/by/daemon"
    assert attrs["Config"]["Hostname"] == "myhost"
    assert attrs["Config"]["Labels"] == {"com.example.k": "v"}
    assert attrs["Config"]["Entrypoint"] == ["sh"]
    assert attrs["Path"] == "sh"
    assert attrs["Args"] == ["-c", 'echo "$FOO|$(pwd)|$(hostname)|$0"']


@pytest.mark.parametrize(
    "user, expected",
    [("65534", "65534 65534"), ("1:1", "1 1"), ("nobody", "65534 65534"), ("daemon", "1 1"), ("0", "0 0")],
)
def test_user(daemon: Daemon, busybox: str, user: str, expected: str) -> None:
    out = ok(daemon.cli("run", "--rm", "-u", user, BUSYBOX, "sh", "-c", 'echo "$(id -u) $(id -g)"'))
    assert out.strip() == expected


def test_unknown_user_fails(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("run", "--rm", "-u", "nosuchuser", BUSYBOX, "true")
    assert proc.returncode != 0
    assert "unable to find user nosuchuser" in proc.stderr


@pytest.mark.parametrize("rm", [[], ["--rm"]])
def test_missing_command_reports_the_start_error_once(daemon: Daemon, busybox: str, rm: list[str]) -> None:
    proc = daemon.cli("run", *rm, BUSYBOX, "nosuchcmd")
    assert proc.returncode == 127
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in proc.stderr
    # the wait ends without an error of its own (the CLI would log "Error waiting for container")
    assert "Error waiting for container" not in proc.stderr, proc.stderr


def test_wait_response_shape(daemon: Daemon, busybox: str, name: str) -> None:
    assert daemon.cli("run", "--name", name, BUSYBOX, "sh", "-c", "exit 3").returncode == 3
    resp = daemon.raw("POST", f"/containers/{name}/wait")
    assert resp.status == 200 and resp.json() == {"Error": None, "StatusCode": 3}


def test_hostname_defaults_to_short_id_and_env_has_path(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("run", "--name", name, BUSYBOX, "sh", "-c", 'hostname; echo "$HOSTNAME"; echo "$PATH"; echo $$')
    lines = ok(proc).splitlines()
    cid = inspect(daemon, name)["Id"]
    assert lines[0] == cid[:12]
    assert lines[1] == cid[:12]
    assert lines[2] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert lines[3] == "1", "the container's command is pid 1 in its own pid namespace"


def test_env_defaults(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "-e", "A=1", "-e", "B", BUSYBOX, "env"))
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert env["A"] == "1"
    assert "B" not in env, "-e NAME without a value and not set in the client's env is dropped"
    assert env["HOME"] == "/root"
    assert "HOSTNAME" in env and "PATH" in env


def test_run_tty_interactive(daemon: Daemon, busybox: str) -> None:
    child = pexpect.spawn(
        DOCKER_CLI, ["run", "-it", "--rm", BUSYBOX, "sh"], env=daemon.cli_env(), timeout=30, encoding="utf-8",
        dimensions=(24, 80),
    )
    try:
        child.expect(r"[#$] ")
        child.sendline("echo $((6*7))")
        child.expect("42")
        child.sendline("stty size")
        child.expect(r"24 80")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 5


def test_tty_output_has_crlf(daemon: Daemon, busybox: str) -> None:
    # bytes input: no universal-newline translation of the output
    proc = daemon.cli("run", "-t", "--rm", BUSYBOX, "echo", "x", input=b"")
    assert proc.returncode == 0
    assert proc.stdout == "x\r\n"


def test_container_sees_its_own_rootfs(daemon: Daemon, busybox: str) -> None:
    out = ok(
        daemon.cli("run", "--rm", BUSYBOX, "sh", "-c", "cat /etc/passwd; ls -d /proc/self; test -d /tmp && echo tmp")
    )
    assert "nobody:x:65534:65534" in out
    assert "/proc/self" in out and "tmp" in out


def test_created_container_writes_are_isolated(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "--name", name, BUSYBOX, "sh", "-c", "echo data > /root/f"))
    out = ok(daemon.cli("run", "--rm", BUSYBOX, "sh", "-c", "ls /root"))
    assert out == "", "another container from the same image must not see the first one's writes"
    ok(daemon.cli("start", "-a", name))  # restarting the first one keeps its own layer
    diff = ok(daemon.cli("diff", name))
    assert re.search(r"^A /root/f$", diff, re.M) or re.search(r"^C /root$", diff, re.M)


def test_run_name_and_id_lookup(daemon: Daemon, busybox: str, name: str) -> None:
    cid = ok(daemon.cli("create", "--name", name, BUSYBOX, "true")).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert inspect(daemon, cid[:12])["Name"] == f"/{name}"
    assert inspect(daemon, name)["Id"] == cid


def test_env_from_cli_environment(daemon: Daemon, busybox: str) -> None:
    env = daemon.cli_env()
    env["FROMHOST"] = "yes"
    import subprocess
    proc = subprocess.run([DOCKER_CLI, "run", "--rm", "-e", "FROMHOST", BUSYBOX, "sh", "-c", "echo $FROMHOST"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout == "yes\n", proc.stderr
    assert os.environ.get("FROMHOST") is None
