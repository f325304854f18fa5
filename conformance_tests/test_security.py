"""Security defaults and options: seccomp, devices, namespaces, sysctls, groups, --init."""
from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import inspect, ok

BUSYBOX = "busybox"
JSON = {"Content-Type": "application/json"}


def _create_raw(daemon: Daemon, host_config: dict, cmd: list[str] | None = None) -> str:
    r = daemon.raw("POST", "/containers/create",
                   json.dumps({"Image": BUSYBOX, "Cmd": cmd or ["true"], "HostConfig": host_config}), JSON)
    assert r.status == 201, r.body
    return r.json()["Id"]


def _start_error(daemon: Daemon, cid: str) -> tuple[int, str]:
    r = daemon.raw("POST", f"/containers/{cid}/start")
    return r.status, r.json()["message"] if r.body else ""


def _not_running(daemon: Daemon, cid: str) -> None:
    state = inspect(daemon, cid)["State"]
    assert not state["Running"] and state["Pid"] == 0


# ------------------------------------------------------------------ seccomp
def test_default_seccomp_filter_refuses_unshare(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", BUSYBOX, "sh", "-c",
                        "grep '^Seccomp:' /proc/self/status; unshare -m true && echo allowed || echo refused"))
    assert out.splitlines()[0].split() == ["Seccomp:", "2"]
    assert out.splitlines()[-1] == "refused"


def test_seccomp_refusal_is_eperm(daemon: Daemon, busybox: str) -> None:
    # swapoff is not in the allow-list: EPERM, whatever the argument
    proc = daemon.cli("run", "--rm", BUSYBOX, "swapoff", "/nonexistent")
    assert proc.returncode != 0
    assert "Operation not permitted" in proc.stderr


def test_seccomp_unconfined_with_sys_admin(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "--security-opt", "seccomp=unconfined", "--cap-add", "SYS_ADMIN", BUSYBOX,
                        "sh", "-c", "grep '^Seccomp:' /proc/self/status; unshare -m true && echo allowed"))
    assert out.split() == ["Seccomp:", "0", "allowed"]


def test_sys_admin_lifts_the_default_filter(daemon: Daemon, busybox: str) -> None:
    # the default profile allows mount/unshare/clone-with-namespace-flags to CAP_SYS_ADMIN
    out = ok(daemon.cli("run", "--rm", "--cap-add", "SYS_ADMIN", BUSYBOX, "sh", "-c",
                        "grep '^Seccomp:' /proc/self/status; unshare -m true && echo allowed"))
    assert out.split() == ["Seccomp:", "2", "allowed"]


def test_custom_seccomp_profile_file(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    # everything allowed but mkdir/mkdirat, refused with EACCES (13)
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile, indent=2))
    proc = daemon.cli("run", "--rm", "--security-opt", f"seccomp={path}", BUSYBOX, "sh", "-c",
                      "grep '^Seccomp:' /proc/self/status; mkdir /x")
    assert proc.returncode == 1
    assert proc.stdout.split() == ["Seccomp:", "2"]
    assert "Permission denied" in proc.stderr


def test_custom_profile_argument_conditions(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    # umask(2) refused when its argument is greater than 022: `umask 077` leaves the mask as it was
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                             "args": [{"index": 0, "value": 0o22, "op": "SCMP_CMP_GT"}]}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    out = ok(daemon.cli("run", "--rm", "--security-opt", f"seccomp={path}", BUSYBOX, "sh", "-c",
                        "umask 002; umask; umask 077; umask"))
    assert out.split() == ["0002", "0002"]


def test_strict_profile_with_no_new_privileges(daemon: Daemon, busybox: str, tmp_path: Path, name: str) -> None:
    # with no-new-privileges the filter goes in right before execve (runc's order): a
    # profile refusing what the runtime itself needs to set the process up still starts
    runtime_calls = ["capset", "setresuid", "setresgid", "setgroups", "sendmsg", "sendto", "recvmsg",
                     "recvfrom", "poll", "ppoll", "select", "pselect6", "prctl", "chdir", "rt_sigprocmask"]
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": runtime_calls, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    out = ok(daemon.cli("run", "--rm", "--security-opt", "no-new-privileges", "--security-opt", f"seccomp={path}",
                        BUSYBOX, "echo", "started"))
    assert out == "started\n"
    # and an exec into such a container
    ok(daemon.cli("run", "-d", "--name", name, "--security-opt", "no-new-privileges", "--security-opt",
                  f"seccomp={path}", BUSYBOX, "sleep", "60"))
    assert ok(daemon.cli("exec", name, "echo", "exec-ok")) == "exec-ok\n"


