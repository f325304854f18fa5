"""Real containers through ShimRuntime (root, busybox rootfs, real kernel)."""
from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest

from engine.errors import InvalidParameter
from tests.runtime.conftest import Bench, collect, run, wait_pid_gone


def test_echo_output_attach_and_log(bench: Bench) -> None:
    async def go() -> None:
        h = await bench.create(["sh", "-c", "echo hello; echo oops >&2; printf partial"])
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, err = await collect(a)
        st = await h.wait()
        await a.close()
        await h.close()
        assert out == b"hello\npartial"
        assert err == b"oops\n"
        assert st.exit_code == 0
        assert st.finished_at.endswith("Z")
    run(go())
    lines = bench.log_lines()
    assert [(x["stream"], x["log"]) for x in lines if x["stream"] == "stdout"] == [
        ("stdout", "hello\n"),
        ("stdout", "partial"),
    ]
    assert ("stderr", "oops\n") in [(x["stream"], x["log"]) for x in lines]
    exit_json = json.loads((bench.bundle / "exit.json").read_text())
    assert exit_json["exit_code"] == 0 and exit_json["signal"] is None and exit_json["oom_killed"] is False


@pytest.mark.parametrize("script,code", [("exit 3", 3), ("true", 0), ("false", 1)])
def test_exit_codes(bench: Bench, script: str, code: int) -> None:
    async def go() -> int:
        h = await bench.create(["sh", "-c", script])
        await h.start()
        st = await h.wait()
        await h.close()
        return st.exit_code
    assert run(go()) == code
    assert bench.runtime.read_exit_status(bench.bundle).exit_code == code


def test_sigkill_gives_137(bench: Bench) -> None:
    async def go() -> None:
        h = await bench.create(["sleep", "1000"])
        await h.start()
        await h.kill(signal.SIGKILL)
        st = await h.wait()
        await h.close()
        assert st.exit_code == 137
    run(go())
    assert json.loads((bench.bundle / "exit.json").read_text())["signal"] == 9


def test_sigterm_with_handler_gives_143_like_exit(bench: Bench) -> None:
    # PID 1 ignores signals it has no handler for, so `sleep` as PID 1 survives
    # SIGTERM (as under dockerd); a shell that traps it can exit 143.
    async def go() -> int:
        h = await bench.create(["sh", "-c", "trap 'exit 143' TERM; echo ready; while :; do sleep 0.05; done"])
        a = await h.attach(stdin=False, stdout=True, stderr=False)
        await h.start()
        first = await a.read()
        assert first == (1, b"ready\n")
        await h.kill(signal.SIGTERM)
        st = await h.wait()
        await a.close()
        await h.close()
        return st.exit_code
    assert run(go()) == 143


def test_stdin_through_cat(bench: Bench) -> None:
    async def go() -> None:
        h = await bench.create(["cat"], open_stdin=True, stdin_once=True)
        a = await h.attach(stdin=True, stdout=True, stderr=True)
        await h.start()
        await a.write(b"hi\n")
        await a.write(b"there")
        await a.close_stdin()
        out, _ = await collect(a)
        st = await h.wait()
        await a.close()
        await h.close()
        assert out == b"hi\nthere"
        assert st.exit_code == 0
    run(go())


def test_stdin_closed_without_open_stdin(bench: Bench) -> None:
    async def go() -> None:
        h = await bench.create(["cat"])
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, _ = await collect(a)
        assert out == b""
        assert (await h.wait()).exit_code == 0
        await a.close()
        await h.close()
    run(go())


def test_tty_output_and_console(bench: Bench) -> None:
    async def go() -> None:
        h = await bench.create(["sh", "-c", "tty; stty size; echo tick"], tty=True, console_size=(33, 101))
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, err = await collect(a)
        st = await h.wait()
        await a.close()
        await h.close()
        assert err == b""
        assert out.replace(b"\r\n", b"\n") == b"/dev/pts/0\n33 101\ntick\n"
        assert st.exit_code == 0
    run(go())


