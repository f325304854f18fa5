"""The container records' public API (records.py) and the pure create step (create.py), without a
daemon: a real SQLite database and event bus, no runtime."""
from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from engine.containers import create as create_step
from engine.containers.records import ContainerRecords
from engine.engine import Events
from engine.errors import Conflict, InvalidParameter, NotFound
from engine.events.bus import EventBus
from engine.state import Database
from engine.types import Container, ContainerConfig, ContainerState, HostConfig, RestartPolicy


def _container(cid: str, name: str) -> Container:
    return Container(id=cid, name=name, created="2026-01-01T00:00:00Z", image_id="sha256:x",
                     config=ContainerConfig(image="busybox", labels={"k": "v"}), host_config=HostConfig(),
                     path="sh", args=(), state=ContainerState())


@pytest.fixture
def db(tmp_path: Path) -> Any:
    d = Database(tmp_path / "db.sqlite")
    yield d
    d.close()


def test_names_are_reserved_atomically_and_released_only_by_their_holder(db: Database) -> None:
    recs = ContainerRecords(db, Events(EventBus()))
    recs.reserve_name("web", "a" * 64)
    recs.reserve_name("web", "a" * 64)          # the holder again: no conflict
    with pytest.raises(Conflict, match='"/web" is already in use by container "a{64}"'):
        recs.reserve_name("web", "b" * 64)
    recs.release_name("web", "b" * 64)          # not the holder: the name stays taken
    assert recs.name_taken("web")
    recs.release_name("web", "a" * 64)
    assert not recs.name_taken("web")


def test_lookup_by_id_name_and_prefix(db: Database) -> None:
    recs = ContainerRecords(db, Events(EventBus()))
    a, b = _container("ab" + "1" * 62, "one"), _container("ab" + "2" * 62, "two")
    for c in (a, b):
        recs.add(c)
        recs.reserve_name(c.name, c.id)
    assert recs.get(a.id) is a and recs.get("/two") is b and recs.get("ab2") is b
    assert recs.find("one") is None             # find() takes a full id only
    with pytest.raises(InvalidParameter, match="multiple IDs found with provided prefix: ab"):
        recs.get("ab")
    with pytest.raises(NotFound):
        recs.get("zz")
    assert a.id in recs and sorted(c.name for c in recs.all()) == ["one", "two"]


def test_rows_persist_and_a_deleted_row_is_never_written_back(db: Database, tmp_path: Path) -> None:
    async def scenario() -> None:
        recs = ContainerRecords(db, Events(EventBus()))
        a, b = _container("a" * 64, "one"), _container("b" * 64, "two")
        for c in (a, b):
            recs.add(c)
            await recs.save(c)
        await recs.delete_row(a.id)
        await recs.save(a)                      # a late write of the removed container
        b.name = "renamed"
        await recs.save(b)

    asyncio.run(scenario())
    again = ContainerRecords(db, Events(EventBus()))
    assert [c.name for c in again.all()] == ["renamed"]
    assert again.get("renamed").id == "b" * 64


def test_events_carry_image_name_labels_and_extras(db: Database) -> None:
    bus = EventBus()
    recs = ContainerRecords(db, Events(bus))
    c = _container("c" * 64, "x")
    recs.emit(c, "die", exitCode="3")
    (ev,) = [e for e in bus.history() if e.actor_id == c.id]
    assert ev.action == "die"
    assert ev.attributes == {"image": "busybox", "name": "x", "k": "v", "exitCode": "3"}


def test_waiters_are_woken_once_and_cancelled_ones_are_dropped(db: Database) -> None:
    async def scenario() -> None:
        recs = ContainerRecords(db, Events(EventBus()))
        c = _container("d" * 64, "w")
        loop = asyncio.get_running_loop()
        kept, dropped = loop.create_future(), loop.create_future()
        recs.add_exit_waiter(c.id, kept)
        recs.add_exit_waiter(c.id, dropped)
        recs.cancel_waiter(dropped)
        recs.wake_exit_waiters(c)
        assert kept.result() is c and dropped.cancelled()
        recs.wake_exit_waiters(c)               # nobody left: nothing happens

    asyncio.run(scenario())


def _image(config: dict[str, Any]) -> Any:
    return SimpleNamespace(id="sha256:img", config={"config": config})


def test_merge_with_the_image_config() -> None:
    image = _image({"Env": ["A=1", "B=2"], "Cmd": ["sh"], "WorkingDir": "/w", "User": "u",
                    "Labels": {"l": "image", "m": "image"}, "ExposedPorts": {"80/tcp": {}}})
    merged = create_step.merge_image_config(
        ContainerConfig(image="i", env=("B=3",), labels={"m": "mine"}, exposed_ports=("81/tcp",)), image)
    assert merged.env == ("A=1", "B=3")
    assert merged.cmd == ("sh",) and merged.entrypoint is None
    assert (merged.working_dir, merged.user) == ("/w", "u")
    assert merged.labels == {"l": "image", "m": "mine"}
    assert merged.exposed_ports == ("80/tcp", "81/tcp")
    # An entrypoint of the request drops the image's Cmd (dockerd's rule).
    assert create_step.merge_image_config(ContainerConfig(image="i", entrypoint=("top",)), image).cmd is None


def test_validate_refuses_what_dockerd_refuses(tmp_path: Path) -> None:
    def peer(ref: str) -> Any:
        raise NotFound(ref)

    limits = create_step.resources.HostLimits.probe()
    image = _image({})
    with pytest.raises(InvalidParameter, match="No command specified"):
        create_step.validate(ContainerConfig(image="i"), HostConfig(), image, host_limits=limits, peer=peer,
                             rootfs=tmp_path)
    with pytest.raises(InvalidParameter, match="can't create 'AutoRemove' container with restart policy"):
        create_step.validate(ContainerConfig(image="i", cmd=("true",)),
                             HostConfig(auto_remove=True, restart_policy=RestartPolicy(name="always")),
                             image, host_limits=limits, peer=peer, rootfs=tmp_path)
    with pytest.raises(InvalidParameter, match="config.Image must not be empty"):
        create_step.check_request(ContainerConfig())
    checked = create_step.validate(ContainerConfig(image="i", entrypoint=("a",), cmd=("b", "c")), HostConfig(),
                                   image, host_limits=limits, peer=peer, rootfs=tmp_path)
    assert checked.argv == ["a", "b", "c"]
    c = create_step.new_container("e" * 64, "n", "sha256:img", checked, containers_root=tmp_path,
                                  storage_driver="vfs")
    assert (c.path, c.args, c.config.hostname) == ("a", ("b", "c"), "e" * 12)
    assert c.hosts_path == str(tmp_path / ("e" * 64) / "hosts")