def test_seccomp_profile_not_json(daemon: Daemon, busybox: str) -> None:
    # the CLI refuses a file that is not JSON itself; through the API the start fails
    cid = _create_raw(daemon, {"SecurityOpt": ["seccomp=notjson"]})
    status, message = _start_error(daemon, cid)
    assert (status, message) == (500, "Decoding seccomp profile failed: invalid character 'o' in literal null "
                                      "(expecting 'u')")
    _not_running(daemon, cid)
    cid = _create_raw(daemon, {"SecurityOpt": ["seccomp=[]"]})
    assert _start_error(daemon, cid) == (500, "Decoding seccomp profile failed: json: cannot unmarshal array "
                                              "into Go value of type seccomp.Seccomp")
    cid = _create_raw(daemon, {"SecurityOpt": ['seccomp={"defaultAction": 5}']})
    assert _start_error(daemon, cid) == (500, "Decoding seccomp profile failed: json: cannot unmarshal number "
                                              "into Go struct field Seccomp.defaultAction of type "
                                              "specs.LinuxSeccompAction")


def test_info_security_options(daemon: Daemon) -> None:
    opts = json.loads(ok(daemon.cli("info", "--format", "{{json .SecurityOptions}}")))
    seccomp = [o for o in opts if o.startswith("name=seccomp,")]
    # dockerd 20.10 says "profile=default", newer Docker "profile=builtin"
    assert seccomp in (["name=seccomp,profile=builtin"], ["name=seccomp,profile=default"])


@pytest.mark.reference_differs("seccomp=builtin (the default profile by name) is newer than dockerd 20.10")
def test_seccomp_builtin(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "--security-opt", "seccomp=builtin", BUSYBOX,
                        "grep", "^Seccomp:", "/proc/self/status"))
    assert out.split() == ["Seccomp:", "2"]


def test_bad_security_opt(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("create", "--name", name, "--security-opt", "foo=bar", BUSYBOX)
    assert proc.returncode != 0
    assert 'invalid --security-opt 2: "foo=bar"' in proc.stderr
    assert daemon.cli("inspect", name).returncode != 0, "nothing created"


@pytest.mark.reference_differs("writable-cgroups is newer than dockerd 20.10 ('invalid --security-opt 2')")
def test_writable_cgroups(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "--security-opt", "writable-cgroups=true", BUSYBOX, "sh", "-c",
                        "grep ' /sys/fs/cgroup/pids ' /proc/mounts || grep ' /sys/fs/cgroup ' /proc/mounts"))
    assert out.splitlines()[0].split()[3].startswith("rw,")


def test_label_and_apparmor_accepted(daemon: Daemon, busybox: str) -> None:
    ok(daemon.cli("run", "--rm", "--security-opt", "label=disable", "--security-opt", "apparmor=unconfined",
                  "--userns", "host", BUSYBOX, "true"))


def test_no_new_privileges(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "--security-opt", "no-new-privileges", BUSYBOX,
                        "grep", "^NoNewPrivs:", "/proc/self/status"))
    assert out.split() == ["NoNewPrivs:", "1"]


# ------------------------------------------------------------- capabilities
def test_cap_drop_all_add_one_lowercase(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "--cap-drop", "ALL", "--cap-add", "chown", BUSYBOX,
                        "grep", "^Cap[EB]", "/proc/self/status"))
    assert out.split() == ["CapEff:", "0000000000000001", "CapBnd:", "0000000000000001"]


def test_cap_drop_then_add_same(daemon: Daemon, busybox: str) -> None:
    # dockerd drops first, then adds: the capability stays
    out = ok(daemon.cli("run", "--rm", "--cap-drop", "CHOWN", "--cap-add", "CHOWN", BUSYBOX,
                        "grep", "^CapEff:", "/proc/self/status"))
    assert out.split()[1] == "00000000a80425fb"


