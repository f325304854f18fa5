"""Nothing of a removed container remains (issue 9 item 6b): the paths that can leave a cgroup,
a mount, a shim or an exec dir behind — a client hanging up during create or start, a start
that fails after the cgroup was made, pause/kill/update of a stopped container."""
from __future__ import annotations

import json
import socket
import time

import pytest

from conformance_tests.harness import Daemon, socket_path_of, wait_until
from conformance_tests.util import ok, traces_of, wait_no_traces

BUSYBOX = "busybox"


def _hang_up(daemon: Daemon, method: str, path: str, body: bytes = b"") -> None:
    """Send a request and close the connection without reading the answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(socket_path_of(daemon.host))
        head = (f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        s.sendall(head + body)
    finally:
        s.close()


def _settled(daemon: Daemon, cid: str) -> bool:
    """The container is not in the middle of anything: running, or created/exited with no start
    request being served (two identical inspections a moment apart)."""
    first = daemon.raw("GET", f"/containers/{cid}/json").json()["State"]
    if first["Running"]:
        return True
    time.sleep(0.2)   # not synchronisation: a second look, compared with the first
    return daemon.raw("GET", f"/containers/{cid}/json").json()["State"] == first


def test_client_hanging_up_during_start_leaves_nothing(daemon: Daemon, busybox: str) -> None:
    ids = set()
    for _ in range(5):
        cid = ok(daemon.cli("create", BUSYBOX, "sleep", "60")).strip()
        ids.add(cid)
        _hang_up(daemon, "POST", f"/containers/{cid}/start")
        wait_until(lambda cid=cid: _settled(daemon, cid), 30, "the start to be over")
        ok(daemon.cli("rm", "-f", cid))
    assert wait_no_traces(daemon, ids) == {}


def test_client_hanging_up_during_create_leaves_nothing(daemon: Daemon, busybox: str, name: str) -> None:
    body = json.dumps({"Image": BUSYBOX, "Cmd": ["true"]}).encode()
    ids: set[str] = set()
    for i in range(5):
        cname = f"{name}-{i}"
        _hang_up(daemon, "POST", f"/containers/create?name={cname}", body)

        # Over when the name leads to a container (the create went through) or when our own
        # create with that name wins (it never got that far); a 409 meanwhile means "under way".
        def over(cname: str = cname) -> bool:
            got = daemon.raw("GET", f"/containers/{cname}/json")
            if got.status == 200:
                ids.add(got.json()["Id"])
                return True
            mine = daemon.raw("POST", f"/containers/create?name={cname}", body=body)
            if mine.status == 201:
                ids.add(mine.json()["Id"])
                return True
            assert mine.status == 409, mine.body
            return False
        wait_until(over, 30, f"the create of {cname} to be over")
        ok(daemon.cli("rm", "-f", cname))
    assert wait_no_traces(daemon, ids) == {}


@pytest.mark.parametrize("args", [
    ["nonexistent-command"],                     # exec fails in the init, after the cgroup was made
    ["-u", "nosuchuser", "true"],                # the user is resolved at start
])
def test_failed_start_leaves_nothing(daemon: Daemon, busybox: str, args: list[str]) -> None:
    opts, cmd = (args[:2], args[2:]) if args[0].startswith("-") else ([], args)
    cid = ok(daemon.cli("create", *opts, BUSYBOX, *cmd)).strip()
    start = daemon.cli("start", cid)
    assert start.returncode != 0
    assert traces_of(daemon, {cid}).get("cgroups", []) == [], "a container that never ran has no cgroup"
    ok(daemon.cli("rm", "-f", cid))
    assert wait_no_traces(daemon, {cid}) == {}


def test_verbs_on_a_stopped_container_leave_nothing(daemon: Daemon, busybox: str) -> None:
    cid = ok(daemon.cli("run", "-d", BUSYBOX, "true")).strip()
    ok(daemon.cli("wait", cid))
    assert daemon.cli("pause", cid).returncode != 0
    assert daemon.cli("unpause", cid).returncode != 0
    assert daemon.cli("kill", cid).returncode != 0
    ok(daemon.cli("update", "--memory", "64m", "--memory-swap", "128m", cid))
    daemon.cli("stats", "--no-stream", cid)
    daemon.cli("top", cid)
    assert traces_of(daemon, {cid}).get("cgroups", []) == [], "a stopped container has no cgroup"
    ok(daemon.cli("rm", cid))
    assert wait_no_traces(daemon, {cid}) == {}
