"""Crash safety (issue 9 items 5, 6): the daemon killed (-9) while containers start or while an
image loads leaves nothing behind once it is back: no mounts, exec dirs, shims or cgroups of
containers that are not running, no layers no image uses.  Small versions run in CI; the
`stress` versions (`-m stress`) repeat them as the issue asks."""
from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conformance_tests import harness
from conformance_tests.harness import (
    Daemon,
    UnixHTTPConnection,
    mounts_under,
    socket_path_of,
    wait_until,
)
from conformance_tests.image_archives import ImageSpec, layer_tar, write_archive
from conformance_tests.util import ok, traces_of, wait_no_traces

BUSYBOX = "busybox"


# ---------------------------------------------------------------- kill -9 while containers start
def _kill9_during_start(daemon: Daemon, count: int) -> dict[str, Any]:
    label = f"k9start={time.time_ns()}"
    body = json.dumps({"Image": BUSYBOX, "Cmd": ["sleep", "600"], "Labels": {label.split("=")[0]: label.split("=")[1]}})
    started = threading.Event()
    ids: list[str] = []
    lock = threading.Lock()

    def run(_: int) -> None:
        try:
            resp = daemon.raw("POST", "/containers/create", body=body, timeout=30)
            if resp.status != 201:
                return
            cid = resp.json()["Id"]
            with lock:
                ids.append(cid)
            started.set()
            daemon.raw("POST", f"/containers/{cid}/start", timeout=30)
        except (OSError, http.client.HTTPException):
            pass   # the daemon was killed under us

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(run, i) for i in range(count)]
        assert started.wait(60), "no container was created"
        # Kill it while starts are under way: once the first shim runs and some starts are pending.
        # (a shim names its container on its command line, in both daemons)
        def a_shim_runs() -> bool:
            with lock:
                created = list(ids)
            return any(harness.processes_mentioning(cid) for cid in created)
        wait_until(a_shim_runs, 60, "a container's shim to run")
        os.kill(daemon.pid or 0, signal.SIGKILL)
        for f in futures:
            f.result()
    daemon.restart(kill9=True)
    present = ok(daemon.cli("ps", "-a", "--no-trunc", "--filter", f"label={label}",
                            "--format", "{{.ID}} {{.State}}")).splitlines()
    states = dict(line.split() for line in present)
    # Containers the daemon knows as not running have no rootfs mount (settled at start).
    not_running = {cid for cid, st in states.items() if st != "running"}
    stale = {k: v for k, v in traces_of(daemon, not_running).items() if k == "mounts"}
    # They can be started (no mount stacked on another) and removed without a trace.
    start_errors = []
    for cid in sorted(not_running)[:2]:
        proc = daemon.cli("start", cid)
        if proc.returncode != 0:
            start_errors.append(proc.stderr.strip())
    stacked = [m for m in mounts_under(str(daemon.root)) if mounts_under(str(daemon.root)).count(m) > 1]
    for cid in states:
        ok(daemon.cli("rm", "-f", cid))
    gone = set(ids) | set(states)
    left = wait_no_traces(daemon, gone)
    # dockerd 20.10's containerd cannot start a container whose shim start a kill -9 cut short
    # ("failed to start shim: mkdir .../moby/<id>: file exists"); whether one of the two was
    # cut short there is timing, so that answer is not held against the reference.
    if daemon.reference:
        start_errors = [e for e in start_errors if "failed to start shim" not in e]
    return {"created": len(ids), "states": sorted(states.values()), "stale mounts": stale,
            "start errors": start_errors, "stacked": sorted(set(stacked)), "left after rm": left}


def _failed(report: dict[str, Any]) -> bool:
    return bool(report["stale mounts"] or report["start errors"] or report["stacked"] or report["left after rm"])


def _check_kill9(report: dict[str, Any]) -> None:
    print(f"\nkill -9 during start: {report}")
    assert not _failed(report), report


@pytest.mark.reference_differs("dockerd 20.10 keeps exec-root dirs (and sometimes shims and cgroups) of containers "
                               "whose start a kill -9 cut short, after their rm -f")
def test_kill9_while_containers_start(daemon: Daemon, busybox: str) -> None:
    """Item 5: after a kill -9 during parallel starts, the containers that are not running hold
    no rootfs mount, start without stacking a second one, and rm -f leaves nothing."""
    daemon.require_private()
    _check_kill9(_kill9_during_start(daemon, 6))