def test_unknown_capability(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("run", "--name", name, "--cap-add", "cap_foo", BUSYBOX, "true")
    assert proc.returncode == 125
    assert 'invalid CapAdd: unknown capability: "CAP_FOO"' in proc.stderr
    assert daemon.cli("inspect", name).returncode != 0


def test_exec_inherits_capabilities_and_no_new_privileges(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--cap-drop", "ALL", "--cap-add", "KILL",
                  "--security-opt", "no-new-privileges", BUSYBOX, "sleep", "60"))
    out = ok(daemon.cli("exec", name, "grep", "-E", "^(CapEff|CapBnd|NoNewPrivs):", "/proc/self/status"))
    fields = dict(line.split() for line in out.splitlines())
    assert fields == {"NoNewPrivs:": "1", "CapEff:": "0000000000000020", "CapBnd:": "0000000000000020"}


# ------------------------------------------------------------ masked paths
def test_masked_and_readonly_proc_paths(daemon: Daemon, busybox: str) -> None:
    out = ok(
        daemon.cli(
            "run",
            "--rm",
            BUSYBOX,
            "sh",
            "-c",
            "cat /proc/keys | wc -c; echo 1 > /proc/sysrq-trigger || echo ro; grep ' /proc/sys ' /proc/mounts",
        )
    )
    lines = out.splitlines()
    assert lines[0].strip() == "0", "/proc/keys is masked"
    assert lines[1] == "ro"
    assert lines[2].split()[3].startswith("ro,")


