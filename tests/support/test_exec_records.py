"""Exec records: which execs a container lists and how long an exec stays inspectable."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from engine.containers import exec as ex
from engine.errors import Conflict, EngineError, NotFound
from engine.types import Container, ContainerConfig, ContainerState, HostConfig


class FakeContainers:
    def __init__(self) -> None:
        self.c = Container(id="a" * 64, name="c", created="2026-01-01T00:00:00Z", image_id="sha256:x",
                           config=ContainerConfig(), host_config=HostConfig(), path="sh", args=(),
                           state=ContainerState(status="running", pid=5, started_at="2026-01-01T00:00:01Z"))
        self.records = self       # the exec service goes through the records' public API
        self._containers = {self.c.id: self.c}
        self._live = {self.c.id: SimpleNamespace()}
        self.events: list[tuple[str, dict[str, str]]] = []

    def find(self, cid: str) -> Container | None:
        return self._containers.get(cid)

    def all(self) -> list[Container]:
        return list(self._containers.values())

    def live(self, cid: str) -> Any:
        return self._live.get(cid)

    def get(self, ref: str) -> Container:
        if ref not in (self.c.id, self.c.name):
            raise NotFound(f"No such container: {ref}")
        return self.c

    def emit(self, c: Container, action: str, **extra: str) -> None:
        self.events.append((action, extra))


def make(**kw: Any) -> tuple[ex.ExecService, FakeContainers, ex.ExecInstance]:
    fc = FakeContainers()
    svc = ex.ExecService(fc)
    args: dict[str, Any] = {
        "cmd": ["true"],
        "env": [],
        "user": "",
        "working_dir": "",
        "tty": False,
        "attach_stdin": False,
        "attach_stdout": True,
        "attach_stderr": True,
        "privileged": False,
    }
    args.update(kw)
    inst = svc.create("c", **args)
    return svc, fc, inst


def finish(svc: ex.ExecService, inst: ex.ExecInstance, code: int, ago: float = 0.0) -> None:
    class Session:
        async def wait(self) -> Any:
            return SimpleNamespace(exit_code=code)
    inst.session, inst.running = Session(), True
    asyncio.run(svc.complete(inst))
    inst.exited_at -= ago


def test_exec_ids_list_only_execs_that_have_not_exited() -> None:
    svc, fc, inst = make()
    assert fc.c.exec_ids == [inst.id]
    finish(svc, inst, 3)
    assert fc.c.exec_ids == []
    assert svc.get(inst.id).exit_code == 3          # still inspectable
    assert ("exec_die", {"execID": inst.id, "exitCode": "3"}) in fc.events


def test_exited_execs_are_collected_after_a_while() -> None:
    svc, _fc, inst = make()
    finish(svc, inst, 0, ago=ex.EXEC_KEEP_SECONDS + 1)
    with pytest.raises(NotFound, match=f"No such exec instance: {inst.id}"):
        svc.get(inst.id)
    svc.collect()
    assert inst.id not in svc._execs


def test_collecting_does_not_walk_every_container_or_exec() -> None:
    """An exec create collects: its cost must not grow with the containers (the scale bench
    runs execs next to 300 of them) nor with the exited execs kept for inspect."""
    svc, fc, first = make()
    scans = 0
    real_all = fc.all

    def counting_all() -> list[Container]:
        nonlocal scans
        scans += 1
        return real_all()

    fc.all = counting_all  # type: ignore[method-assign]
    finish(svc, first, 0, ago=ex.EXEC_KEEP_SECONDS + 1)
    kept = []
    for _ in range(50):
        inst = svc.create("c", cmd=["true"], env=[], user="", working_dir="", tty=False, attach_stdin=False,
                          attach_stdout=True, attach_stderr=True, privileged=False)
        finish(svc, inst, 0)
        kept.append(inst)
    assert scans == 0                       # only the first collect (in make) walked them all
    assert first.id not in svc._execs       # expired: gone
    assert all(svc.get(i.id).exit_code == 0 for i in kept)
    assert len(svc._exited) == 50


def test_created_execs_go_with_the_run_of_the_container() -> None:
    svc, fc, inst = make()
    fc.c.state = ContainerState(status="exited", started_at="2026-01-01T00:00:01Z")
    with pytest.raises(NotFound):
        svc.get(inst.id)
    fc.c.state = ContainerState(status="running", pid=6, started_at="2026-01-01T00:00:01Z")
    svc2, fc2, inst2 = make()
    fc2.c.state = ContainerState(status="running", pid=9, started_at="2026-01-01T00:09:09Z")  # restarted
    with pytest.raises(NotFound):
        svc2.get(inst2.id)
    # stale ids (e.g. from before a daemon restart) are dropped from the container's list
    fc2.c.exec_ids = ["f" * 64]
    svc2.collect()
    assert fc2.c.exec_ids == []


def test_exec_in_a_stopped_container() -> None:
    fc = FakeContainers()
    fc.c.state = ContainerState(status="exited")
    with pytest.raises(Conflict, match=f"Container {fc.c.id} is not running"):
        ex.ExecService(fc).create("c", cmd=["true"], env=[], user="", working_dir="", tty=False,
                                  attach_stdin=False, attach_stdout=False, attach_stderr=False, privileged=False)


@pytest.mark.parametrize("spec, want", [("ctrl-p,ctrl-q", b"\x10\x11"), ("a", b"a"), ("ctrl-@,ctrl-_", b"\x00\x1f"),
                                        ("ctrl-[,ctrl-\\,ctrl-],ctrl-^", b"\x1b\x1c\x1d\x1e")])
def test_detach_keys(spec: str, want: bytes) -> None:
    assert ex.parse_detach_keys(spec) == want


@pytest.mark.parametrize("spec", ["ctrl-", "ctrl-ab", "ab", "a,,b", "ctrl-A"])
def test_bad_detach_keys(spec: str) -> None:
    with pytest.raises(EngineError) as info:
        make(detach_keys=spec)
    assert info.value.message == f"Invalid escape keys ({spec}) provided"


def test_detach_sequence_is_held_back_and_ends_the_stream() -> None:
    from compat_server.hijack import _ExecStreams

    class Session:
        def __init__(self) -> None:
            self.data = b""

        async def write(self, data: bytes) -> None:
            self.data += data

    async def go() -> tuple[bytes, bool]:
        _, _, inst = make(tty=True, attach_stdin=True)          # default keys: ctrl-p,ctrl-q
        s = Session()
        streams = _ExecStreams(s, inst)
        for chunk in (b"ab\x10", b"c", b"\x10", b"\x11", b"never"):
            await streams.write(chunk)
        return s.data, streams.detached.is_set()

    data, detached = asyncio.run(go())
    assert data == b"ab\x10c" and detached      # a lone ctrl-p passes; ctrl-p ctrl-q detaches, nothing after

    async def no_tty() -> bytes:
        _, _, inst = make(tty=False, attach_stdin=True)
        s = Session()
        await _ExecStreams(s, inst).write(b"\x10\x11x")
        return s.data
    assert asyncio.run(no_tty()) == b"\x10\x11x"   # only a tty exec watches for them


def test_exec_in_a_restarting_container() -> None:
    fc = FakeContainers()
    fc.c.state = ContainerState(status="restarting", restarting=True, started_at="2026-01-01T00:00:01Z")
    with pytest.raises(Conflict, match=f"Container {fc.c.id} is restarting, wait until the container is running"):
        ex.ExecService(fc).create("c", cmd=["true"], env=[], user="", working_dir="", tty=False,
                                  attach_stdin=False, attach_stdout=False, attach_stderr=False, privileged=False)
