"""VolumeService with the local driver on a real directory and SQLite; events recorded."""
from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from engine.errors import Conflict, InvalidParameter, NotFound
from engine.state import Database
from engine.volumes.model import ANONYMOUS_LABEL
from engine.volumes.service import VolumeService


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict[str, str]]] = []

    def publish_action(self, type_: str, action: str, actor: str, attrs: dict[str, str]) -> None:
        self.events.append((type_, action, actor, dict(attrs)))


def make(root: Path, rec: Recorder | None = None) -> tuple[VolumeService, Database]:
    db = Database(root / "db.sqlite")
    return VolumeService.local(db, root / "volumes", rec or Recorder()), db


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_create_inspect_list_remove(tmp_path: Path) -> None:
    rec = Recorder()
    svc, db = make(tmp_path, rec)
    vol = run(svc.create("data1", labels={"k": "v"}))
    assert vol.mountpoint == str(tmp_path / "volumes" / "data1" / "_data")
    assert os.path.isdir(vol.mountpoint)
    assert svc.get("data1").labels == {"k": "v"} and vol.options is None
    assert run(svc.create("data1")) == vol, "creating an existing volume returns it"
    assert [e[1] for e in rec.events] == ["create"], "no second create event"
    assert [v.name for v in svc.find({"label": ["k=v"]})[0]] == ["data1"]
    assert svc.find({"label": ["k=w"]})[0] == []
    assert [v.name for v in svc.find({"name": ["ata"]})[0]] == ["data1"]
    with pytest.raises(InvalidParameter, match="invalid filter 'bogus'"):
        svc.find({"bogus": ["x"]})
    with pytest.raises(InvalidParameter, match=r"^invalid filter 'dangling=\[maybe\]'$"):
        svc.find({"dangling": ["maybe"]})
    run(svc.remove("data1"))
    assert not (tmp_path / "volumes" / "data1").exists()
    assert rec.events[-1] == ("volume", "destroy", "data1", {"driver": "local"})
    with pytest.raises(NotFound, match="^get data1: no such volume$"):
        svc.get("data1")
    run(svc.remove("data1", force=True))
    db.close()


def test_names_and_options_are_checked(tmp_path: Path) -> None:
    svc, db = make(tmp_path)
    with pytest.raises(InvalidParameter, match='^create bad/name: "bad/name" includes invalid characters'):
        run(svc.create("bad/name"))
    with pytest.raises(InvalidParameter, match="volume name is too short"):
        run(svc.create("a"))
    with pytest.raises(InvalidParameter, match='^create v1: invalid option: "foo"$'):
        run(svc.create("v1", options={"foo": "bar"}))
    with pytest.raises(InvalidParameter, match='^create v1: missing required option: "device"$'):
        run(svc.create("v1", options={"type": "tmpfs"}))
    with pytest.raises(NotFound, match='plugin "nope" not found'):
        run(svc.create("v1", driver="nope"))
    assert svc.find({})[0] == []
    db.close()


def test_refs_survive_a_restart_and_block_remove(tmp_path: Path) -> None:
    svc, db = make(tmp_path)
    run(svc.create("shared", ref="c1"))
    anon = run(svc.create(None, ref="c1"))
    assert len(anon.name) == 64 and anon.labels == {ANONYMOUS_LABEL: ""}
    db.close()
    svc, db = make(tmp_path)
    with pytest.raises(Conflict, match=r"^remove shared: volume is in use - \[c1\]$"):
        run(svc.remove("shared"))
    assert [v.name for v in svc.find({"dangling": ["false"]})[0]] == sorted(["shared", anon.name])
    assert run(svc.release_refs("c1")) and svc.refs("shared") == set()
    assert {v.name for v in svc.find({"dangling": ["true"]})[0]} == {"shared", anon.name}
    deleted, _ = run(svc.prune({}))
    assert deleted == [anon.name], "prune takes anonymous volumes only by default"
    deleted, _ = run(svc.prune({"all": ["true"]}))
    assert deleted == ["shared"]
    db.close()


def test_prune_reclaims_space_and_honours_labels(tmp_path: Path) -> None:
    rec = Recorder()
    svc, db = make(tmp_path, rec)
    keep = run(svc.create("keep", labels={"keep": "1"}))
    drop = run(svc.create("drop"))
    Path(drop.mountpoint, "f").write_bytes(b"x" * 1000)
    Path(keep.mountpoint, "f").write_bytes(b"x" * 10)
    deleted, reclaimed = run(svc.prune({"all": ["1"], "label!": ["keep"]}))
    assert (deleted, reclaimed) == (["drop"], 1000)
    assert rec.events[-1] == ("volume", "prune", "", {"reclaimed": "1000"})
    with pytest.raises(InvalidParameter, match="invalid filter 'all'"):
        run(svc.prune({"all": ["maybe"]}))
    db.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_tmpfs_volume_mounted_while_in_use(tmp_path: Path) -> None:
    rec = Recorder()
    svc, db = make(tmp_path, rec)
    vol = run(svc.create("t1", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}))
    try:
        path = run(svc.mount("t1", "c1", container="c1", destination="/d", rw=True, propagation=""))
        run(svc.mount("t1", "c2", container="c2", destination="/d", rw=True, propagation=""))
        fstype = subprocess.run(["stat", "-f", "-c", "%T", path], check=False, capture_output=True,
                                text=True).stdout.strip()
        assert fstype == "tmpfs"
        run(svc.unmount("t1", "c1", container="c1"))
        assert os.path.ismount(path), "still mounted for c2"
        run(svc.unmount("t1", "c2", container="c2"))
        assert not os.path.ismount(path)
        assert ("volume", "mount", "t1", {"container": "c1", "destination": "/d", "driver": "local",
                                          "propagation": "", "read/write": "true"}) in rec.events
        bad = run(svc.create("t2", options={"type": "tmpfs", "device": "tmpfs", "o": "size=bogus"}))
        with pytest.raises(Exception, match="failed to mount local volume: mount tmpfs:.*invalid argument"):
            run(svc.mount("t2", "c1", container="c1", destination="/d", rw=True, propagation=""))
        assert not os.path.ismount(bad.mountpoint)
        # a crashed daemon leaves the device mounted: settle() at start unmounts unused ones
        run(svc.mount("t1", "c3", container="c3", destination="/d", rw=True, propagation=""))
        db.close()
        svc, db = make(tmp_path)
        run(svc.settle({}))
        assert not os.path.ismount(vol.mountpoint)
    finally:
        subprocess.run(["umount", "-l", vol.mountpoint], check=False, capture_output=True)
        db.close()
