"""Named local volumes: create, use, persist across containers, in-use protection, remove."""
from __future__ import annotations

import json
import uuid

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import inspect, ok

BUSYBOX = "busybox"


@pytest.fixture
def volume(daemon: Daemon):
    vol = f"vol-{uuid.uuid4().hex[:8]}"
    yield vol
    daemon.raw("DELETE", f"/volumes/{vol}?force=1")


def test_volume_lifecycle(daemon: Daemon, busybox: str, volume: str, name: str) -> None:
    assert ok(daemon.cli("volume", "create", "--label", "k=v", volume)).strip() == volume
    info = json.loads(ok(daemon.cli("volume", "inspect", volume)))[0]
    assert info["Name"] == volume and info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Labels"] == {"k": "v"}
    assert info["Mountpoint"].endswith(f"/volumes/{volume}/_data")
    assert volume in ok(daemon.cli("volume", "ls", "-q")).split()

    ok(daemon.cli("run", "--name", name, "-v", f"{volume}:/data", BUSYBOX, "sh", "-c", "echo kept > /data/f"))
    mounts = inspect(daemon, name)["Mounts"]
    assert len(mounts) == 1
    m = mounts[0]
    assert (m["Type"], m["Name"], m["Destination"], m["Driver"], m["RW"]) == ("volume", volume, "/data", "local", True)
    assert ok(daemon.cli("run", "--rm", "-v", f"{volume}:/d:ro", BUSYBOX, "cat", "/d/f")) == "kept\n"

    proc = daemon.cli("volume", "rm", volume)
    assert proc.returncode == 1
    assert f"remove {volume}: volume is in use" in proc.stderr
    ok(daemon.cli("rm", name))
    assert ok(daemon.cli("volume", "rm", volume)).strip() == volume
    assert volume not in ok(daemon.cli("volume", "ls", "-q")).split()


def test_run_creates_missing_named_volume(daemon: Daemon, busybox: str, volume: str) -> None:
    ok(daemon.cli("run", "--rm", "-v", f"{volume}:/data", BUSYBOX, "true"))
    assert volume in ok(daemon.cli("volume", "ls", "-q")).split(), "named volumes outlive --rm containers"


def test_volume_unknown(daemon: Daemon) -> None:
    resp = daemon.raw("GET", "/volumes/no-such-vol")
    assert resp.status == 404
    assert resp.message == "get no-such-vol: no such volume"
    proc = daemon.cli("volume", "rm", "no-such-vol")
    assert proc.returncode == 1 and "no such volume" in proc.stderr


def test_volume_invalid_name(daemon: Daemon) -> None:
    proc = daemon.cli("volume", "create", "bad/name")
    assert proc.returncode == 1
    assert ('"bad/name" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" '
            "are allowed") in proc.stderr


def test_volume_docker_py(client, volume: str) -> None:
    v = client.volumes.create(name=volume, labels={"a": "b"})
    assert v.name == volume
    assert client.volumes.get(volume).attrs["Labels"] == {"a": "b"}
    listing = client.api.volumes()
    assert volume in [x["Name"] for x in listing["Volumes"]]
    v.remove()
    assert volume not in [x.name for x in client.volumes.list()]
