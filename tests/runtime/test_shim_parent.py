"""Shims forked by the preloaded shim parent: fd hygiene, the parent's death, the fallback."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from engine.runtime import spawner
from engine.runtime.client import _is_shim, cleanup_bundle
from engine.runtime.shimstate import proc_start_time
from tests.runtime.conftest import Bench, collect, run, wait_pid_gone


def _fd_targets(pid: int) -> dict[int, str]:
    base = f"/proc/{pid}/fd"
    out = {}
    for fd in os.listdir(base):
        try:
            out[int(fd)] = os.readlink(f"{base}/{fd}")
        except FileNotFoundError:
            pass
    return out


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def _run_sleeper(bench: Bench) -> tuple[object, int]:
    h = await bench.create(["sleep", "100"])
    await h.start()
    # "go" was sent; the init's fds of the shim close at its execve: poll for that
    deadline = time.monotonic() + 10
    while _cmdline(h.pid) != "sleep 100":
        assert time.monotonic() < deadline, "the container's process did not exec"
        await asyncio.sleep(0.005)
    return h, int((bench.bundle / "shim.pid").read_text())


async def _finish(h: object) -> int:
    await h.kill(signal.SIGKILL)  # type: ignore[attr-defined]
    st = await h.wait()  # type: ignore[attr-defined]
    await h.close()  # type: ignore[attr-defined]
    return int(st.exit_code)


def test_forked_shim_holds_nothing_of_its_parent(bench: Bench) -> None:
    async def go() -> None:
        h, shim = await _run_sleeper(bench)
        parent = bench.runtime._spawner.parent_pid
        assert parent is not None, "the shim parent serves starts"
        theirs = set(_fd_targets(parent).values()) - {"/dev/null"}
        assert any(t.startswith("socket:") for t in theirs) and any(t.endswith("shim-parent.log") for t in theirs)
        for pid in (shim, h.pid):
            leaked = theirs & set(_fd_targets(pid).values())
            assert not leaked, f"process {pid} holds the shim parent's {leaked}"
        assert sorted(_fd_targets(h.pid)) == [0, 1, 2]
        # a session of its own (not the parent's, not ours), nobody's child: it
        # outlives the parent and the daemon
        assert os.getsid(shim) not in (os.getsid(parent), os.getsid(0)) and _ppid(shim) != parent
        # named like a freshly started shim, so ps and cleanups can tell which it is
        assert "engine.runtime.shim" in _cmdline(shim) and str(bench.bundle) in _cmdline(shim)
        assert await _finish(h) == 137
        bench.runtime.close()
        assert wait_pid_gone(parent)
    run(go())


def test_parent_killed_running_container_unaffected_next_start_forks_from_a_new_one(
        bench: Bench, tmp_path: Path, busybox_rootfs: Path) -> None:
    async def go() -> None:
        h, shim = await _run_sleeper(bench)
        parent = bench.runtime._spawner.parent_pid
        assert parent is not None
        os.kill(parent, signal.SIGKILL)
        assert wait_pid_gone(parent)
        os.kill(h.pid, 0)  # the container and its shim live on
        os.kill(shim, 0)
        other = Bench(tmp_path / "second", busybox_rootfs)
        other.runtime = bench.runtime  # the same daemon starts its next container
        try:
            h2 = await other.create(["echo", "next"])
            await h2.start()
            out, _ = await collect(await h2.attach(stdin=False, stdout=True, stderr=True, logs_replay=True))
            st = await h2.wait()
            await h2.close()
            assert (st.exit_code, out) == (0, b"next\n")
            new_parent = bench.runtime._spawner.parent_pid
            assert new_parent is not None and new_parent != parent
        finally:
            assert other.cleanup() == []
        assert await _finish(h) == 137
        bench.runtime.close()
    (tmp_path / "second").mkdir()
    run(go())


def test_without_a_parent_the_shim_starts_in_a_fresh_interpreter(
        bench: Bench, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(spawner, "PARENT_BOOT", "import sys; sys.exit(3)")
    caplog.set_level(logging.WARNING, logger="engine.runtime.spawner")

    async def go() -> None:
        h, shim = await _run_sleeper(bench)
        assert bench.runtime._spawner.parent_pid is None
        assert "engine.runtime.shim import main" in _cmdline(shim)
        assert await _finish(h) == 137
    run(go())
    assert any("fresh interpreter" in r.getMessage() and "exit status 3" in r.getMessage() for r in caplog.records)


def test_a_dead_shim_is_told_from_a_reused_pid(bench: Bench) -> None:
    async def go() -> None:
        h, shim = await _run_sleeper(bench)
        start = proc_start_time(shim)
        assert start and _is_shim(shim, bench.bundle, start)
        assert not _is_shim(shim, bench.bundle, start + 1), "another process with the shim's pid"
        cleanup_bundle(bench.bundle)  # a live shim is left alone
        os.kill(h.pid, 0)
        assert await _finish(h) == 137
    run(go())


def test_every_request_of_the_protocol_has_a_handler(bench: Bench) -> None:
    from engine.errors import EngineError
    from engine.runtime import shim as shim_module
    from engine.runtime.shimops import OPS
    documented = {"hello", "start", "kill", "resize", "attach", "close_stdin", "wait", "pause", "resume",
                  "update", "stats", "pids", "exec"}
    assert set(OPS) == documented
    for op in documented:
        assert f"\n    {op} " in shim_module.__doc__ or f" / {op} " in shim_module.__doc__, op

    async def go() -> None:
        h, _ = await _run_sleeper(bench)
        with pytest.raises(EngineError, match="unknown op 'bogus'"):
            await h._call("bogus")
        assert len(await h.pids()) == 1  # the connection still serves
        assert await _finish(h) == 137
    run(go())
