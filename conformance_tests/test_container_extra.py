"""`docker top`, `docker diff` and `docker export`, through the CLI, docker-py and raw HTTP."""
from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest

from conformance_tests.harness import Daemon, wait_until
from conformance_tests.util import inspect, ok, wait_for_status

BUSYBOX = "busybox"


@pytest.fixture
def images_made(daemon: Daemon) -> Iterator[list[str]]:
    """Image names/ids a test creates; removed afterwards."""
    made: list[str] = []
    yield made
    for ref in reversed(made):
        daemon.cli("rmi", "-f", ref)


def _running(daemon: Daemon, name: str, *cmd: str) -> str:
    cid = ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, *(cmd or ("sleep", "300"))))
    wait_for_status(daemon, name, "running")
    return cid.strip()


def _rows(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


# ------------------------------------------------------------------ top
def test_top_default_ps_args(daemon: Daemon, busybox: str, name: str) -> None:
    _running(daemon, name)
    rows = _rows(ok(daemon.cli("top", name)))
    assert rows[0] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(rows) == 2, rows
    assert rows[1][0] == "root" and rows[1][-1] == "sleep 300"
    assert int(rows[1][1]) == inspect(daemon, name)["State"]["Pid"]


def test_top_custom_ps_args_and_only_container_processes(daemon: Daemon, busybox: str, name: str) -> None:
    _running(daemon, name, "sh", "-c", "sleep 301 & sleep 302 & wait")
    # The shell forks its children a moment after the container counts as running.
    wait_until(lambda: len(_rows(ok(daemon.cli("top", name, "-o", "pid,args")))) == 4, 20, "both sleeps to run")
    out = ok(daemon.cli("top", name, "-o", "pid,args"))
    rows = _rows(out)
    assert rows[0] == ["PID", "COMMAND"]
    cmds = sorted(r[1] for r in rows[1:])
    assert cmds == ["sh -c sleep 301 & sleep 302 & wait", "sleep 301", "sleep 302"], out
    aux = _rows(ok(daemon.cli("top", name, "aux")))
    assert aux[0][:2] == ["USER", "PID"] and aux[0][-1] == "COMMAND" and len(aux) == 4
    # A forest listing cannot be combined with ps -q: the daemon lists everything and filters.
    forest = _rows(ok(daemon.cli("top", name, "axf")))
    assert forest[0][0] == "PID" and len(forest) == 4 and forest[1][-1].startswith("\\_ sh -c")


def test_top_docker_py(client: Any, busybox: str, name: str) -> None:
    c = client.containers.run(BUSYBOX, ["sleep", "300"], name=name, detach=True)
    c.reload()
    top = c.top()
    assert list(top) == ["Processes", "Titles"] or set(top) == {"Processes", "Titles"}
    assert top["Titles"][1] == "PID"
    assert [p[1] for p in top["Processes"]] == [str(c.attrs["State"]["Pid"])]
    assert c.top(ps_args="-o pid,comm")["Processes"] == [[str(c.attrs["State"]["Pid"]), "sleep"]]


def test_top_errors(daemon: Daemon, busybox: str, name: str) -> None:
    cid = ok(daemon.cli("create", "--name", name, BUSYBOX, "sleep", "300")).strip()
    r = daemon.raw("GET", f"/containers/{name}/top")
    assert (r.status, r.message) == (409, f"Container {cid} is not running")
    ok(daemon.cli("start", name))
    wait_for_status(daemon, name, "running")
    r = daemon.raw("GET", f"/containers/{name}/top?ps_args=--bogus")
    assert r.status == 500 and r.message == "ps: error: unknown gnu long option"
    r = daemon.raw("GET", f"/containers/{name}/top?ps_args=-o%20comm")
    assert (r.status, r.message) == (500, "Couldn't find PID field in ps output")
    r = daemon.raw("GET", f"/containers/{name}/top?ps_args=-o%20user=PID")
    assert (r.status, r.message) == (500, 'specifying "user=PID" is not allowed')
    r = daemon.raw("GET", "/containers/no-such-container-x/top")
    assert (r.status, r.message) == (404, "No such container: no-such-container-x")
    proc = daemon.cli("top", name, "-o", "comm")
    assert proc.returncode == 1 and "Couldn't find PID field in ps output" in proc.stderr


# ------------------------------------------------------------------ diff
_SCRIPT = ("mkdir -p /root/x; echo hi > /root/x/f; rm /bin/ls; echo > /etc/passwd; touch /tmp/new; "
           "rm -rf /usr; mkdir /usr; touch /usr/q")
_EXPECTED = {
    "C /root", "A /root/x", "A /root/x/f", "C /bin", "D /bin/ls", "C /etc", "C /etc/passwd",
    "C /tmp", "A /tmp/new", "C /usr", "A /usr/q", "D /usr/bin", "D /usr/sbin",
}


def _check_parent_first(lines: list[str]) -> None:
    seen: set[str] = set()
    for line in lines:
        path = line[2:]
        parent = path.rsplit("/", 1)[0]
        assert parent == "" or parent in seen, f"{path} listed before its parent: {lines}"
        seen.add(path)


def test_diff_cli(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "--name", name, BUSYBOX, "sh", "-c", _SCRIPT))
    lines = ok(daemon.cli("diff", name)).splitlines()
    assert set(lines) == _EXPECTED and len(lines) == len(_EXPECTED), lines
    _check_parent_first(lines)