def test_tty_stdin_and_resize(bench: Bench) -> None:
    async def go() -> None:
        h = await bench.create(["sh"], tty=True, open_stdin=True)
        a = await h.attach(stdin=True, stdout=True, stderr=True)
        await h.start()
        await h.resize(40, 120)
        await a.write(b"stty size; exit 7\n")
        out, _ = await collect(a)
        st = await h.wait()
        await a.close()
        await h.close()
        assert b"40 120" in out
        assert st.exit_code == 7
    run(go())


def test_namespaces_hostname_pid1_loopback_mounts(bench: Bench) -> None:
    script = ("hostname; echo pid=$$; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
              "ip link show lo | head -1; grep -c . /proc/mounts; "
              "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; "
              "(echo 0 > /proc/sys/net/ipv4/ip_forward) 2>&1; ls /dev; "
              "grep -E ' /sys/fs/cgroup/memory | /proc/keys ' /proc/self/mountinfo | wc -l")
    async def go() -> bytes:
        h = await bench.create(["sh", "-c", script])
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, err = await collect(a)
        await h.wait()
        await a.close()
        await h.close()
        return out + err
    out = run(go()).decode()
    lines = out.splitlines()
    assert lines[0] == "box"
    assert lines[1] == "pid=1"
    assert "LOOPBACK,UP" in lines[3]
    assert "0" in lines
    assert "Read-only file system" in out
    for dev in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "fd", "stdin", "stdout", "stderr",
                "pts", "shm", "mqueue"):
        assert dev in lines, dev
    assert lines[-1] == "2"


def test_user_switch_and_caps(bench: Bench) -> None:
    script = "id -u; id -g; id -G; grep -E 'Cap(Eff|Bnd)' /proc/self/status"
    async def go(**kw: object) -> str:
        h = await bench.create(["sh", "-c", script], **kw)
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, err = await collect(a)
        await h.wait()
        await a.close()
        await h.close()
        return (out + err).decode()
    from engine.containers.hostaccess import resolve_user
    uid, gid, groups = resolve_user(bench.rootfs, "user1")
    out = run(go(uid=uid, gid=gid, additional_gids=groups))
    assert out.splitlines()[:3] == ["1000", "1000", "1000 2000"]
    # as under dockerd: a non-root process has no effective caps but the default bounding set
    assert "CapEff:\t0000000000000000" in out
    assert "CapBnd:\t00000000a80425fb" in out


def test_root_caps_match_dockerd(bench: Bench) -> None:
    async def go() -> str:
        h = await bench.create(["grep", "-E", "Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs", "/proc/self/status"],
                               no_new_privileges=True)
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, _ = await collect(a)
        await h.wait()
        await a.close()
        await h.close()
        return out.decode()
    out = run(go())
    assert "CapInh:\t0000000000000000" in out
    assert "CapPrm:\t00000000a80425fb" in out
    assert "CapEff:\t00000000a80425fb" in out
    assert "CapBnd:\t00000000a80425fb" in out
    assert "NoNewPrivs:\t1" in out


def test_cwd_created_when_missing(bench: Bench) -> None:
    async def go() -> str:
        h = await bench.create(["sh", "-c", "pwd; stat -c '%u:%g %a' ."], cwd="/work/dir", uid=1000, gid=1000)
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, err = await collect(a)
        await h.wait()
        await a.close()
        await h.close()
        return (out + err).decode()
    assert run(go()).splitlines() == ["/work/dir", "0:0 755"]


def test_readonly_rootfs_and_extra_bind_mount(bench: Bench, tmp_path) -> None:
    host_file = tmp_path / "hosts"
    host_file.write_text("127.0.0.1 localhost special\n")
    async def go() -> str:
        h = await bench.create(["sh", "-c", "cat /etc/hosts; touch /x 2>&1; touch /dev/shm/ok && echo shm-ok"],
                               readonly_rootfs=True,
                               extra_mounts=[("/etc/hosts", "bind", str(host_file), ("rbind", "rprivate"))])
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, err = await collect(a)
        await h.wait()
        await a.close()
        await h.close()
        return (out + err).decode()
    out = run(go())
    assert "special" in out
    assert "Read-only file system" in out
    assert "shm-ok" in out