@pytest.mark.reference_differs("dockerd 20.10 does not mask /proc/interrupts (newer Docker does)")
def test_proc_interrupts_masked(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", BUSYBOX, "sh", "-c", "cat /proc/interrupts | wc -c"))
    assert out.strip() == "0"


def test_systempaths_unconfined(daemon: Daemon, busybox: str) -> None:
    # the CLI sends empty MaskedPaths/ReadonlyPaths: /proc is the only proc mount left
    out = ok(daemon.cli("run", "--rm", "--security-opt", "systempaths=unconfined", BUSYBOX,
                        "grep", "-c", "/proc", "/proc/mounts"))
    assert out.strip() == "1"


def test_read_only_rootfs_keeps_dev_and_shm_writable(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("run", "--rm", "--read-only", BUSYBOX, "sh", "-c",
                      "touch /dev/x && touch /dev/shm/x && echo devs-ok; touch /etc/x")
    assert proc.stdout == "devs-ok\n"
    assert "Read-only file system" in proc.stderr


# ------------------------------------------------------------------ devices
def test_device_renamed_and_cgroup_permissions(daemon: Daemon, busybox: str) -> None:
    # /dev/kmsg (1:11) is not among the default device rules: readable only, as asked
    if not os.path.exists("/dev/kmsg"):
        pytest.skip("no /dev/kmsg here")
    out = ok(daemon.cli("run", "--rm", "--device", "/dev/kmsg:/dev/mykmsg:r", BUSYBOX, "sh", "-c",
                        "ls -l /dev/mykmsg; echo x > /dev/mykmsg && echo written || echo refused"))
    assert out.split()[0].startswith("c")
    assert out.split()[4:6] == ["1,", "11"]
    assert out.splitlines()[-1] == "refused"


def test_device_directory(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    # every device node under a directory, mapped below the container path
    devs = tmp_path / "devs" / "sub"
    devs.mkdir(parents=True)
    os.mknod(devs / "mynull", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (devs.parent / "plain").write_text("not a device\n")
    out = ok(daemon.cli("run", "--rm", "--device", f"{devs.parent}:/dev/mine", BUSYBOX, "sh", "-c",
                        "ls /dev/mine; ls -l /dev/mine/sub/mynull; echo hi > /dev/mine/sub/mynull && echo ok"))
    lines = out.splitlines()
    assert lines[0] == "sub"            # the regular file is left out
    assert lines[1].split()[4:6] == ["1,", "3"]
    assert lines[-1] == "ok"


def test_device_cgroup_rule(daemon: Daemon, busybox: str) -> None:
    # mknod is allowed (CAP_MKNOD, "c *:* m"); opening is the cgroup's call.  No driver has
    # major 240 here, so an allowed open fails with ENXIO and a refused one with EPERM.
    script = "mknod /tmp/k c 240 0; cat /tmp/k"
    proc = daemon.cli("run", "--rm", BUSYBOX, "sh", "-c", script)
    assert "Operation not permitted" in proc.stderr
    proc = daemon.cli("run", "--rm", "--device-cgroup-rule", "c 240:* r", BUSYBOX, "sh", "-c", script)
    assert "No such device or address" in proc.stderr


def test_bad_device_cgroup_rule(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("run", "--rm", "--device-cgroup-rule", "bogus", BUSYBOX, "true")
    assert proc.returncode == 125
    assert "invalid device cgroup format 'bogus'" in proc.stderr  # the CLI's check


def test_device_errors(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("run", "--name", name, "--device", "/nonexistent", BUSYBOX, "true")
    assert proc.returncode != 0
    assert ('error gathering device information while adding custom device "/nonexistent": '
            "no such file or directory") in proc.stderr
    _not_running(daemon, name)
    cid = _create_raw(daemon, {"Devices": [{"PathOnHost": "/etc/passwd", "PathInContainer": "/x",
                                             "CgroupPermissions": "rwm"}]})
    assert _start_error(daemon, cid) == (500, 'error gathering device information while adding custom device '
                                              '"/etc/passwd": not a device node')
    _not_running(daemon, cid)


# ------------------------------------------------------------------- --init
def test_init_is_pid_one(daemon: Daemon, busybox: str, name: str) -> None:
    out = ok(daemon.cli("run", "--name", name, "--init", BUSYBOX, "ps", "-o", "pid,args"))
    first = out.splitlines()[1].split()
    assert first == ["1", "/sbin/docker-init", "--", "ps", "-o", "pid,args"]
    assert inspect(daemon, name)["HostConfig"]["Init"] is True


def _poll_exec(daemon: Daemon, name: str, script: str, what: str) -> None:
    for _ in range(300):
        if daemon.cli("exec", name, "sh", "-c", script).returncode == 0:
            return
    raise AssertionError(f"timed out waiting for {what}")


# An orphan (it outlives the subshell, so PID 1 inherits it) that exits after PID 1 has
# become a program that never calls wait: a zombie, unless PID 1 is an init that reaps.
_ORPHAN = "(sleep 1 & echo $! > /tmp/orphan); exec sleep 60"


def test_init_reaps_zombies(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--init", BUSYBOX, "sh", "-c", _ORPHAN))
    _poll_exec(daemon, name, "test -s /tmp/orphan && ! test -e /proc/$(cat /tmp/orphan)", "the orphan to be reaped")
    assert "Z" not in ok(daemon.cli("exec", name, "ps", "-o", "stat")).split()[1:]


def test_without_init_zombies_stay(daemon: Daemon, busybox: str, name: str) -> None:
    # the contrast that shows the test above can fail
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sh", "-c", _ORPHAN))
    _poll_exec(daemon, name, "grep -q '^State:.*Z' /proc/$(cat /tmp/orphan)/status", "a zombie")


# ---------------------------------------------------------------- namespaces
def test_ipc_modes(daemon: Daemon, busybox: str, name: str) -> None:
    out = daemon.cli("run", "--rm", "--ipc", "none", BUSYBOX, "ls", "/dev/shm")
    assert out.returncode != 0 and "No such file or directory" in out.stderr
    host_ipc = os.readlink("/proc/self/ns/ipc")
    assert ok(daemon.cli("run", "--rm", "--ipc", "host", BUSYBOX, "readlink", "/proc/self/ns/ipc")).strip() == host_ipc
    ok(daemon.cli("run", "-d", "--name", name, "--ipc", "shareable", BUSYBOX, "sh", "-c",
                  "echo shared > /dev/shm/marker; sleep 60"))
    donor_ns = None
    for _ in range(200):
        r = daemon.cli("exec", name, "sh", "-c", "cat /dev/shm/marker && readlink /proc/self/ns/ipc")
        if r.returncode == 0 and r.stdout.startswith("shared"):
            donor_ns = r.stdout.split()[1]
            break
    assert donor_ns
    out = ok(daemon.cli("run", "--rm", "--ipc", f"container:{name}", BUSYBOX, "sh", "-c",
                        "cat /dev/shm/marker; readlink /proc/self/ns/ipc"))
    assert out.split() == ["shared", donor_ns]


def test_ipc_pid_container_nonexistent(daemon: Daemon, busybox: str, name: str) -> None:
    for flag in ("--ipc", "--pid"):
        proc = daemon.cli("create", "--name", name, flag, "container:nonexistent", BUSYBOX)
        assert proc.returncode == 1
        assert "Error response from daemon: No such container: nonexistent" in proc.stderr
        assert "Unable to find image" not in proc.stderr  # not a 404: the CLI would pull
        assert daemon.cli("inspect", name).returncode != 0


def test_join_errors(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sleep", "60"))  # private IPC
    proc = daemon.cli("run", "--rm", "--ipc", f"container:{name}", BUSYBOX, "true")
    assert proc.returncode == 125
    assert ": non-shareable IPC (hint: use IpcMode:shareable for the donor container)" in proc.stderr
    stopped = name + "-stopped"
    ok(daemon.cli("create", "--name", stopped, "--ipc", "shareable", BUSYBOX))
    try:
        for flag in ("--ipc", "--pid"):
            cid = ok(daemon.cli("create", flag, f"container:{stopped}", BUSYBOX)).strip()
            r = daemon.raw("POST", f"/containers/{cid}/start")
            assert r.status in (409, 500)  # newer Docker: a conflict
            assert r.json()["message"].endswith(" is not running")
            _not_running(daemon, cid)
    finally:
        daemon.cli("rm", "-f", stopped)


def test_pid_modes(daemon: Daemon, busybox: str, name: str) -> None:
    host_pid = os.readlink("/proc/self/ns/pid")
    assert ok(daemon.cli("run", "--rm", "--pid", "host", BUSYBOX, "readlink", "/proc/self/ns/pid")).strip() == host_pid
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sleep", "60"))
    out = ok(daemon.cli("run", "--rm", "--pid", f"container:{name}", BUSYBOX, "ps", "-o", "pid,args"))
    assert "1 sleep 60" in [" ".join(line.split()) for line in out.splitlines()]


def test_uts_host(daemon: Daemon, busybox: str, name: str) -> None:
    assert ok(daemon.cli("run", "--rm", "--uts", "host", BUSYBOX, "hostname")).strip() == os.uname().nodename
    proc = daemon.cli("create", "--name", name, "--uts", "host", "--hostname", "foo", BUSYBOX)
    assert proc.returncode == 1
    assert "Error response from daemon: conflicting options: hostname and the UTS mode" in proc.stderr
    assert daemon.cli("inspect", name).returncode != 0


@pytest.mark.reference_differs("dockerd 20.10 accepts any IpcMode at create; newer Docker validates it")
def test_invalid_ipc_mode(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("create", "--name", name, "--ipc", "bogus", BUSYBOX)
    assert proc.returncode == 1
    assert "invalid IPC mode: bogus" in proc.stderr
    assert daemon.cli("inspect", name).returncode != 0


# ------------------------------------------------------------------- sysctls
def test_namespaced_sysctls(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "--sysctl", "kernel.shmmax=1234567", "--sysctl", "net.ipv4.ip_forward=1",
                        BUSYBOX, "cat", "/proc/sys/kernel/shmmax", "/proc/sys/net/ipv4/ip_forward"))
    assert out.split() == ["1234567", "1"]


def test_non_namespaced_sysctl_refused_at_start(daemon: Daemon, busybox: str) -> None:
    cid = _create_raw(daemon, {"Sysctls": {"kernel.foo": "1"}})
    status, message = _start_error(daemon, cid)
    assert status == 500
    assert message.startswith("failed to create shim task: OCI runtime create failed: runc create failed: ")
    assert message.endswith('sysctl "kernel.foo" is not in a separate kernel namespace: unknown')
    _not_running(daemon, cid)


def test_ipc_sysctl_refused_with_host_ipc(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("run", "--name", name, "--sysctl", "kernel.shmmax=1", "--ipc", "host", BUSYBOX, "true")
    assert proc.returncode == 125
    assert 'sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace: unknown' in proc.stderr
    _not_running(daemon, name)


def test_sysctl_refused_by_the_cli(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("run", "--rm", "--sysctl", "kernel.foo=1", BUSYBOX, "true")
    assert proc.returncode == 125
    assert "sysctl 'kernel.foo=1' is not allowed" in proc.stderr


# ------------------------------------------------------------------ groups
def _busybox_with_group_file(daemon: Daemon, tag: str) -> None:
    """busybox with more groups in its /etc/group."""
    src = daemon.root / "busybox-rootfs.tar"
    data = b"root:x:0:\naudio:x:29:\nstaff:x:50:\n"
    buf = io.BytesIO()
    with tarfile.open(src) as tin, tarfile.open(fileobj=buf, mode="w") as tout:
        for member in tin.getmembers():
            if member.name.lstrip("./") == "etc/group":
                member.size = len(data)
                tout.addfile(member, io.BytesIO(data))
            else:
                tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
    ok(daemon.cli("import", "-", tag, input=buf.getvalue(), timeout=120))


def test_group_add(daemon: Daemon, busybox: str) -> None:
    tag = "busybox-groups:latest"
    _busybox_with_group_file(daemon, tag)
    try:
        out = ok(daemon.cli("run", "--rm", "--group-add", "audio", "--group-add", "1234", tag,
                            "grep", "^Groups:", "/proc/self/status"))
        assert {"29", "1234"} <= set(out.split()[1:]) <= {"0", "29", "1234"}
        cname = f"groups-{os.getpid()}"
        ok(daemon.cli("run", "-d", "--name", cname, "--group-add", "staff", tag, "sleep", "60"))
        try:
            out = ok(daemon.cli("exec", cname, "grep", "^Groups:", "/proc/self/status"))
            assert "50" in out.split()[1:], "an exec gets the container's extra groups"
        finally:
            daemon.cli("rm", "-f", cname)
        proc = daemon.cli("run", "--rm", "--group-add", "nosuchgroup", tag, "true")
        assert proc.returncode != 0
        assert "Unable to find group nosuchgroup: no matching entries in group file" in proc.stderr
    finally:
        daemon.cli("rmi", tag)


@pytest.mark.reference_differs("dockerd's runc cannot apply the full capability set on this machine")
def test_cap_add_all_drop_one(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "--cap-add", "ALL", "--cap-drop", "CHOWN", BUSYBOX,
                        "grep", "^CapEff:", "/proc/self/status"))
    eff = int(out.split()[1], 16)
    assert not eff & 1 and eff & (1 << 21), "all we hold (SYS_ADMIN included) but CHOWN"


# --------------------------------------------------------------- privileged
@pytest.mark.reference_differs("dockerd's runc cannot apply the full capability set on this machine "
                               "('unable to apply caps: operation not permitted')")
def test_privileged_devices_sys_and_seccomp(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "--privileged", BUSYBOX, "sh", "-c",
                        "grep '^Seccomp:' /proc/self/status; grep ' /sys ' /proc/mounts; "
                        "cat /proc/keys >/dev/null && echo unmasked; ls /dev | wc -l"))
    lines = out.splitlines()
    assert lines[0].split() == ["Seccomp:", "0"]
    assert lines[1].split()[3].startswith("rw,")
    assert lines[2] == "unmasked"
    host_nodes = sum(1 for e in os.scandir("/dev")
                     if not e.is_symlink() and (stat.S_ISCHR(e.stat().st_mode) or stat.S_ISBLK(e.stat().st_mode)))
    assert int(lines[3]) >= host_nodes - 5  # the host's device nodes (less console, ptmx, tty...)


# ------------------------------------------------------------------ docker-py
def test_docker_py_security_options(client, busybox: str, name: str) -> None:  # type: ignore[no-untyped-def]
    out = client.containers.run(
        BUSYBOX, ["sh", "-c", "grep -E '^(CapEff|Groups|Seccomp):' /proc/self/status; cat /proc/sys/kernel/shmmni; "
                              "ls -l /dev/xnull; ps -o pid,args | sed -n 2p"],
        name=name, cap_drop=["ALL"], cap_add=["CHOWN"], group_add=["4321"], sysctls={"kernel.shmmni": "1234"},
        devices=["/dev/null:/dev/xnull:rw"], init=True, security_opt=["no-new-privileges"])
    fields = out.decode().split()
    assert fields[fields.index("CapEff:") + 1] == "0000000000000001"
    assert "4321" in fields[fields.index("Groups:") + 1:fields.index("Seccomp:")]
    assert fields[fields.index("Seccomp:") + 1] == "2"
    assert "1234" in fields and "1," in fields and "/sbin/docker-init" in fields
    hc = client.api.inspect_container(name)["HostConfig"]
    assert hc["Init"] is True and hc["GroupAdd"] == ["4321"] and hc["Sysctls"] == {"kernel.shmmni": "1234"}
    assert hc["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull", "CgroupPermissions": "rw"}]