def test_diff_fresh_and_created_containers_have_no_changes(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    assert ok(daemon.cli("diff", name)) == ""
    r = daemon.raw("GET", f"/containers/{name}/changes")
    assert r.status == 200 and r.json() is None
    ok(daemon.cli("start", "-a", name))
    assert ok(daemon.cli("diff", name)) == "", "mount points (/etc/hosts, /proc, ...) are not changes"


def test_diff_running_container_and_api_shape(daemon: Daemon, busybox: str, name: str) -> None:
    _running(daemon, name, "sh", "-c", "echo x > /tmp/run; exec sleep 300")
    daemon_r = None
    for _ in range(200):
        daemon_r = daemon.raw("GET", f"/containers/{name}/changes")
        if daemon_r.json():
            break
    assert daemon_r is not None and daemon_r.status == 200
    assert sorted(daemon_r.json(), key=lambda c: c["Path"]) == [
        {"Kind": 0, "Path": "/tmp"}, {"Kind": 1, "Path": "/tmp/run"}]
    r = daemon.raw("GET", "/containers/no-such-container-x/changes")
    assert (r.status, r.message) == (404, "No such container: no-such-container-x")


def test_diff_docker_py(client: Any, busybox: str, name: str) -> None:
    c = client.containers.run(BUSYBOX, ["sh", "-c", "rm /etc/group; mkdir /newdir"], name=name, detach=True)
    c.wait(timeout=60)
    assert sorted(c.diff(), key=lambda x: x["Path"]) == [
        {"Kind": 0, "Path": "/etc"}, {"Kind": 2, "Path": "/etc/group"}, {"Kind": 1, "Path": "/newdir"}]


# ------------------------------------------------------------------ export
def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_export_stopped_container(daemon: Daemon, busybox: str, name: str, tmp_path: Any) -> None:
    ok(daemon.cli("run", "--name", name, BUSYBOX, "sh", "-c", "echo hello > /root/greeting; rm /etc/group"))
    out = tmp_path / "c.tar"
    ok(daemon.cli("export", "-o", str(out), name))
    members = _members(out.read_bytes())
    names = list(members)
    assert names == sorted(names, key=lambda n: n.rstrip("/").split("/")), "a sorted walk"
    assert "root/greeting" in members and "etc/group" not in members and "bin/busybox" in members
    for init in (".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "dev/console"):
        assert members[init].isreg() and members[init].size == 0, init
    for d in ("proc", "sys", "dev/pts", "dev/shm"):  # tarfile drops the trailing "/"
        assert members[d].isdir(), d
    assert members["etc/mtab"].issym() and members["etc/mtab"].linkname == "/proc/mounts"
    assert not any(n.startswith("proc/") for n in names)
    with tarfile.open(out) as tar:
        f = tar.extractfile("root/greeting")
        assert f is not None and f.read() == b"hello\n"


def test_export_running_container_and_import_round_trip(daemon: Daemon, busybox: str, name: str,
                                                          images_made: list[str], tmp_path: Any) -> None:
    _running(daemon, name, "sh", "-c", "echo live > /marker; exec sleep 300")
    for _ in range(200):
        if daemon.cli("exec", name, "cat", "/marker").stdout == "live\n":
            break
    out = tmp_path / "r.tar"
    ok(daemon.cli("export", "-o", str(out), name))
    members = _members(out.read_bytes())
    assert "marker" in members and members["proc"].isdir()
    assert not any(n.startswith(("proc/", "sys/")) for n in members), "no /proc or /sys contents"
    image = f"{name}-imported"
    images_made.append(image)
    ok(daemon.cli("import", str(out), image))
    assert ok(daemon.cli("run", "--rm", image, "cat", "/marker")) == "live\n"


def test_export_docker_py_and_errors(client: Any, daemon: Daemon, busybox: str, name: str) -> None:
    c = client.containers.create(BUSYBOX, ["true"], name=name)
    data = b"".join(c.export())
    assert "bin/busybox" in _members(data)
    assert inspect(daemon, name)["State"]["Status"] == "created"
    r = daemon.raw("GET", "/containers/no-such-container-x/export")
    assert (r.status, r.message) == (404, "No such container: no-such-container-x")
    # Exporting a stopped container leaves nothing mounted behind.
    assert ok(daemon.cli("diff", name)) == ""


# ------------------------------------------------------------------ logs --details
def test_logs_details_with_log_opt_attrs(daemon: Daemon, busybox: str, name: str) -> None:
    cid = ok(daemon.cli("run", "--name", name, "--log-opt", "labels=a,b", "--log-opt", "env=E1",
                        "--log-opt", "tag={{.Name}}/{{.ID}}", "-l", "a=1", "-l", "b=x y&z", "-l", "c=3",
                        "-e", "E1=v1", "-e", "E2=v2", BUSYBOX, "sh", "-c", "echo one; echo two >&2")).strip()
    cid = inspect(daemon, name)["Id"]
    prefix = f"E1=v1,a=1,b=x+y%26z,tag={name}%2F{cid[:12]} "
    proc = daemon.cli("logs", "--details", name)
    assert (proc.stdout, proc.stderr) == (prefix + "one\n", prefix + "two\n")
    proc = daemon.cli("logs", "--details", "-t", name)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z " + re.escape(prefix) + "one\n", proc.stdout)
    assert ok(daemon.cli("logs", name)) == "one\n", "no attributes without --details"
    with open(inspect(daemon, name)["LogPath"], "rb") as f:
        first = json.loads(f.readline())
    assert first["attrs"] == {"E1": "v1", "a": "1", "b": "x y&z", "tag": f"{name}/{cid[:12]}"}


def test_logs_details_without_attrs_adds_a_space(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "--name", name, BUSYBOX, "echo", "plain"))
    assert ok(daemon.cli("logs", "--details", name)) == " plain\n"


def test_log_tag_template_errors(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("run", "--name", name, "--log-opt", "tag={{.Bogus}}", BUSYBOX, "true")
    assert proc.returncode == 125
    assert ('failed to initialize logging driver: template: log-tag:1:2: executing "log-tag" at <.Bogus>: '
            "can't evaluate field Bogus in type *logger.Info") in proc.stderr
    proc = daemon.cli("run", "--log-opt", "tag={{.Name", BUSYBOX, "true")
    assert proc.returncode == 125
    assert "failed to initialize logging driver: template: log-tag:1: unclosed action" in proc.stderr


def test_export_client_hanging_up_leaves_nothing_mounted(daemon: Daemon, busybox: str, name: str) -> None:
    import socket

    from conformance_tests.harness import mounts_under, socket_path_of
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    before = sorted(mounts_under(str(daemon.root)))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(socket_path_of(daemon.host))
    try:
        s.sendall(f"GET /containers/{name}/export HTTP/1.1\r\nHost: d\r\n\r\n".encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        s.close()
    wait_until(lambda: sorted(mounts_under(str(daemon.root))) == before, 20, "the export mount to go away")
    ok(daemon.cli("start", "-a", name))  # not blocked by a half-done export
