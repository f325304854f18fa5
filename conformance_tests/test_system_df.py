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