@pytest.mark.stress
@pytest.mark.reference_differs("dockerd 20.10 keeps exec-root dirs of containers whose start a kill -9 cut short")
def test_kill9_while_containers_start_stress(daemon: Daemon, busybox: str) -> None:
    daemon.require_private()
    failed = {}
    for i in range(20):
        report = _kill9_during_start(daemon, 20)
        if _failed(report):
            failed[i] = report
    print(f"\nkill -9 during start: {len(failed)} of 20 rounds left something: {failed}")
    assert failed == {}


# ---------------------------------------------------------------- kill -9 during docker load
LAYER_SIZE = 512 * 1024
LAYERS = 4


def _data_bytes(daemon: Daemon) -> int:
    """Bytes of files under the data root, SQLite files and logs aside (they move by themselves)."""
    total = 0
    for dirpath, _dirs, files in os.walk(daemon.data_root):
        for f in files:
            if f.endswith((".db", ".db-wal", ".db-shm", "-wal", "-shm", ".log")) or "buildkit" in dirpath:
                continue
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            total += st.st_size
    return total


def _archive(daemon: Daemon, tag: str) -> Path:
    layers = [layer_tar({f"l{i}/data": os.urandom(LAYER_SIZE)}) for i in range(LAYERS)]
    return write_archive(daemon.root / f"{tag.replace(':', '-')}.tar", [ImageSpec(layers, tags=[tag])])


def _load_killed_at(daemon: Daemon, archive: Path, boundary: int) -> bool:
    """Load, and kill -9 the daemon as layer `boundary` (0-based) begins: layers before it are in.
    True when the kill happened during the load."""
    conn = UnixHTTPConnection(socket_path_of(daemon.host), timeout=120)
    try:
        conn.request("POST", "/images/load?quiet=0", body=archive.read_bytes(),
                     headers={"Content-Type": "application/x-tar"})
        resp = conn.getresponse()
        seen: list[str] = []
        buf = b""
        while True:
            chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
            if not chunk:
                return False   # the load finished before the boundary was seen
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                msg = json.loads(line)
                if msg.get("status") == "Loading layer" and msg.get("id") and msg["id"] not in seen:
                    seen.append(msg["id"])
                    if len(seen) == boundary + 1:
                        os.kill(daemon.pid or 0, signal.SIGKILL)
                        return True
    except (OSError, http.client.HTTPException):
        return True
    finally:
        conn.close()


def _load_round(daemon: Daemon, boundary: int) -> dict[str, Any]:
    tag = f"crashload:b{boundary}-{time.time_ns()}"
    archive = _archive(daemon, tag)
    before = _data_bytes(daemon)
    killed = _load_killed_at(daemon, archive, boundary)
    daemon.restart(kill9=True)
    ok(daemon.cli("image", "prune", "-f"))
    after = _data_bytes(daemon)
    listed = ok(daemon.cli("images", "-a", "--format", "{{.Repository}}:{{.Tag}}")).split()
    archive.unlink()
    return {"boundary": boundary, "killed": killed, "grew": after - before, "listed": tag in listed}


def _check_load(reports: list[dict[str, Any]]) -> None:
    print(f"\nload killed at layer boundaries: {reports}")
    # A few KiB of metadata may move; a layer is half a MiB.
    bad = [r for r in reports if not r["killed"] or r["grew"] > LAYER_SIZE // 4 or r["listed"]]
    assert bad == [], reports


@pytest.mark.reference_differs("dockerd 20.10 keeps the layers of a load killed half-way")
def test_load_killed_between_layers_leaves_nothing(daemon: Daemon, busybox: str) -> None:
    """Item 6: a `docker load` cut short by kill -9 after some layers leaves nothing once the
    daemon is back and `image prune` ran."""
    daemon.require_private()
    _check_load([_load_round(daemon, 2)])


@pytest.mark.stress
@pytest.mark.reference_differs("dockerd 20.10 keeps the layers of a load killed half-way")
def test_load_killed_at_every_layer_boundary_stress(daemon: Daemon, busybox: str) -> None:
    daemon.require_private()
    _check_load([_load_round(daemon, b) for b in range(LAYERS)])
