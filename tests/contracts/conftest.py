"""Subjects for the contract suites: each Protocol's real implementation and its fake.

Every test in tests/contracts/ takes a parametrized subject fixture, so it runs
once per implementation; the real ones use real parts (a shim and a kernel for
the runtime, SQLite and the disk for the stores)."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from engine.oci.spec import SpecInput, build_spec
from engine.runtime.api import ContainerHandle, RuntimeExecutor
from engine.runtime.client import ShimRuntime
from engine.testing.runtime import FakeRuntime
from tests.runtime.conftest import CGROUP_PARENT, wait_pid_gone

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 30) -> T:
    """Run a coroutine with an overall deadline: a hung test fails instead of hanging."""
    async def guarded() -> T:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(guarded())


async def eventually(check: Callable[[], T | None], timeout: float = 20) -> T:
    """Poll ``check`` until it returns something other than None/False, or fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- runtime subjects
class RuntimeSubject:
    """One container's bundle and the executor that runs it."""

    kind = ""

    def __init__(self, base: Path) -> None:
        self.cid = uuid.uuid4().hex
        self.base = base
        self.bundle = base / "bundle"
        self.rootfs = self.bundle / "rootfs"
        self.log_path = base / "container.log"
        self.rootfs.mkdir(parents=True)
        self.runtime: RuntimeExecutor = self.make_runtime()

    def make_runtime(self) -> RuntimeExecutor:
        raise NotImplementedError

    def restarted_runtime(self) -> RuntimeExecutor:
        """The executor a restarted daemon would build."""
        raise NotImplementedError

    async def create(self, args: list[str], *, tty: bool = False, open_stdin: bool = False,
                     stdin_once: bool = False) -> ContainerHandle:
        spec = build_spec(SpecInput(
            container_id=self.cid, rootfs=str(self.rootfs), args=args, tty=tty, hostname="box",
            env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=box"],
            cgroups_path=f"/{CGROUP_PARENT}/{self.cid}"))
        (self.bundle / "config.json").write_text(json.dumps(spec))
        return await self.runtime.create(self.cid, self.bundle, log_path=self.log_path, tty=tty,
                                         open_stdin=open_stdin, stdin_once=stdin_once)

    def cleanup(self) -> list[str]:
        return []




class FakeRuntimeSubject(RuntimeSubject):
    kind = "fake"

    def make_runtime(self) -> RuntimeExecutor:
        self.fake = FakeRuntime()
        return self.fake

    def restarted_runtime(self) -> RuntimeExecutor:
        return self.fake        # the fake's containers live in the runtime object ("the machine")

    def lose_shim(self) -> None:
        self.fake.shim_lost(self.cid)


class ShimRuntimeSubject(RuntimeSubject):
    kind = "shim"

    def __init__(self, base: Path, lower: Path) -> None:
        from tests.runtime.conftest import Bench

        self.bench = Bench(base, lower)       # an overlay rootfs of busybox, and its leak check
        self.cid = self.bench.cid
        self.base = base
        self.bundle = self.bench.bundle
        self.rootfs = self.bench.rootfs
        self.log_path = self.bench.log_path
        self.runtime = self.make_runtime()

    def make_runtime(self) -> RuntimeExecutor:
        return ShimRuntime(sys.executable, self.base)

    def restarted_runtime(self) -> RuntimeExecutor:
        return ShimRuntime(sys.executable, self.base)

    def cleanup(self) -> list[str]:
        return self.bench.cleanup()

    def lose_shim(self) -> None:
        state = json.loads((self.bundle / "state.json").read_text())
        shim = int(state["shim_pid"])
        os.kill(shim, signal.SIGKILL)
        if not wait_pid_gone(shim, 10):
            raise AssertionError(f"shim {shim} survived SIGKILL")


@pytest.fixture(scope="session")
def busybox_lower(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.runtime.conftest import APPLETS, BUSYBOX

    if os.geteuid() != 0 or not os.path.exists(BUSYBOX):
        pytest.fail("the shim runtime's contract needs root and busybox-static at /bin/busybox")
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "tmp").mkdir(mode=0o1777)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    return root


@pytest.fixture(params=["fake", "shim"])
def runtime_subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeSubject]:
    subject: RuntimeSubject
    if request.param == "fake":
        subject = FakeRuntimeSubject(tmp_path)
    else:
        subject = ShimRuntimeSubject(tmp_path, request.getfixturevalue("busybox_lower"))
    leaked = []
    try:
        yield subject
    finally:
        leaked = subject.cleanup()
    assert not leaked, f"leaked: {leaked}"


@pytest.fixture(scope="session", autouse=True)
def _cgroup_parent_cleanup() -> Iterator[None]:
    yield
    base = "/sys/fs/cgroup"
    if os.path.isdir(base):
        for hierarchy in os.listdir(base):
            d = os.path.join(base, hierarchy, CGROUP_PARENT)
            if os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError:
                    pass