@pytest.mark.parametrize("args,code,fragment", [
    (["nosuchcmd"], 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
    (["/nosuch"], 127, 'exec: "/nosuch": stat /nosuch: no such file or directory'),
    (["/etc"], 126, 'exec: "/etc": permission denied'),
    (["/notexec"], 126, 'exec: "/notexec": permission denied'),
])
def test_start_errors_like_dockerd(bench: Bench, args: list[str], code: int, fragment: str) -> None:
    async def go() -> None:
        with pytest.raises(InvalidParameter) as ei:
            await bench.create(args)
        assert fragment in ei.value.message
        assert ei.value.message.startswith("failed to create shim task: OCI runtime create failed")
        assert ei.value.exit_code == code  # type: ignore[attr-defined]
    run(go())
    assert not (bench.bundle / "shim.sock").exists()


def test_cwd_is_a_file(bench: Bench) -> None:
    async def go() -> None:
        with pytest.raises(InvalidParameter) as ei:
            await bench.create(["true"], cwd="/notexec")
        assert 'chdir to cwd ("/notexec") set in config.json failed: not a directory' in ei.value.message
    run(go())


def test_output_before_start_is_not_lost_and_many_attaches(bench: Bench) -> None:
    async def go() -> None:
        h = await bench.create(["sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done"])
        a1 = await h.attach(stdin=False, stdout=True, stderr=False)
        a2 = await h.attach(stdin=False, stdout=True, stderr=False)
        await h.start()
        (o1, _), (o2, _) = await asyncio.gather(collect(a1), collect(a2))
        await h.wait()
        for a in (a1, a2):
            await a.close()
        await h.close()
        expected = "".join(f"line{i}\n" for i in range(2000)).encode()
        assert o1 == expected and o2 == expected
    run(go())


def test_multiple_waiters(bench: Bench) -> None:
    async def go() -> None:
        h = await bench.create(["sh", "-c", "exit 5"])
        await h.start()
        a, b = await asyncio.gather(h.wait(), h.wait())
        assert a.exit_code == b.exit_code == 5
        await h.close()
    run(go())


def test_memory_and_pids_limits_applied(bench: Bench) -> None:
    async def go() -> str:
        h = await bench.create(
            ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"],
            resources={"memory": {"limit": 64 * 1024 * 1024}, "pids": {"limit": 50}},
        )
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, err = await collect(a)
        await h.wait()
        await a.close()
        await h.close()
        return (out + err).decode()
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("cgroup v1 memory controller not mounted")
    assert run(go()).split() == [str(64 * 1024 * 1024), "50"]


def test_oom_killed_recorded(bench: Bench) -> None:
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("cgroup v1 memory controller not mounted")
    async def go() -> None:
        # a shell growing a string until the 8 MiB limit kills it
        h = await bench.create(["sh", "-c", "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done"],
                               resources={"memory": {"limit": 8 * 1024 * 1024, "swap": 8 * 1024 * 1024}})
        await h.start()
        st = await h.wait()
        await h.close()
        assert st.exit_code == 137
        assert st.oom_killed
    run(go())


def test_host_network_and_pid_namespaces(bench: Bench) -> None:
    # --network host --pid host: only mount, uts and ipc are new
    async def go() -> str:
        h = await bench.create(["sh", "-c", "echo pid=$$; ls /sys/class/net | grep -c .; cat /proc/1/comm"],
                               namespaces=(("mount", None), ("uts", None), ("ipc", None)))
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, err = await collect(a)
        st = await h.wait()
        await a.close()
        await h.close()
        assert st.exit_code == 0, err
        return out.decode()
    out = run(go())
    lines = out.splitlines()
    assert lines[0] != "pid=1"
    assert int(lines[1]) >= 1  # the host's interfaces are visible
    assert lines[2] != "sh"


def test_large_output_with_slow_reader_loses_nothing(bench: Bench) -> None:
    async def go() -> None:
        # ~6 MiB through one attach that reads late: exercises the shim's backpressure
        h = await bench.create(
            ["sh", "-c", "i=0; while [ $i -lt 3000 ]; do head -c 2047 /dev/zero | tr '\\0' x; echo; i=$((i+1)); done"]
        )
        a = await h.attach(stdin=False, stdout=True, stderr=False)
        await h.start()
        total = 0
        while (fr := await a.read()) is not None:
            total += len(fr[1])
        assert (await h.wait()).exit_code == 0
        await a.close()
        await h.close()
        assert total == 3000 * 2048
    run(go(), timeout=60)
    assert sum(len(x["log"]) for x in bench.log_lines()) == 3000 * 2048


def test_pause_resume_stats_pids_update(bench: Bench) -> None:
    if not os.path.isdir("/sys/fs/cgroup/freezer"):
        pytest.skip("cgroup v1 freezer not mounted")
    async def go() -> None:
        h = await bench.create(["sh", "-c", "sleep 1000 & while read x; do echo $x; done"], open_stdin=True)
        a = await h.attach(stdin=True, stdout=True, stderr=False)
        await h.start()
        await a.write(b"one\n")
        assert await a.read() == (1, b"one\n")
        pids = await h.pids()
        assert h.pid in pids and len(pids) == 2
        st = await h.stats()
        assert st["memory_stats"]["usage"] > 0
        assert st["cpu_stats"]["cpu_usage"]["total_usage"] > 0
        assert st["pids_stats"]["current"] == 2
        await h.update({"pids": {"limit": 33}})
        assert (await h.stats())["pids_stats"]["limit"] == 33
        await h.pause()
        from tests.runtime.conftest import CGROUP_PARENT
        freezer = f"/sys/fs/cgroup/freezer/{CGROUP_PARENT}/{bench.cid}/freezer.state"
        assert open(freezer).read().strip() == "FROZEN"
        await a.write(b"two\n")   # buffered in the pipe while frozen
        await h.resume()
        assert open(freezer).read().strip() == "THAWED"
        assert await a.read() == (1, b"two\n")
        await h.kill(signal.SIGKILL)
        assert (await h.wait()).exit_code == 137
        await a.close()
        await h.close()
    run(go())


def test_volume_like_binds_ro_rw_and_tmpfs_and_device(bench: Bench, tmp_path) -> None:
    from engine.containers.devices import device_from_path
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "f").write_text("from-host\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    script = ("cat /data/f; echo new > /data/g; touch /deep/ro/x 2>&1; "
              "grep ' /run ' /proc/self/mountinfo | grep -c tmpfs; head -c 3 /dev/mynull | wc -c; echo ok")
    async def go() -> str:
        h = await bench.create(["sh", "-c", script], extra_mounts=[
            ("/data", "bind", str(vol), ("rbind", "rprivate")),
            ("/deep/ro", "bind", str(ro), ("rbind", "ro", "rprivate")),
            ("/run", "tmpfs", "tmpfs", ("nosuid", "nodev", "size=1m")),
        ], devices=(device_from_path("/dev/null", "/dev/mynull"),))
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, err = await collect(a)
        await h.wait()
        await a.close()
        await h.close()
        return (out + err).decode()
    out = run(go())
    assert "from-host" in out
    assert (vol / "g").read_text() == "new\n"
    assert "touch: /deep/ro/x: Read-only file system" in out
    assert out.splitlines()[-3:] == ["1", "0", "ok"]


def test_privileged_gets_every_capability_the_host_has(bench: Bench) -> None:
    host = next(int(x.split()[1], 16) for x in open("/proc/self/status") if x.startswith("CapPrm:"))
    async def go() -> str:
        h = await bench.create(["grep", "CapEff", "/proc/self/status"], privileged=True)
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, err = await collect(a)
        assert (await h.wait()).exit_code == 0, err
        await a.close()
        await h.close()
        return out.decode()
    assert int(run(go()).split()[1], 16) == host


def test_host_pid_namespace_leftovers_are_killed_at_exit(bench: Bench) -> None:
    async def go() -> None:
        # the init exits at once, leaving a background sleeper behind (no pid namespace to end it)
        h = await bench.create(["sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!"],
                               namespaces=(("mount", None), ("uts", None), ("ipc", None), ("network", None)))
        a = await h.attach(stdin=False, stdout=True, stderr=False)
        await h.start()
        out, _ = await collect(a)
        st = await h.wait()
        await a.close()
        await h.close()
        assert st.exit_code == 0
        sleeper = int(out.split()[0])
        assert wait_pid_gone(sleeper, 5)
    run(go())
