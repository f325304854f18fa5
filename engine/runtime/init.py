"""The container init: namespaces, root file system, identity, then execve.

Runs in the child the shim forks (already PID 1 of a new pid namespace when
the spec asks for one).  ``run_init`` is one linear sequence, read it top to
bottom; ``run_exec`` (docker exec) joins the running container instead of making
it, and both end in the same builder (``engine.runtime.procbuild``:
``session_and_stdio`` first, ``open_terminal``, ``set_limits``,
``become_process`` last); the root file system is ``engine.runtime.rootfs``.
Every kernel call goes through ``Syscalls`` so tests can replay it on
``engine.testing.syscalls.RecordingSyscalls`` without root.

Sync protocol with the shim (SOCK_SEQPACKET socketpair, one JSON object per
message)::

    init -> shim   {"type": "seccomp", "filter": hex}          the compiled filter (when the spec has one)
    init -> shim   {"type": "pty"} + SCM_RIGHTS master fd     (tty only)
    init -> shim   {"type": "ready", "pid": <pid in its ns>}   setup done, waiting
    shim -> init   {"type": "go"}                              execve now
    init -> shim   {"type": "error", "message": str, "exit_code": int}

An exec (``run_exec`` with ``wait_for_go=False``) does not wait for "go": it
execs right after "ready".  After "go" the socket is close-on-exec: a successful execve shows up in the
shim as EOF.  Setup failures are reported with runc's wording so the engine
can give the user dockerd's error text and exit code (127/126/128).
"""
from __future__ import annotations

import errno
import json
import os

from engine.runtime import fs
from engine.runtime import syscalls as S
from engine.runtime.linux import linux_syscalls
from engine.runtime.procbuild import (
    InitError,
    become_process,
    check_env,
    open_terminal,
    run_and_exit,
    session_and_stdio,
    set_limits,
    step,
)
from engine.runtime.rootfs import mask_path, pivot_root, readonly_path, setup_rootfs

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing/dataclasses cost ~10 ms at every container start
    from typing import Any

    from engine.runtime.procbuild import Channel


class InitConfig:
    """What the shim hands the init besides the spec."""

    def __init__(
        self,
        spec: dict[str, Any] | None,                      # None: read spec_path
        channel: Channel,
        stdio: tuple[int, int, int] | None = None,        # fds for 0/1/2; None when the spec asks for a tty
        cgroup_procs: list[str] | None = None,            # "0" is written to each
        cgroup_fds: list[int] | None = None,              # the same files, open (then used instead)
        cgroup_binds: list[tuple[str, str]] | None = None,  # v1: (host dir, name) for /sys/fs/cgroup
        cgroup_version: int = 1,
        seccomp: bytes = b"",                             # compiled filter; b"": compile the spec's
        seccomp_cache: str = "",                          # directory of compiled filters ("" = none)
        spec_path: str = "",                              # config.json, when spec is None
    ) -> None:
        self.spec: dict[str, Any] = spec if spec is not None else {}
        self.spec_path = "" if spec is not None else spec_path
        self.seccomp = seccomp
        self.seccomp_cache = seccomp_cache
        self.channel = channel
        self.stdio = stdio
        self.cgroup_procs = list(cgroup_procs or [])
        self.cgroup_fds = list(cgroup_fds or [])
        self.cgroup_binds = list(cgroup_binds or [])
        self.cgroup_version = cgroup_version


