"""docker exec: processes started inside a running container through its shim."""
from __future__ import annotations

import signal

import pytest

from engine.errors import Conflict, InvalidParameter
from tests.runtime.conftest import Bench, collect, run

PATH = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


async def _running(bench: Bench, **kw: object):  # type: ignore[no-untyped-def]
    h = await bench.create(["sh", "-c", "echo $$ > /tmp/init; while :; do sleep 1; done"], **kw)
    await h.start()
    return h


async def _stop(h) -> None:  # type: ignore[no-untyped-def]
    await h.kill(signal.SIGKILL)
    await h.wait()
    await h.close()


def test_exec_sees_container_namespaces(bench: Bench) -> None:
    async def go() -> None:
        h = await _running(bench)
        ex = await h.exec("e1", args=["sh", "-c", "hostname; cat /proc/1/comm; echo pid=$$; pwd; echo err >&2; exit 4"],
                          env=PATH, cwd="/tmp")
        out, err = await collect(ex)
        st = await ex.wait()
        await ex.close()
        lines = out.decode().splitlines()
        assert lines[0] == "box"
        assert lines[1] == "sh"          # the container's init is PID 1 here
        assert lines[2] != "pid=1" and lines[2].startswith("pid=")
        assert lines[3] == "/tmp"
        assert err == b"err\n"
        assert st.exit_code == 4
        assert h.pid != ex.pid
        await _stop(h)
    run(go())
    # exec output is not part of the container's log, as with dockerd
    assert not any("err" in x["log"] for x in bench.log_lines())


def test_exec_stdin_user_and_tty(bench: Bench) -> None:
    async def go() -> None:
        h = await _running(bench)
        ex = await h.exec("e2", args=["cat"], env=PATH, open_stdin=True)
        await ex.write(b"ping\n")
        await ex.close_stdin()
        out, _ = await collect(ex)
        assert out == b"ping\n" and (await ex.wait()).exit_code == 0
        await ex.close()

        ex = await h.exec("e3", args=["id"], env=PATH, uid=1000, gid=1000, additional_gids=[1000, 2000])
        out, _ = await collect(ex)
        assert out.startswith(b"uid=1000(user1) gid=1000(grp1) groups=1000(grp1),2000(extra)")
        await ex.close()

        ex = await h.exec("e4", args=["sh", "-c", "tty; stty size"], env=PATH, tty=True, console_size=(20, 70))
        out, _ = await collect(ex)
        assert out.replace(b"\r\n", b"\n") == b"/dev/pts/0\n20 70\n"
        await ex.close()
        await _stop(h)
    run(go())


def test_exec_errors(bench: Bench) -> None:
    async def go() -> None:
        h = await _running(bench)
        with pytest.raises(InvalidParameter) as ei:
            await h.exec("e5", args=["nosuchcmd"], env=PATH)
        assert ei.value.message == ('OCI runtime exec failed: exec failed: unable to start container process: '
                                    'exec: "nosuchcmd": executable file not found in $PATH: unknown')
        assert ei.value.exit_code == 127  # type: ignore[attr-defined]
        with pytest.raises(InvalidParameter) as ei:
            await h.exec("e5b", args=["/no/such/bin"], env=PATH)
        assert "stat /no/such/bin: no such file or directory" in ei.value.message
        await _stop(h)
        with pytest.raises(Conflict) as ci:
            await h.exec("e6", args=["true"], env=PATH)
        assert "is not running" in ci.value.message
    run(go())


def test_exec_killed_with_container(bench: Bench) -> None:
    async def go() -> None:
        h = await _running(bench)
        ex = await h.exec("e7", args=["sleep", "1000"], env=PATH)
        await h.kill(signal.SIGKILL)
        st = await ex.wait()
        assert st.exit_code == 137
        assert (await h.wait()).exit_code == 137
        await ex.close()
        await h.close()
    run(go())


def test_exec_gets_the_container_seccomp_filter(bench: Bench) -> None:
    async def go() -> None:
        h = await _running(bench)
        ex = await h.exec("e8", args=["sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true || echo denied"],
                          env=PATH)
        out, _ = await collect(ex)
        await ex.close()
        assert b"Seccomp:\t2" in out and b"denied" in out
        await _stop(h)
    run(go())


def test_exec_joins_every_cgroup_of_the_container(bench: Bench) -> None:
    """The exec joins through `tasks` on v1 (the fast path): it must end up in the
    same cgroup as the init in every hierarchy, and so be killed/counted with it."""
    async def go() -> None:
        h = await _running(bench)
        ex = await h.exec("e9", args=["sleep", "1000"], env=PATH)
        with open(f"/proc/{h.pid}/cgroup") as f:
            init_groups = sorted(f.read().splitlines())
        with open(f"/proc/{ex.pid}/cgroup") as f:
            exec_groups = sorted(f.read().splitlines())
        assert exec_groups == init_groups
        assert any(bench.cid in line for line in init_groups)
        await ex.kill(signal.SIGKILL)
        assert (await ex.wait()).exit_code == 137
        await ex.close()
        await _stop(h)
    run(go())
