"""Small helpers shared by conformance tests."""
from __future__ import annotations

import json
import os
import select
import subprocess
import time
from typing import Any

from conformance_tests import harness
from conformance_tests.harness import DOCKER_CLI, Daemon, mounts_under, wait_until


class StreamReader:
    """Reads a Popen's stdout incrementally with deadlines (for `logs -f`, `attach`, `events`)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.buffer = b""
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)

    def read_until(self, needle: str, timeout: float = 20) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        want = needle.encode()
        while want not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{needle!r} not seen within {timeout}s; got {self.buffer!r}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = self.proc.stdout.read(65536)
                if chunk == b"":  # EOF
                    if want in self.buffer:
                        break
                    raise AssertionError(f"stream ended before {needle!r}; got {self.buffer!r}")
                if chunk:
                    self.buffer += chunk
        return self.buffer.decode(errors="replace")

    def read_to_eof(self, timeout: float = 20) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"stream did not end within {timeout}s; got {self.buffer!r}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = self.proc.stdout.read(65536)
                if chunk == b"":
                    return self.buffer.decode(errors="replace")
                if chunk:
                    self.buffer += chunk


def cli_popen(daemon: Daemon, *args: str, stdin: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [DOCKER_CLI, *args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=daemon.cli_env(),
    )


def stop_proc(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


def inspect(daemon: Daemon, ref: str, kind: str = "container") -> dict[str, Any]:
    out = ok(daemon.cli(kind, "inspect", ref))
    data = json.loads(out)
    assert isinstance(data, list) and len(data) == 1
    return data[0]


def state(daemon: Daemon, ref: str) -> dict[str, Any]:
    resp = daemon.raw("GET", f"/containers/{ref}/json")
    assert resp.status == 200, resp.body
    return resp.json()["State"]


def wait_for_log(daemon: Daemon, ref: str, text: str, timeout: float = 20) -> None:
    """Poll `docker logs` until `text` appears: the container reached a known point."""
    def seen() -> bool:
        proc = daemon.cli("logs", ref)
        return text in proc.stdout or text in proc.stderr
    wait_until(seen, timeout, f"{text!r} in the logs of {ref}", interval=0.1)


def wait_for_status(daemon: Daemon, ref: str, status: str, timeout: float = 20) -> None:
    wait_until(lambda: state(daemon, ref)["Status"] == status, timeout, f"{ref} to be {status}", interval=0.05)


def container_ids(daemon: Daemon) -> set[str]:
    return set(ok(daemon.cli("ps", "-aq", "--no-trunc")).split())


def image_rows(daemon: Daemon) -> set[str]:
    return set(
        ok(daemon.cli("images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}")).splitlines()
    )


def _now_arg() -> str:
    import time
    ns = time.time_ns()
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def since_now() -> str:
    """An events `since`/`until` argument for this instant, to the nanosecond: a millisecond-rounded
    one cuts off, or lets in, the events of the same millisecond (a fast daemon answers several
    requests within one)."""
    return _now_arg()


def until_now() -> str:
    return _now_arg()


def traces_of(daemon: Daemon, ids: set[str]) -> dict[str, list[str]]:
    """What of these (removed) containers is still on the machine, for either daemon: mounts
    under its dirs, dirs named by their ids in its exec root, processes naming them, cgroups."""
    found: dict[str, list[str]] = {}
    mounts = [m for m in mounts_under(str(daemon.root)) if any(i in m for i in ids)]
    if mounts:
        found["mounts"] = mounts
    dirs = sorted(harness._container_ids_under(daemon.exec_root) & ids)
    if dirs:
        found["exec dirs"] = dirs
    procs = [p for i in ids for p in harness.processes_mentioning(i)]
    if procs:
        found["processes"] = [str(p) for p in procs]
    cgroups = harness.cgroups_of(ids)
    if cgroups:
        found["cgroups"] = [str(c) for c in cgroups]
    return found


def wait_no_traces(daemon: Daemon, ids: set[str], timeout: float = 10) -> dict[str, list[str]]:
    """traces_of(), once they stayed for `timeout` seconds (a shim takes a moment to exit)."""
    try:
        wait_until(lambda: not traces_of(daemon, ids), timeout, "the removed containers' traces to go",
                   interval=0.1)
    except TimeoutError:
        pass
    return traces_of(daemon, ids)
