"""`docker system df` (and -v) and GET /system/df: shapes and numbers for the objects created here."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import ok

BUSYBOX = "busybox"


@pytest.fixture
def vol(daemon: Daemon) -> Iterator[str]:
    v = f"df-{uuid.uuid4().hex[:8]}"
    yield v
    daemon.raw("DELETE", f"/volumes/{v}?force=1")


def test_system_df_counts_and_sizes(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    ok(daemon.cli("run", "--name", name, "-v", f"{vol}:/data", BUSYBOX, "sh", "-c",
                  "dd if=/dev/zero of=/data/blob bs=1000 count=300 2>/dev/null; "
                  "dd if=/dev/zero of=/rwfile bs=1000 count=20 2>/dev/null"))
    df = daemon.raw("GET", "/system/df").json()
    assert set(df) >= {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
    assert df["BuildCache"] == [] or df["BuildCache"] is None
    img = next(i for i in df["Images"] if i["Id"] == busybox)
    assert img["Containers"] >= 1 and img["SharedSize"] >= 0 and img["Size"] > 0
    assert df["LayersSize"] >= img["Size"]
    ctr = next(c for c in df["Containers"] if c["Names"] == [f"/{name}"])
    assert ctr["SizeRw"] >= 20000 and ctr["SizeRootFs"] >= ctr["SizeRw"] + img["Size"]
    v = next(x for x in df["Volumes"] if x["Name"] == vol)
    assert v["UsageData"] == {"RefCount": 1, "Size": 300000}

    verbose = json.loads(ok(daemon.cli("system", "df", "-v", "--format", "{{json .}}")))
    vrow = next(x for x in verbose["Volumes"] if x["Name"] == vol)
    assert (vrow["Links"], vrow["Size"]) == ("1", "300kB")
    rows = [json.loads(line) for line in ok(daemon.cli("system", "df", "--format", "{{json .}}")).splitlines()]
    assert [r["Type"] for r in rows] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    vols = rows[2]
    assert int(vols["TotalCount"]) >= 1 and int(vols["Active"]) >= 1
    ok(daemon.cli("rm", name))
    v = next(x for x in daemon.raw("GET", "/system/df").json()["Volumes"] if x["Name"] == vol)
    assert v["UsageData"]["RefCount"] == 0, "no container references it any more"


@pytest.mark.reference_differs("the type parameter came with API 1.42")
def test_system_df_type_parameter(daemon: Daemon, busybox: str) -> None:
    df = daemon.raw("GET", "/v1.42/system/df?type=volume").json()
    assert set(df) == {"Volumes"}
    df = daemon.raw("GET", "/v1.42/system/df?type=image&type=container").json()
    assert {"Images", "Containers"} <= set(df) and "Volumes" not in df and "BuildCache" not in df
    resp = daemon.raw("GET", "/v1.42/system/df?type=bogus")
    assert resp.status == 400 and resp.message == "unknown object type: bogus"


def test_system_prune_with_volumes_and_filter(daemon: Daemon, busybox: str, name: str) -> None:
    tag = uuid.uuid4().hex[:8]
    ok(daemon.cli("create", "--name", name, "--label", f"t={tag}",
                  "--mount", f"type=volume,target=/d,volume-label=t={tag}", BUSYBOX, "true"))
    cid = json.loads(ok(daemon.cli("inspect", name)))[0]["Id"]
    anon = json.loads(ok(daemon.cli("inspect", name)))[0]["Mounts"][0]["Name"]
    keep = f"{name}-keep"
    ok(daemon.cli("create", "--name", keep, BUSYBOX, "true"))   # no label: the filter spares it
    try:
        out = ok(daemon.cli("system", "prune", "-f", "--volumes", "--filter", f"label=t={tag}"))
        assert "Deleted Containers:\n" + cid in out
        assert "Deleted Volumes:\n" + anon in out
        assert "Total reclaimed space:" in out
        assert daemon.raw("GET", f"/containers/{keep}/json").status == 200
        assert daemon.raw("GET", f"/volumes/{anon}").status == 404
    finally:
        daemon.cli("rm", "-f", keep)


def test_volume_prune_takes_anonymous_only(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    ok(daemon.cli("volume", "create", vol))
    ok(daemon.cli("create", "--name", name, "-v", "/anon", BUSYBOX, "true"))
    anon = json.loads(ok(daemon.cli("inspect", name)))[0]["Mounts"][0]["Name"]
    ok(daemon.cli("rm", name))
    # the CLI of a 1.42+ daemon prunes anonymous volumes only; -a takes named ones too
    resp = daemon.raw("POST", "/volumes/prune")
    assert resp.status == 200
    if daemon.api_version >= "1.42":
        assert anon in resp.json()["VolumesDeleted"] and vol not in resp.json()["VolumesDeleted"]
        assert daemon.raw("GET", f"/volumes/{vol}").status == 200
    else:   # dockerd 20.10 (API 1.41) prunes every unused volume
        assert {anon, vol} <= set(resp.json()["VolumesDeleted"])
