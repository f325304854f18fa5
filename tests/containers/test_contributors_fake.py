"""The start-contributor seam (engine/containers/contributors.py) on the fake runtime: when the
service calls a contributor, in which order, and what a StartPlan changes in the container's
files and OCI spec.  No root, no kernel (see test_lifecycle_fake.py)."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from engine.containers.contributors import StartPlan
from engine.errors import Conflict, EngineError, InvalidParameter
from engine.oci.spec import with_sysctls
from engine.testing.contributors import RecordingContributor
from engine.testing.daemon import FakeDaemon
from engine.testing.rootfs import FakeRootfsImages
from engine.testing.runtime import FakeRuntime
from engine.types import CREATED, EXITED, RUNNING, ContainerConfig, HostConfig

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 20) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(guarded())


@pytest.fixture
def images() -> FakeRootfsImages:
    imgs = FakeRootfsImages()
    imgs.add("busybox")
    return imgs


def spec_of(d: FakeDaemon, cid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((d.config.bundles_root / cid / "config.json").read_text())
    return data


def network_plan(plan: StartPlan) -> None:
    plan.mounts.append(("/data", "bind", "/srv/volumes/data", ("rbind", "rw")))
    plan.env.extend(["FROM_PLAN=1", "OVERRIDDEN=plan"])
    plan.namespace_paths["network"] = "/run/fake/netns/x"
    plan.hosts_addresses.append("10.9.0.2")
    plan.hosts_entries.append(("10.9.0.3", "db db.alias"))
    plan.resolv_conf = "nameserver 127.0.0.11\noptions ndots:0\n"
    plan.sysctls["net.ipv4.ip_forward"] = "1"
    plan.spec_options.append(with_sysctls({"net.ipv4.conf.all.forwarding": "1"}))


def test_order_of_calls_over_a_lifecycle(tmp_path: Path, images: FakeRootfsImages) -> None:
    log: list[tuple[str, str, str]] = []
    first = RecordingContributor("net", log=log)
    second = RecordingContributor("vol", log=log)
    runtime = FakeRuntime()

    async def go() -> None:
        d = FakeDaemon(tmp_path, runtime, images, contributors=[first, second])
        c, _ = await d.containers.create(ContainerConfig(image="busybox", cmd=("sh", "-c", "exit 1")),
                                         HostConfig(), name=None)
        await d.containers.start(c.id)
        await (await d.containers.wait_future(c.id, "not-running"))
        assert c.state.status == EXITED
        await d.containers.remove(c.id, volumes=True)
        mine = [(name, call) for name, call, cid in log if cid == c.id]
        assert mine == [("net", "created"), ("vol", "created"),
                        ("net", "prepare"), ("vol", "prepare"),
                        ("vol", "release"), ("net", "release"),          # release in reverse
                        ("vol", "removed-volumes"), ("net", "removed-volumes")]
        assert first.prepared == set() and second.prepared == set()
        await d.close()
    run(go())


def test_a_plan_reaches_the_files_and_the_spec(tmp_path: Path, images: FakeRootfsImages) -> None:
    contrib = RecordingContributor(edit_plan=network_plan)

    async def go() -> None:
        d = FakeDaemon(tmp_path, FakeRuntime(), images, contributors=[contrib])
        c, _ = await d.containers.create(
            ContainerConfig(image="busybox", cmd=("sleep", "1000"), env=("OVERRIDDEN=own",), hostname="web"),
            HostConfig(), name=None)
        await d.containers.start(c.id)
        plan = contrib.plans[-1]
        assert plan.container is c and plan.rootfs == plan.bundle / "rootfs"
        assert plan.container_dir == d.config.containers_root / c.id
        spec = spec_of(d, c.id)
        env = spec["process"]["env"]
        assert "FROM_PLAN=1" in env and "OVERRIDDEN=own" in env and "OVERRIDDEN=plan" not in env
        dests = [m["destination"] for m in spec["mounts"]]
        # the daemon's files and the plan's mounts in one order, parents before children (a volume
        # on /etc must not hide /etc/hosts)
        assert dests.index("/data") > dests.index("/sys")
        assert dests.index("/data") < dests.index("/etc/hosts")
        data = next(m for m in spec["mounts"] if m["destination"] == "/data")
        assert data["source"] == "/srv/volumes/data" and data["type"] == "bind"
        netns = [n for n in spec["linux"]["namespaces"] if n["type"] == "network"]
        assert netns == [{"type": "network", "path": "/run/fake/netns/x"}]
        assert spec["linux"]["sysctl"]["net.ipv4.ip_forward"] == "1"
        assert spec["linux"]["sysctl"]["net.ipv4.conf.all.forwarding"] == "1"     # a plan's spec option
        cdir = d.config.containers_root / c.id
        hosts = (cdir / "hosts").read_text().splitlines()
        assert "10.9.0.2\tweb" in hosts and "10.9.0.3\tdb db.alias" in hosts
        assert (cdir / "resolv.conf").read_text() == "nameserver 127.0.0.11\noptions ndots:0\n"
        await d.containers.kill(c.id)
        await d.close()
    run(go())


def test_a_failing_prepare_fails_the_start_and_releases_everyone(tmp_path: Path,
                                                                 images: FakeRootfsImages) -> None:
    log: list[tuple[str, str, str]] = []
    ok = RecordingContributor("ok", log=log)
    bad = RecordingContributor("bad", log=log)
    bad.fail_prepare = EngineError("network fakenet not found")
    runtime = FakeRuntime()

    async def go() -> None:
        d = FakeDaemon(tmp_path, runtime, images, contributors=[ok, bad])
        c, _ = await d.containers.create(ContainerConfig(image="busybox", cmd=("true",)), HostConfig(), name=None)
        with pytest.raises(EngineError, match="network fakenet not found"):
            await d.containers.start(c.id)
        assert c.state.status == CREATED and c.state.error == "network fakenet not found"
        assert runtime.created == []                     # the runtime was never asked
        assert images.mounted == {}
        assert ok.prepared == set()
        assert "release" in ok.calls(c.id) and "release" in bad.calls(c.id)
        bad.fail_prepare = None
        await d.containers.start(c.id)                   # the next start works
        await (await d.containers.wait_future(c.id, "not-running"))
        await d.close()
    run(go())


def test_a_refusing_created_hook_refuses_the_create(tmp_path: Path, images: FakeRootfsImages) -> None:
    log: list[tuple[str, str, str]] = []
    first = RecordingContributor("first", log=log)
    refusing = RecordingContributor("refusing", log=log)
    refusing.fail_created = InvalidParameter("network nope not found")

    async def go() -> None:
        d = FakeDaemon(tmp_path, FakeRuntime(), images, contributors=[first, refusing])
        with pytest.raises(InvalidParameter, match="network nope not found"):
            await d.containers.create(ContainerConfig(image="busybox", cmd=("true",)), HostConfig(), name="xx")
        assert d.containers.list() == []
        assert images.prepared == set()
        cid = log[0][2]
        assert [(n, call) for n, call, i in log if i == cid] == [
            ("first", "created"), ("refusing", "created"), ("first", "removed-volumes")]
        # the name is free again
        refusing.fail_created = None
        c, _ = await d.containers.create(ContainerConfig(image="busybox", cmd=("true",)), HostConfig(), name="xx")
        assert c.name == "xx"
        await d.close()
    run(go())


def test_restore_tells_contributors_who_is_running(tmp_path: Path, images: FakeRootfsImages) -> None:
    runtime = FakeRuntime()

    async def go() -> None:
        contrib = RecordingContributor()
        d = FakeDaemon(tmp_path, runtime, images, contributors=[contrib])
        running, _ = await d.containers.create(ContainerConfig(image="busybox", cmd=("sleep", "1000")),
                                               HostConfig(), name="running")
        died, _ = await d.containers.create(ContainerConfig(image="busybox", cmd=("sleep", "1000")),
                                            HostConfig(), name="died")
        never, _ = await d.containers.create(ContainerConfig(image="busybox", cmd=("true",)),
                                             HostConfig(), name="never")
        for c in (running, died):
            await d.containers.start(c.id)
        await d.close()
        runtime.shim_died(died.id, 3)

        again = RecordingContributor()
        d2 = await FakeDaemon(tmp_path, runtime, images, contributors=[again]).open()
        assert again.calls(running.id) == ["restore-running"]
        # its run ended while the daemon was down: released, then settled like any stopped one
        assert again.calls(died.id) == ["release", "restore-stopped"]
        assert again.calls(never.id) == ["restore-stopped"]
        assert d2.containers.get("running").state.status == RUNNING
        assert d2.containers.get("died").state.exit_code == 3
        # the reconnected run's exit is a release like any other
        await d2.containers.kill("running")
        assert again.calls(running.id)[-1] == "release"
        with pytest.raises(Conflict):
            await d2.containers.kill("running")
        await d2.close()
    run(go())