def run_init(cfg: InitConfig, sys: S.Syscalls) -> None:
    """Everything from fork to execve.  Raises InitError; returns only with a fake execve."""
    spec = cfg.spec
    process = spec.get("process") or {}
    linux = spec.get("linux") or {}
    rootfs = os.path.abspath((spec.get("root") or {}).get("path") or "")
    if not rootfs or not sys.is_dir(rootfs):
        raise InitError(f"rootfs ({rootfs}) does not exist")
    namespaces = {ns["type"]: ns.get("path") for ns in linux.get("namespaces") or []}
    tty = bool(process.get("terminal"))
    check_env(list(process.get("env") or []))

    # 1. Session and stdio: a new session so a tty can become our controlling terminal.
    session_and_stdio(sys, cfg.stdio)

    # 2. Cgroups first, so the namespace below is rooted at the container's cgroup.
    if cfg.cgroup_fds:
        for procs, fd in zip(cfg.cgroup_procs, cfg.cgroup_fds, strict=True):
            step(f"joining cgroup {os.path.dirname(procs)}", sys.write_fd, fd, "0")
    else:
        for procs in cfg.cgroup_procs:
            step(f"joining cgroup {os.path.dirname(procs)}", sys.write_file, procs, "0")

    # 3. Namespaces (pid is the shim's job: it must be set before the fork).
    flags = 0
    for typ, path in namespaces.items():
        if typ == "pid":
            continue
        if typ not in S.NAMESPACE_FLAGS:
            raise InitError(f"unknown namespace type {typ!r}")
        if path:
            step(f"joining {typ} namespace {path}", sys.setns, path, S.NAMESPACE_FLAGS[typ])
        else:
            flags |= S.NAMESPACE_FLAGS[typ]
    if flags:
        step("unshare namespaces", sys.unshare, flags)

    # 4. Sysctls resolve against the writer's namespaces, so the host's /proc works here;
    #    one outside the container's own namespaces would change the host: refuse it.
    for key, value in (linux.get("sysctl") or {}).items():
        refused = sysctl_refused(key, namespaces)
        if refused:
            raise InitError(refused)
        step(f"setting sysctl {key}", sys.write_file, "/proc/sys/" + key.replace(".", "/"), value)

    # 5. Root file system, standard mounts, devices, then pivot_root.
    if "mount" in namespaces:
        setup_rootfs(cfg, sys, rootfs, tty)
        pivot_root(sys, rootfs)
        # runc's order: read-only paths, then masked ones
        for path in linux.get("readonlyPaths") or []:
            readonly_path(sys, path)
        for path in linux.get("maskedPaths") or []:
            mask_path(sys, path)
        if (spec.get("root") or {}).get("readonly"):
            step("remounting rootfs read-only", sys.mount, None, "/", None,
                  S.MS_BIND | S.MS_REMOUNT | S.MS_RDONLY | sys.statvfs_flags("/"), None)
    else:
        step(f"chroot-less start in {rootfs}", sys.chdir, rootfs)

    # 6. Host and domain names, loopback.
    if "uts" in namespaces:
        if spec.get("hostname"):
            step("sethostname", sys.sethostname, spec["hostname"])
        if spec.get("domainname"):
            step("setdomainname", sys.setdomainname, spec["domainname"])
    if "network" in namespaces and not namespaces["network"]:
        step("bringing up loopback", sys.loopback_up)

    # 7. Terminal: a pty from the container's own devpts, sent to the shim.
    if tty:
        open_terminal(cfg.channel, sys, console=True, size=process.get("consoleSize"))

    # 8. Limits.
    set_limits(sys, process, strict=True)

    # 9. Working directory, created (root-owned, like dockerd) when missing.
    cwd = process.get("cwd") or "/"
    if not sys.exists(cwd):
        step(f"creating working directory {cwd}", fs.mkdir_all, sys, cwd, 0o755)

    # 10-12. Identity, the program, "ready", wait for start, execve.
    become_process(sys, cfg.channel, process, cfg.seccomp, ready={"type": "ready", "pid": os.getpid()},
                    wait_for_go=True, empty_args_exit=128)


def sysctl_refused(key: str, namespaces: dict[str, str | None]) -> str:
    """runc's reason for refusing a sysctl outside the container's own namespaces ("" = fine)."""
    if key.startswith("fs.mqueue.") or key in _IPC_SYSCTLS:
        return "" if "ipc" in namespaces else f'sysctl "{key}" is not allowed in the hosts ipc namespace'
    if key.startswith("net."):
        return "" if "network" in namespaces else f'sysctl "{key}" not allowed in host network namespace'
    if key in ("kernel.hostname", "kernel.domainname") and "uts" in namespaces:
        return ""
    return f'sysctl "{key}" is not in a separate kernel namespace'


_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


class ExecConfig:
    """A process to start inside a running container (docker exec)."""

    def __init__(
        self,
        process: dict[str, Any],                # OCI "process" object
        channel: Channel,
        init_pid: int,                          # the container's init, on the host
        stdio: tuple[int, int, int] | None = None,
        cgroup_procs: list[str] | None = None,
        seccomp: bytes = b"",
        wait_for_go: bool = True,               # False: execve right after "ready"
        cgroup_fds: list[int] | None = None,    # cgroup_procs, open (then used instead)
        ns_fds: list[tuple[str, int, int]] | None = None,  # (name, open nsfs file, flag) to join
    ) -> None:
        self.cgroup_fds = list(cgroup_fds or [])
        self.ns_fds = ns_fds
        self.seccomp = seccomp
        self.wait_for_go = wait_for_go
        self.process = process
        self.channel = channel
        self.init_pid = init_pid
        self.stdio = stdio
        self.cgroup_procs = list(cgroup_procs or [])


