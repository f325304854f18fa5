"""Detach keys on attach and exec, and exec framing by the start request's Tty (issue 9 items 12-14)."""
from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conformance_tests.harness import DOCKER_CLI, Daemon, socket_path_of, wait_until
from conformance_tests.util import ok

BUSYBOX = "busybox"
TICKER = "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done"


class Terminal:
    """The docker CLI run on a pseudo-terminal, as a user at a shell runs it."""

    def __init__(self, daemon: Daemon, *args: str, env: dict[str, str] | None = None) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([DOCKER_CLI, *args], stdin=slave, stdout=slave, stderr=slave,
                                     env=env or daemon.cli_env(), start_new_session=True)
        os.close(slave)
        self.output = b""

    def read_until(self, needle: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{needle!r} not seen; got {self.output[-300:]!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the CLI exited and closed its side
                    raise AssertionError(f"terminal closed before {needle!r}; got {self.output!r}") from None
                self.output += chunk

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 30) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
            while select.select([self.master], [], [], 0)[0]:   # what it wrote before it exited
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                self.output += chunk
            return code
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


def running(daemon: Daemon, name: str) -> bool:
    return ok(daemon.cli("inspect", "-f", "{{.State.Running}}", name)).strip() == "true"


def test_run_it_detaches_on_ctrl_p_ctrl_q(daemon: Daemon, busybox: str, name: str) -> None:
    term = Terminal(daemon, "run", "-it", "--name", name, BUSYBOX, "sh")
    try:
        term.read_until(b"# ")
        term.type(b"echo hel''lo\r")
        term.read_until(b"hello")
        term.type(b"\x10\x11")
        assert term.wait() == 0
    finally:
        term.close()
    assert running(daemon, name)


def test_attach_detach_keys_flag(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-dit", "--name", name, BUSYBOX, "sh"))
    term = Terminal(daemon, "attach", "--detach-keys", "ctrl-x,x", name)
    try:
        term.type(b"echo a''b\r")
        term.read_until(b"ab")
        term.type(b"\x10\x11")          # not the keys of this attach: goes to the shell
        term.type(b"echo c''d\r")
        term.read_until(b"cd")
        assert term.proc.poll() is None
        term.type(b"\x18x")
        assert term.wait() == 1   # `docker attach` reports the detach as its error
        assert b"read escape sequence" in term.output
    finally:
        term.close()
    assert running(daemon, name)


def test_attach_detach_keys_from_config_json(daemon: Daemon, busybox: str, name: str, tmp_path: Path) -> None:
    ok(daemon.cli("run", "-dit", "--name", name, BUSYBOX, "sh"))
    (tmp_path / "config.json").write_text(json.dumps({"detachKeys": "ctrl-y"}))
    env = {**daemon.cli_env(), "DOCKER_CONFIG": str(tmp_path)}
    term = Terminal(daemon, "attach", name, env=env)
    try:
        term.type(b"echo e''f\r")
        term.read_until(b"ef")
        term.type(b"\x19")
        assert term.wait() == 1
        assert b"read escape sequence" in term.output
    finally:
        term.close()
    assert running(daemon, name)


def _http(daemon: Daemon, method: str, path: str, body: Any = None, upgrade: bool = False) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(socket_path_of(daemon.host))
    data = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n")
    head += "Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else "Connection: close\r\n"
    s.sendall(head.encode() + b"\r\n" + data)
    return s


def _read(s: socket.socket, until: bytes | None = None, timeout: float = 30) -> tuple[bytes, bool]:
    """Bytes until `until` is seen (or EOF); returns (data, eof)."""
    out = b""
    deadline = time.monotonic() + timeout
    while until is None or until not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{until!r} not seen; got {out[-200:]!r}")
        ready, _, _ = select.select([s], [], [], left)
        if ready:
            chunk = s.recv(65536)
            if not chunk:
                return out, True
            out += chunk
    return out, False


def test_attach_invalid_detach_keys(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-dit", "--name", name, BUSYBOX, "sh"))
    s = _http(daemon, "POST", f"/containers/{name}/attach?stream=1&stdin=1&stdout=1&detachKeys=bogus", upgrade=True)
    try:
        out, eof = _read(s)
    finally:
        s.close()
    assert eof and out.startswith(b"HTTP/1.1 400 ")
    assert b"Invalid detach keys (bogus) provided" in out
    assert running(daemon, name)


def test_attach_without_a_terminal_passes_the_keys_through(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-di", "--name", name, BUSYBOX, "cat"))
    s = _http(daemon, "POST", f"/containers/{name}/attach?stream=1&stdin=1&stdout=1", upgrade=True)
    try:
        _read(s, b"\r\n\r\n")
        s.sendall(b"\x10\x11hello\n")
        out, eof = _read(s, b"hello\n")
    finally:
        s.close()
    assert not eof and b"\x10\x11hello\n" in out   # cat got the bytes: no detach without a terminal
    assert running(daemon, name)


def _exec(daemon: Daemon, cid: str, tty: bool, keys: str = "") -> str:
    body: dict[str, Any] = {"Cmd": ["sh", "-c", TICKER], "Tty": tty, "AttachStdin": True,
                            "AttachStdout": True, "AttachStderr": True}
    if keys:
        body["DetachKeys"] = keys
    resp = daemon.raw("POST", f"/containers/{cid}/exec", body=json.dumps(body))
    assert resp.status == 201, resp.message
    return str(resp.json()["Id"])


@pytest.mark.parametrize("keys, sequence", [("", b"\x10\x11"), ("ctrl-x", b"\x18")])
def test_exec_detach_keys_end_the_stream(daemon: Daemon, busybox: str, name: str, keys: str, sequence: bytes) -> None:
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sleep", "1000"))
    exec_id = _exec(daemon, name, True, keys)
    s = _http(daemon, "POST", f"/exec/{exec_id}/start", {"Detach": False, "Tty": True}, upgrade=True)
    try:
        _read(s, b"tick2")
        s.sendall(sequence)
        after, eof = _read(s, timeout=30)
    finally:
        s.close()
    assert eof
    # nothing more of the exec's output; dockerd 20.10 says why in the stream
    assert b"tick" not in after.replace(b"read escape sequence", b""), after
    assert after in (b"", b"exec attach failed: error on attach stdin: read escape sequence\r\n"), after


@pytest.mark.reference_differs("20.10 hangs up the exec's terminal when the client detaches")
def test_exec_keeps_running_after_detach(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sleep", "1000"))
    exec_id = _exec(daemon, name, True)
    s = _http(daemon, "POST", f"/exec/{exec_id}/start", {"Detach": False, "Tty": True}, upgrade=True)
    try:
        _read(s, b"tick1")
        s.sendall(b"\x10\x11")
        _read(s, timeout=30)
    finally:
        s.close()
    wait_until(lambda: daemon.raw("GET", f"/exec/{exec_id}/json").json()["Running"] is True, 10, "exec inspect")
    assert "sh -c i=0" in ok(daemon.cli("exec", name, "ps"))


@pytest.mark.parametrize("create_tty, start_tty, expected", [
    (True, False, (b"out\r\nerr\r\n", None)),    # framed; the terminal merged both streams
    (False, False, (b"out\n", b"err\n")),
], ids=["tty-exec-started-without", "plain"])
def test_exec_framing_follows_the_start_request(client, busybox: str, name: str, create_tty: bool,  # type: ignore[no-untyped-def]
                                                start_tty: bool, expected: tuple[bytes, bytes | None]) -> None:
    c = client.containers.run(BUSYBOX, ["sleep", "1000"], detach=True, name=name)
    exec_id = client.api.exec_create(c.id, ["sh", "-c", "echo out; sleep 0.1; echo err >&2"], tty=create_tty)["Id"]
    assert client.api.exec_start(exec_id, tty=start_tty, demux=True) == expected


def test_exec_started_with_a_tty_it_does_not_have(client, busybox: str, name: str) -> None:  # type: ignore[no-untyped-def]
    """Raw stream, stdout only: dockerd has no stream id to give stderr."""
    c = client.containers.run(BUSYBOX, ["sleep", "1000"], detach=True, name=name)
    exec_id = client.api.exec_create(c.id, ["sh", "-c", "echo out; echo err >&2"], tty=False)["Id"]
    assert client.api.exec_start(exec_id, tty=True) == b"out\n"


@pytest.mark.reference_differs("the multiplexed content type came with API 1.42, newer than 20.10's")
def test_exec_start_content_type_follows_the_start_request(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sleep", "1000"))
    for create_tty, start_tty, ctype in ((True, False, b"multiplexed-stream"), (False, True, b"raw-stream")):
        resp = daemon.raw("POST", f"/v1.44/containers/{name}/exec",
                          body=json.dumps({"Cmd": ["true"], "Tty": create_tty, "AttachStdout": True}))
        s = _http(daemon, "POST", f"/v1.44/exec/{resp.json()['Id']}/start", {"Tty": start_tty}, upgrade=True)
        try:
            head, _ = _read(s, b"\r\n\r\n")
        finally:
            s.close()
        assert b"Content-Type: application/vnd.docker." + ctype in head
