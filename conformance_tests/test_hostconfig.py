"""HostConfig options that change what the container sees."""
from __future__ import annotations

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import inspect, ok

BUSYBOX = "busybox"


@pytest.mark.reference_differs("dockerd's runc cannot apply the full capability set on this machine "
                               "('unable to apply caps: operation not permitted')")
def test_privileged(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "--privileged", BUSYBOX, "sh", "-c", "grep CapEff /proc/self/status"))
    assert out.split()[1] != "00000000a80425fb"


def test_default_capabilities(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", BUSYBOX, "sh", "-c", "grep CapEff /proc/self/status"))
    # dockerd's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    # NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    assert out.split()[1] == "00000000a80425fb"


def test_cap_add_and_drop(daemon: Daemon, busybox: str, name: str) -> None:
    out = ok(daemon.cli("run", "--name", name, "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", BUSYBOX,
                        "sh", "-c", "grep CapEff /proc/self/status"))
    eff = int(out.split()[1], 16)
    assert eff & (1 << 12), "NET_ADMIN added"
    assert not eff & (1 << 0), "CHOWN dropped"
    hc = inspect(daemon, name)["HostConfig"]
    # the 28.x CLI sends the CAP_-prefixed names and the daemon stores what it was given
    assert hc["CapAdd"] == ["CAP_NET_ADMIN"] and hc["CapDrop"] == ["CAP_CHOWN"]


def test_read_only_rootfs(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("run", "--rm", "--read-only", BUSYBOX, "sh", "-c", "touch /x")
    assert proc.returncode == 1
    assert "Read-only file system" in proc.stderr


def test_bind_mount_read_only(daemon: Daemon, busybox: str) -> None:
    host_dir = daemon.root / "bind-src"
    host_dir.mkdir(exist_ok=True)
    (host_dir / "f").write_text("from host\n")
    out = ok(daemon.cli("run", "--rm", "-v", f"{host_dir}:/mnt:ro", BUSYBOX, "sh", "-c",
                        "cat /mnt/f; touch /mnt/g 2>/dev/null && echo writable || echo readonly"))
    assert out == "from host\nreadonly\n"


def test_bind_mount_read_write(daemon: Daemon, busybox: str, name: str) -> None:
    host_dir = daemon.root / "bind-rw"
    host_dir.mkdir(exist_ok=True)
    ok(daemon.cli("run", "--name", name, "-v", f"{host_dir}:/mnt", BUSYBOX, "sh", "-c", "echo hi > /mnt/out"))
    assert (host_dir / "out").read_text() == "hi\n"
    mounts = inspect(daemon, name)["Mounts"]
    assert mounts == [{"Type": "bind", "Source": str(host_dir), "Destination": "/mnt", "Mode": "",
                       "RW": True, "Propagation": "rprivate"}]


def test_tmpfs(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "--tmpfs", "/scratch", BUSYBOX, "sh", "-c", "grep ' /scratch ' /proc/mounts"))
    assert out.split()[2] == "tmpfs"


def test_container_cannot_see_host_processes(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", BUSYBOX, "sh", "-c", "ls /proc | grep -c '^[0-9]'"))
    assert int(out) <= 3, "a fresh pid namespace holds only the container's processes"
