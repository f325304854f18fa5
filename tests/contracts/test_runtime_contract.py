"""The RuntimeExecutor / ContainerHandle contract (engine/runtime/api.py), run against
the shim runtime (real processes, namespaces, cgroups) and the in-memory fake."""
from __future__ import annotations

import json
import signal

import pytest

from engine.errors import Conflict, EngineError
from engine.runtime.api import (
    STDERR,
    STDOUT,
    ContainerHandle,
    ExecProcess,
    RuntimeExecutor,
    Stream,
)
from tests.contracts.conftest import RuntimeSubject, eventually, run


async def _collect(session: Stream) -> tuple[bytes, bytes]:
    out, err = b"", b""
    while (frame := await session.read()) is not None:
        if frame[0] == STDOUT:
            out += frame[1]
        elif frame[0] == STDERR:
            err += frame[1]
    return out, err


def test_implements_the_protocols(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        assert isinstance(runtime_subject.runtime, RuntimeExecutor)
        h = await runtime_subject.create(["true"])
        assert isinstance(h, ContainerHandle)
        await h.start()
        await h.wait()
        await h.close()
    run(go())


@pytest.mark.parametrize("script,code", [("exit 3", 3), ("true", 0), ("false", 1)])
def test_exit_code(runtime_subject: RuntimeSubject, script: str, code: int) -> None:
    async def go() -> None:
        h = await runtime_subject.create(["sh", "-c", script])
        await h.start()
        status = await h.wait()
        assert status.exit_code == code
        assert status.finished_at.endswith("Z")
        assert (await h.wait()) == status          # waiting again gives the same answer
        assert h.exited
        await h.kill(signal.SIGKILL)                # a no-op once it has exited
        await h.close()
        recorded = runtime_subject.runtime.read_exit_status(runtime_subject.bundle)
        assert recorded is not None and recorded.exit_code == code
    run(go())


def test_attach_before_start_sees_all_output(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        h = await runtime_subject.create(["sh", "-c", "echo hello; echo oops >&2; exit 0"])
        session = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        assert await _collect(session) == (b"hello\n", b"oops\n")
        await session.close()
        await h.wait()
        await h.close()
    run(go())


def test_stdin_reaches_the_process(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        h = await runtime_subject.create(["cat"], open_stdin=True, stdin_once=True)
        session = await h.attach(stdin=True, stdout=True, stderr=True)
        await h.start()
        await session.write(b"ping\n")
        await session.close_stdin()
        assert await _collect(session) == (b"ping\n", b"")
        assert (await h.wait()).exit_code == 0
        await session.close()
        await h.close()
    run(go())


def test_first_process_ignores_signals_without_a_handler_but_not_sigkill(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        h = await runtime_subject.create(["sleep", "1000"])
        await h.start()
        assert h.pid > 0
        await h.kill(signal.SIGTERM)     # PID 1 without a handler: nothing happens
        assert not h.exited
        await h.kill(signal.SIGKILL)
        assert (await h.wait()).exit_code == 137    # not 143: the SIGTERM did not end it
        await h.close()
    run(go())


def test_create_with_a_missing_command_fails_with_127(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        with pytest.raises(EngineError) as info:
            await runtime_subject.create(["no-such-program"])
        assert getattr(info.value, "exit_code", None) == 127
        assert 'exec: "no-such-program": executable file not found in $PATH' in info.value.message
        await runtime_subject.runtime.cleanup(runtime_subject.bundle)
    run(go())


def test_exec_output_exit_code_and_signals(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        h = await runtime_subject.create(["sleep", "1000"])
        await h.start()
        proc = await h.exec("e1", args=["sh", "-c", "echo in; echo err >&2; exit 4"], env=["PATH=/bin"])
        assert isinstance(proc, ExecProcess)
        assert await _collect(proc) == (b"in\n", b"err\n")
        assert (await proc.wait()).exit_code == 4
        await proc.close()

        # an exec'd process is not PID 1: SIGTERM ends it
        sleeper = await h.exec("e2", args=["sleep", "1000"], env=["PATH=/bin"])
        assert sleeper.pid > 0
        await sleeper.kill(signal.SIGTERM)
        assert (await sleeper.wait()).exit_code == 143
        await sleeper.close()

        with pytest.raises(EngineError) as info:
            await h.exec("e3", args=["no-such-program"], env=["PATH=/bin"])
        assert getattr(info.value, "exit_code", None) == 127
        assert info.value.message.startswith("OCI runtime exec failed")

        await h.kill(signal.SIGKILL)
        await h.wait()
        with pytest.raises(Conflict):
            await h.exec("e4", args=["true"], env=["PATH=/bin"])
        await h.close()
    run(go())


def test_a_restarted_daemon_reconnects_to_a_live_container(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        h = await runtime_subject.create(["sleep", "1000"])
        await h.start()
        pid = h.pid
        await h.close()                  # the daemon goes away; the container keeps running
        runtime = runtime_subject.restarted_runtime()
        again = await runtime.connect(runtime_subject.cid, runtime_subject.bundle)
        assert again is not None and again.pid == pid and not again.exited
        await again.kill(signal.SIGKILL)
        assert (await again.wait()).exit_code == 137
        await again.close()
        await runtime.cleanup(runtime_subject.bundle)
    run(go())


def test_a_run_that_ended_while_nobody_was_connected_leaves_its_status(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        h = await runtime_subject.create(["sh", "-c", "exit 5"])
        await h.start()
        await h.close()
        runtime = runtime_subject.restarted_runtime()
        status = await eventually(lambda: runtime.read_exit_status(runtime_subject.bundle))
        assert status.exit_code == 5
        # once the status is written the shim is on its way out: connect finds nothing live
        handle = await runtime.connect(runtime_subject.cid, runtime_subject.bundle)
        if handle is not None:           # it may still be delivering its last words
            assert (await handle.wait()).exit_code == 5
            await handle.close()
        await runtime.cleanup(runtime_subject.bundle)
        await runtime.cleanup(runtime_subject.bundle)     # idempotent
    run(go())


def test_pids_stats_update_pause_resume(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        h = await runtime_subject.create(["sleep", "1000"])
        await h.start()
        assert h.pid in await h.pids()
        stats = await h.stats()
        assert stats["pids_stats"]["current"] >= 1
        await h.update({"pids": {"limit": 50}})
        await h.pause()
        await h.resume()
        proc = await h.exec("after-resume", args=["sh", "-c", "echo alive"], env=["PATH=/bin"])
        assert await _collect(proc) == (b"alive\n", b"")
        assert (await proc.wait()).exit_code == 0
        await proc.close()
        await h.kill(signal.SIGKILL)
        assert (await h.wait()).exit_code == 137
        await h.close()
    run(go())


def test_output_goes_to_the_json_log(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        h = await runtime_subject.create(["sh", "-c", "echo to-log; echo err-log >&2"])
        await h.start()
        await h.wait()
        await h.close()
    run(go())
    lines = [json.loads(x) for x in runtime_subject.log_path.read_text().splitlines() if x.strip()]
    assert sorted((x["stream"], x["log"]) for x in lines) == [("stderr", "err-log\n"), ("stdout", "to-log\n")]
    assert all(x["time"].endswith("Z") for x in lines)


def test_a_tty_merges_the_streams_and_translates_newlines(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        h = await runtime_subject.create(["sh", "-c", "echo out; echo err >&2"], tty=True)
        session = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        assert await _collect(session) == (b"out\r\nerr\r\n", b"")
        await session.close()
        assert (await h.wait()).exit_code == 0
        await h.close()
    run(go())


def test_exec_with_stdin(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        h = await runtime_subject.create(["sleep", "1000"])
        await h.start()
        proc = await h.exec("cat", args=["cat"], env=["PATH=/bin"], open_stdin=True)
        await proc.write(b"through stdin\n")
        await proc.close_stdin()
        assert await _collect(proc) == (b"through stdin\n", b"")
        assert (await proc.wait()).exit_code == 0
        await proc.close()
        stats = await h.stats()
        assert {"memory_stats", "cpu_stats", "pids_stats"} <= set(stats)
        await h.kill(signal.SIGKILL)
        await h.wait()
        await h.close()
    run(go())


def test_a_lost_shim_leaves_no_status_and_cleanup_ends_its_container(runtime_subject: RuntimeSubject) -> None:
    async def go() -> None:
        h = await runtime_subject.create(["sleep", "1000"])
        await h.start()
        await h.close()                  # the daemon went away; then the shim is killed
        runtime_subject.lose_shim()
        runtime = runtime_subject.restarted_runtime()
        assert await runtime.connect(runtime_subject.cid, runtime_subject.bundle) is None
        assert runtime.read_exit_status(runtime_subject.bundle) is None
        await runtime.cleanup(runtime_subject.bundle)     # the orphaned container goes with it
        await runtime.cleanup(runtime_subject.bundle)
    run(go())
    # (shim subject) the fixture's leak check: no process, mount or cgroup of this container is left
