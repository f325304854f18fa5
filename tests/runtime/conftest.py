"""Fixtures for running real containers: a busybox rootfs, per-test overlay
bundles, and leak checks (mounts, cgroups, processes) that run even when the
test fails."""
from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from engine.oci.spec import SpecInput, build_spec
from engine.runtime.client import ShimRuntime

T = TypeVar("T")

BUSYBOX = "/bin/busybox"
APPLETS = (
    "sh",
    "echo",
    "cat",
    "ls",
    "id",
    "hostname",
    "sleep",
    "true",
    "false",
    "grep",
    "tty",
    "stat",
    "pwd",
    "mount",
    "ps",
    "head",
    "kill",
    "touch",
    "wc",
    "ip",
    "ulimit",
    "env",
    "test",
    "stty",
    "printf",
    "tr",
    "unshare",
)
CGROUP_PARENT = f"pydockerd-test-{os.getpid()}"


def run(coro: Awaitable[T], timeout: float = 30) -> T:
    """Run a coroutine with an overall deadline (a hung test fails instead of hanging CI)."""
    async def guarded() -> T:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(guarded())


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates namespaces, mounts and cgroups")
    if not os.path.exists(BUSYBOX):
        pytest.skip("needs busybox-static at /bin/busybox")


@pytest.fixture(scope="session", autouse=True)
def _log_writer() -> None:
    try:
        import engine.logs.jsonfile  # noqa: F401
    except ImportError:
        os.environ["PYDOCKERD_SHIM_LOG_WRITER"] = "tests.runtime.stub_log:StubWriter"


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need_root()
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "tmp").mkdir(mode=0o1777)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for a in APPLETS:
        os.symlink("busybox", root / "bin" / a)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        "user1:x:1000:1000::/home/user1:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\ngrp1:x:1000:\nextra:x:2000:user1\n")
    (root / "notexec").write_text("data\n")
    return root


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(path)]


def _cgroup_dirs(cid: str) -> list[str]:
    out = []
    base = "/sys/fs/cgroup"
    for h in os.listdir(base):
        d = os.path.join(base, h, CGROUP_PARENT, cid)
        if os.path.isdir(d):
            out.append(d)
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie reparented to us or init is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_pid_gone(pid: int, timeout: float = 10) -> bool:
    """Block until ``pid`` exits (pidfd readiness, no polling sleeps)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        r, _, _ = select.select([fd], [], [], timeout)
        return bool(r)
    finally:
        os.close(fd)


class Bench:
    """One container's bundle on an overlay of the busybox rootfs."""

    def __init__(self, base: Path, lower: Path) -> None:
        self.cid = uuid.uuid4().hex
        self.base = base
        self.bundle = base / "bundle"
        self.rootfs = self.bundle / "rootfs"
        self.log_path = base / "container.log"
        for d in ("upper", "work"):
            (base / d).mkdir()
        self.rootfs.mkdir(parents=True)
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={lower},upperdir={base / 'upper'},workdir={base / 'work'}", str(self.rootfs)],
            check=True,
        )
        self.runtime = ShimRuntime(sys.executable, base)

    def write_spec(self, args: list[str], **kw: Any) -> dict[str, Any]:
        kw.setdefault("env", ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=box"])
        kw.setdefault("hostname", "box")
        kw.setdefault("cgroups_path", f"/{CGROUP_PARENT}/{self.cid}")
        spec = build_spec(SpecInput(container_id=self.cid, rootfs=str(self.rootfs), args=args, **kw))
        (self.bundle / "config.json").write_text(json.dumps(spec))
        return spec

    async def create(self, args: list[str], *, tty: bool = False, open_stdin: bool = False,
                     stdin_once: bool = False, console_size: tuple[int, int] | None = None, **kw: Any) -> Any:
        self.write_spec(args, tty=tty, **kw)
        return await self.runtime.create(self.cid, self.bundle, log_path=self.log_path, tty=tty,
                                         open_stdin=open_stdin, stdin_once=stdin_once, console_size=console_size)

    def pids(self) -> list[int]:
        out = []
        for name in ("shim.pid", "init.pid"):
            try:
                out.append(int((self.bundle / name).read_text()))
            except (FileNotFoundError, ValueError):
                pass
        return out

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.log_path.read_text().splitlines() if x.strip()]

    def cleanup(self) -> list[str]:
        """Kill what is left, unmount, and return what had leaked (for the assertion)."""
        leaks: list[str] = []
        for pid in self.pids():
            # a shim exits right after delivering the exit event: give it a moment
            if not wait_pid_gone(pid, 3) and _pid_alive(pid):
                leaks.append(f"process {pid}")
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
                wait_pid_gone(pid)
        subprocess.run(["umount", "-l", str(self.rootfs)], check=False)
        extra = _mounts_under(str(self.base))
        for m in extra:
            leaks.append(f"mount {m}")
            subprocess.run(["umount", "-l", m], check=False)
        for d in _cgroup_dirs(self.cid):
            leaks.append(f"cgroup {d}")
            try:
                os.rmdir(d)
            except OSError:
                pass
        return leaks


@pytest.fixture
def bench(tmp_path: Path, busybox_rootfs: Path) -> Iterator[Bench]:
    b = Bench(tmp_path, busybox_rootfs)
    leaked: list[str] = []
    try:
        yield b
    finally:
        leaked = b.cleanup()
    assert not leaked, f"leaked: {leaked}"


@pytest.fixture(scope="session", autouse=True)
def _cgroup_parent_cleanup() -> Iterator[None]:
    yield
    base = "/sys/fs/cgroup"
    if os.path.isdir(base):
        for h in os.listdir(base):
            d = os.path.join(base, h, CGROUP_PARENT)
            if os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError:
                    pass


async def collect(session: Any) -> tuple[bytes, bytes]:
    out, err = b"", b""
    while (fr := await session.read()) is not None:
        if fr[0] == 1:
            out += fr[1]
        else:
            err += fr[1]
    return out, err


AsyncFn = Callable[..., Awaitable[Any]]


@pytest.fixture(autouse=True)
def _keep_signal_dispositions():
    """Init code run in-process with the recording fake resets signal handlers just
    before its (fake) execve; give the pytest process its own back afterwards, or a
    later write to a closed socket kills the whole run with SIGPIPE."""
    import signal as _signal

    sigs = (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGCHLD, _signal.SIGINT, _signal.SIGTERM)
    saved = {s: _signal.getsignal(s) for s in sigs}
    mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, set())
    yield
    for s, handler in saved.items():
        if handler is not None:
            _signal.signal(s, handler)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