# setns order: the mount namespace last, /proc/<pid>/ns/* must still be the host's
EXEC_NAMESPACES: tuple[tuple[str, int], ...] = (
    ("cgroup", S.CLONE_NEWCGROUP), ("ipc", S.CLONE_NEWIPC), ("uts", S.CLONE_NEWUTS),
    ("net", S.CLONE_NEWNET), ("mnt", S.CLONE_NEWNS),
)


def run_exec(cfg: ExecConfig, sys: S.Syscalls) -> None:
    """Join a running container and exec a process in it (we were forked into its pid
    namespace already).  Same reporting protocol as ``run_init``."""
    process = cfg.process
    check_env(list(process.get("env") or []))
    session_and_stdio(sys, cfg.stdio)
    try:
        if cfg.cgroup_fds:
            for fd in cfg.cgroup_fds:
                sys.write_fd(fd, "0")
        else:
            for procs in cfg.cgroup_procs:
                sys.write_file(procs, "0")
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENODEV):
            raise
        # the container is exiting (its cgroup is going); the exec fails below or dies with it
    if cfg.ns_fds is not None:
        for name, fd, flag in cfg.ns_fds:
            step(f"joining {name} namespace", sys.setns_fd, fd, flag)
    else:
        join_namespaces(cfg, sys)
    # setns(mnt) put us at the container's root; cwd is set below
    if process.get("terminal"):
        open_terminal(cfg.channel, sys, console=False, size=process.get("consoleSize"))
    set_limits(sys, process, strict=False)
    become_process(sys, cfg.channel, process, cfg.seccomp, ready={"type": "ready"},
                   wait_for_go=cfg.wait_for_go, empty_args_exit=126)


def join_namespaces(cfg: ExecConfig, sys: S.Syscalls) -> None:
    """Join the init's namespaces by their /proc paths (those that differ from ours)."""
    for name, flag in EXEC_NAMESPACES:
        theirs = f"/proc/{cfg.init_pid}/ns/{name}"
        try:
            a, b = sys.stat(theirs), sys.stat(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            raise InitError(f"container process {cfg.init_pid} is gone", 126) from None
        if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
            step(f"joining {name} namespace", sys.setns, theirs, flag)


def exec_main(cfg: ExecConfig) -> None:
    """Entry point in the shim's forked child for an exec.

    No setns(pid) is needed: the shim unshared the pid namespace for its
    children when it created the init, so every later fork of the shim lands
    in the container's pid namespace as the shim's own child."""
    run_and_exit(lambda: run_exec(cfg, linux_syscalls()), cfg.channel)


def child_main(cfg: InitConfig) -> None:
    """Entry point in the forked child: run the init, report failures, never return."""
    def init() -> None:
        if cfg.spec_path:
            try:
                with open(cfg.spec_path, "rb") as f:
                    cfg.spec = json.load(f)
            except (OSError, ValueError) as e:
                raise InitError(f"reading {cfg.spec_path}: {e}") from None
        load_seccomp(cfg)
        run_init(cfg, linux_syscalls())
    run_and_exit(init, cfg.channel)


def load_seccomp(cfg: InitConfig) -> None:
    """Compile the spec's seccomp profile (unless the shim passed a compiled filter) and
    send the filter to the shim, which installs it in every exec.  Done here, in the
    init, so that the memory compiling takes goes away with our execve."""
    profile = (cfg.spec.get("linux") or {}).get("seccomp")
    if not profile or cfg.seccomp:
        return
    try:
        from engine.runtime import seccomp as sc
        cfg.seccomp = sc.compile_cached(profile, os.uname().machine, cfg.seccomp_cache)
    except Exception as e:  # noqa: BLE001 - any defect of the profile is the start's error
        raise InitError(f"error loading seccomp filter: {e}", 128) from None
    cfg.channel.send({"type": "seccomp", "filter": cfg.seccomp.hex()})
