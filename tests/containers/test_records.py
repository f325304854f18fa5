"""The container records (no root needed): names are checked and taken in one step, and a
write that comes after a removal never brings the row back."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from engine.containers.records import ContainerRecords
from engine.errors import Conflict
from engine.state import Database
from engine.types import Container, ContainerConfig, HostConfig


class _Events:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, str]] = []

    def publish_action(self, type_: str, action: str, actor_id: str, attributes: dict[str, str]) -> None:
        self.published.append((type_, action, actor_id))


def _container(cid: str, name: str) -> Container:
    return Container(id=cid, name=name, created="2026-01-01T00:00:00Z", image_id="sha256:" + "0" * 64,
                     config=ContainerConfig(image="busybox"), host_config=HostConfig(), path="true", args=())


def _records(path: Path) -> ContainerRecords:
    events: Any = _Events()
    return ContainerRecords(Database(path / "db.sqlite"), events)


def test_name_is_checked_and_taken_in_one_step(tmp_path: Path) -> None:
    r = _records(tmp_path)
    r.reserve_name("web", "a" * 64)
    with pytest.raises(Conflict, match=r'The container name "/web" is already in use by container "a{64}"'):
        r.reserve_name("web", "b" * 64)
    r.release_name("web", "b" * 64)          # the loser's cleanup never drops the winner's name
    assert r.names["web"] == "a" * 64
    r.release_name("web", "a" * 64)
    r.reserve_name("web", "b" * 64)
    assert r.names["web"] == "b" * 64


def test_a_late_save_never_brings_a_removed_row_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        r = _records(tmp_path)
        c = _container("c" * 64, "gone")
        r.by_id[c.id] = c
        await r.save(c)
        await r.delete(c.id)
        r.forget(c)
        await r.save(c)                      # an exit recorded after the removal
        r.db.close()

    asyncio.run(scenario())
    again = _records(tmp_path)
    assert again.find("c" * 64) is None and not again.name_taken("gone")
