"""The init sequence on the recording fake: order, arguments and error reporting, no root needed."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.oci.spec import SpecInput, build_spec
from engine.runtime import syscalls as S
from engine.runtime.init import InitConfig, InitError, run_init
from engine.testing.syscalls import RecordingSyscalls


class FakeChannel:
    def __init__(self, replies: list[dict[str, Any] | None]) -> None:
        self.sent: list[tuple[dict[str, Any], int | None]] = []
        self.replies = list(replies)

    def send(self, msg: dict[str, Any], fd: int | None = None) -> None:
        self.sent.append((msg, fd))

    def recv(self) -> dict[str, Any] | None:
        return self.replies.pop(0) if self.replies else None


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    for d in ("bin", "etc", "dev", "proc", "sys"):
        (r / d).mkdir(parents=True)
    return r


def _cfg(rootfs: Path, replies: list[dict[str, Any] | None] | None = None, **kw: Any) -> InitConfig:
    kw.setdefault("args", ["sh", "-c", "true"])  # resolved on the host's PATH: the fake never pivots
    kw.setdefault("env", ["PATH=/usr/bin:/bin"])
    spec = build_spec(SpecInput(container_id="x", rootfs=str(rootfs), hostname="box", **kw))
    return InitConfig(spec=spec, channel=FakeChannel([{"type": "go"}] if replies is None else replies),
                      stdio=(10, 11, 12), cgroup_procs=["/cg/memory/x/cgroup.procs"],
                      cgroup_binds=[("/cg/memory/x", "memory")])


def _index(calls: list[tuple[Any, ...]], pred: Any) -> int:
    for i, c in enumerate(calls):
        if pred(c):
            return i
    raise AssertionError("call not found")


def test_order_of_the_init_sequence(rootfs: Path) -> None:
    sysc = RecordingSyscalls()
    cfg = _cfg(rootfs, uid=1000, gid=1000, additional_gids=[1000, 2000])
    run_init(cfg, sysc)
    calls = sysc.calls
    r = str(rootfs)
    idx = {
        "setsid": _index(calls, lambda c: c[0] == "setsid"),
        "stdio": _index(calls, lambda c: c == ("dup2", 10, 0)),
        "cgroup": _index(calls, lambda c: c == ("write_file", "/cg/memory/x/cgroup.procs", "0")),
        "unshare": _index(calls, lambda c: c[0] == "unshare"),
        "sysctl": _index(calls, lambda c: c[0] == "write_file" and c[1].startswith("/proc/sys/net")),
        "slave": _index(calls, lambda c: c[:3] == ("mount", None, "/") and c[4] == S.MS_SLAVE | S.MS_REC),
        "bindroot": _index(calls, lambda c: c[:3] == ("mount", r, r)),
        "proc": _index(calls, lambda c: c[0] == "mount" and c[3] == "proc"),
        "mknod": _index(calls, lambda c: c[0] == "mknod" and c[1] == f"{r}/dev/null"),
        "pivot": _index(calls, lambda c: c[0] == "pivot_root"),
        "umount_old": _index(calls, lambda c: c == ("umount2", ".", S.MNT_DETACH)),
        "hostname": _index(calls, lambda c: c == ("sethostname", "box")),
        "lo": _index(calls, lambda c: c[0] == "loopback_up"),
        "keepcaps": _index(calls, lambda c: c == ("prctl", S.PR_SET_KEEPCAPS, 1, 0)),
        "bset": _index(calls, lambda c: c[0] == "capbset_drop"),
        "groups": _index(calls, lambda c: c == ("setgroups", [1000, 2000])),
        "gid": _index(calls, lambda c: c == ("setresgid", 1000)),
        "uid": _index(calls, lambda c: c == ("setresuid", 1000)),
        "capset": _index(calls, lambda c: c[0] == "capset"),
        "chdir": max(i for i, c in enumerate(calls) if c == ("chdir", "/")),
        "pdeathsig": _index(calls, lambda c: c[:2] == ("prctl", S.PR_SET_PDEATHSIG)),
        "execve": _index(calls, lambda c: c[0] == "execve"),
    }
    order = sorted(idx, key=idx.__getitem__)
    assert order == list(idx), order
    flags = calls[idx["unshare"]][1]
    assert flags == S.CLONE_NEWNS | S.CLONE_NEWNET | S.CLONE_NEWUTS | S.CLONE_NEWIPC  # pid: the shim's job
    # non-root: bounding only, so effective/permitted end up empty
    assert calls[idx["capset"]][1:] == (0, 0, 0)
    # default capabilities stay in the bounding set
    dropped = {c[1] for c in calls if c[0] == "capbset_drop"}
    assert 21 in dropped and 0 not in dropped  # CAP_SYS_ADMIN dropped, CAP_CHOWN kept
    # "ready" was sent before execve, and only then
    assert cfg.channel.sent[0][0]["type"] == "ready"  # type: ignore[attr-defined]
    assert calls[-1][0] == "execve"
    assert calls[-1][1].endswith("/sh")
    assert calls[-1][2] == ["sh", "-c", "true"]


def test_no_exec_without_go(rootfs: Path) -> None:
    sysc = RecordingSyscalls()
    from engine.runtime.procbuild import Abort as _Abort
    with pytest.raises(_Abort):
        run_init(_cfg(rootfs, replies=[None]), sysc)
    assert "execve" not in sysc.names()


def test_tty_sends_pty_and_binds_console(rootfs: Path) -> None:
    sysc = RecordingSyscalls()
    cfg = _cfg(rootfs, tty=True)
    cfg.stdio = None
    run_init(cfg, sysc)
    sent = cfg.channel.sent  # type: ignore[attr-defined]
    assert sent[0][0] == {"type": "pty"} and sent[0][1] is not None
    assert ("create_file", f"{rootfs}/dev/console", 0) in sysc.calls
    assert any(c[0] == "mount" and c[2] == "/dev/console" for c in sysc.calls)
    assert "set_controlling_tty" in sysc.names()
    assert not any(c[0] == "dup2" and c[1] == 10 for c in sysc.calls)


def test_masked_and_readonly_paths_after_pivot(rootfs: Path) -> None:
    sysc = RecordingSyscalls()
    run_init(_cfg(rootfs, readonly_rootfs=True), sysc)
    pivot = sysc.names().index("pivot_root")
    # paths are container paths, checked on the host's /proc in this fake: /proc/keys exists on Linux
    keys = _index(sysc.calls, lambda c: c[:3] == ("mount", "/dev/null", "/proc/keys"))
    ro_sys = _index(sysc.calls, lambda c: c[0] == "mount" and c[2] == "/proc/sys" and c[4] & S.MS_RDONLY)
    ro_root = _index(sysc.calls, lambda c: c[:3] == ("mount", None, "/") and c[4] & S.MS_RDONLY)
    # runc's order: read-only paths, then masked ones, then the read-only root
    assert pivot < ro_sys < keys < ro_root


def test_mount_failure_is_reported_in_runc_words(rootfs: Path) -> None:
    sysc = RecordingSyscalls(fail={"mount": PermissionError(1, "Operation not permitted")})
    with pytest.raises(InitError) as ei:
        run_init(_cfg(rootfs), sysc)
    assert "operation not permitted" in ei.value.message
    assert "execve" not in sysc.names()


def test_missing_command(rootfs: Path) -> None:
    with pytest.raises(InitError) as ei:
        run_init(_cfg(rootfs, args=["nosuchcmd-xyz"]), RecordingSyscalls())
    assert ei.value.message == 'exec: "nosuchcmd-xyz": executable file not found in $PATH'
    assert ei.value.exit_code == 127


def test_namespace_paths_use_setns(rootfs: Path) -> None:
    sysc = RecordingSyscalls()
    run_init(
        _cfg(rootfs, namespaces=(("mount", None), ("network", "/run/netns/n1"), ("uts", None), ("pid", None))), sysc
    )
    assert ("setns", "/run/netns/n1", S.CLONE_NEWNET) in sysc.calls
    un = next(c for c in sysc.calls if c[0] == "unshare")
    assert un[1] == S.CLONE_NEWNS | S.CLONE_NEWUTS
    assert "loopback_up" not in sysc.names()  # the owner of a joined netns configures it


def test_rlimits_and_cwd_creation(rootfs: Path) -> None:
    sysc = RecordingSyscalls()
    run_init(_cfg(rootfs, rlimits=(("RLIMIT_NOFILE", 1024, 2048),), cwd="/nonexistent-dir-xyz/sub"), sysc)
    assert ("setrlimit", 7, 1024, 2048) in sysc.calls
    mk = [c for c in sysc.calls if c[0] == "mkdir" and c[1].startswith("/nonexistent-dir-xyz")]
    assert [c[1] for c in mk] == ["/nonexistent-dir-xyz", "/nonexistent-dir-xyz/sub"]
    assert sysc.names().index("mkdir") < sysc.names().index("setresuid")


def test_sysctls_outside_the_container_namespaces_are_refused(rootfs: Path) -> None:
    with pytest.raises(InitError) as ei:
        run_init(_cfg(rootfs, sysctls={"kernel.panic": "1"}), RecordingSyscalls())
    assert "kernel.panic" in ei.value.message
    with pytest.raises(InitError):  # host network: net.* would be the host's
        run_init(_cfg(rootfs, sysctls={"net.ipv4.ip_forward": "1"},
                      namespaces=(("mount", None), ("uts", None), ("pid", None))), RecordingSyscalls())
    sysc = RecordingSyscalls()
    run_init(_cfg(rootfs, sysctls={"kernel.shmmax": "1000", "net.ipv4.ip_forward": "1"}), sysc)
    assert ("write_file", "/proc/sys/kernel/shmmax", "1000") in sysc.calls


def test_recursively_read_only_bind(rootfs: Path, tmp_path: Path) -> None:
    """OCI "rro": bind, read-only remount, then mount_setattr over the whole subtree; "ro" skips the last."""
    src = tmp_path / "src"
    src.mkdir()
    sysc = RecordingSyscalls()
    run_init(_cfg(rootfs, extra_mounts=[("/rro", "bind", str(src), ("rbind", "rro", "rprivate")),
                                         ("/ro", "bind", str(src), ("rbind", "ro", "rprivate"))]), sysc)
    rro, ro = str(rootfs / "rro"), str(rootfs / "ro")
    calls = sysc.calls
    bind = _index(calls, lambda c: c[0] == "mount" and c[1] == str(src) and c[2] == rro)
    remount = _index(calls, lambda c: c[0] == "mount" and c[2] == rro and c[4] & S.MS_REMOUNT and c[4] & S.MS_RDONLY)
    setattr_ = _index(calls, lambda c: c == ("make_readonly_recursive", rro))
    assert bind < remount < setattr_
    assert ("make_readonly_recursive", ro) not in calls
    _index(calls, lambda c: c[0] == "mount" and c[2] == ro and c[4] & S.MS_REMOUNT and c[4] & S.MS_RDONLY)



def test_a_tty_gets_its_console_size_before_the_process_runs() -> None:
    """The init sets consoleSize on the pty slave before it becomes the process's terminal (a
    resize by the shim after "pty" could come after the process read it: `stty size` found none)."""
    from engine.runtime.procbuild import open_terminal as _open_terminal

    sysc = RecordingSyscalls()
    chan = FakeChannel([])
    _open_terminal(chan, sysc, console=False, size={"height": 33, "width": 111})
    sizes = [c for c in sysc.calls if c[0] == "set_window_size"]
    assert len(sizes) == 1 and sizes[0][2:] == (33, 111)
    names = sysc.names()
    assert names.index("set_window_size") < names.index("set_controlling_tty")
    assert chan.sent[0][0] == {"type": "pty"}
    sysc = RecordingSyscalls()
    _open_terminal(FakeChannel([]), sysc, console=False)
    assert "set_window_size" not in sysc.names()
