"""The container init: namespaces, root file system, identity, then execve.

Runs in the child the shim forks (already PID 1 of a new pid namespace when
the spec asks for one).  ``run_init`` is one linear sequence, read it top to
bottom; every kernel call goes through ``Syscalls`` so tests can replay it on
``RecordingSyscalls`` without root.

Sync protocol with the shim (SOCK_SEQPACKET socketpair, one JSON object per
message)::

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
import signal
import socket
import stat

from engine.oci.caps import to_mask
from engine.runtime import fs
from engine.runtime import syscalls as S

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing/dataclasses cost ~10 ms at every container start
    from typing import Any, Protocol

    class Channel(Protocol):
        def send(self, msg: dict[str, Any], fd: int | None = None) -> None: ...
        def recv(self) -> dict[str, Any] | None: ...


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# (name, major, minor) created in every container's /dev, mode 0666 root:root
DEFAULT_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
)

DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
)

RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


class InitError(Exception):
    def __init__(self, message: str, exit_code: int = 128) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class SocketChannel:
    """The init's end of the sync socketpair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, msg: dict[str, Any], fd: int | None = None) -> None:
        data = json.dumps(msg).encode()
        if fd is None:
            self.sock.send(data)
        else:
            socket.send_fds(self.sock, [data], [fd])

    def recv(self) -> dict[str, Any] | None:
        data = self.sock.recv(65536)
        return json.loads(data) if data else None


class InitConfig:
    """What the shim hands the init besides the spec."""

    def __init__(
        self,
        spec: dict[str, Any],
        channel: Channel,
        stdio: tuple[int, int, int] | None = None,        # fds for 0/1/2; None when the spec asks for a tty
        cgroup_procs: list[str] | None = None,            # "0" is written to each
        cgroup_binds: list[tuple[str, str]] | None = None,  # v1: (host dir, name) for /sys/fs/cgroup
        cgroup_version: int = 1,
        seccomp: bytes = b"",                             # compiled filter (the shim compiles it)
    ) -> None:
        self.spec = spec
        self.seccomp = seccomp
        self.channel = channel
        self.stdio = stdio
        self.cgroup_procs = list(cgroup_procs or [])
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
    _check_env(list(process.get("env") or []))

    # 1. Session and stdio: a new session so a tty can become our controlling terminal.
    _step("setsid", sys.setsid)
    if cfg.stdio is not None:
        for target, fd in enumerate(cfg.stdio):
            _step("setting up stdio", sys.dup2, fd, target)

    # 2. Cgroups first, so the namespace below is rooted at the container's cgroup.
    for procs in cfg.cgroup_procs:
        _step(f"joining cgroup {os.path.dirname(procs)}", sys.write_file, procs, "0")

    # 3. Namespaces (pid is the shim's job: it must be set before the fork).
    flags = 0
    for typ, path in namespaces.items():
        if typ == "pid":
            continue
        if typ not in S.NAMESPACE_FLAGS:
            raise InitError(f"unknown namespace type {typ!r}")
        if path:
            _step(f"joining {typ} namespace {path}", sys.setns, path, S.NAMESPACE_FLAGS[typ])
        else:
            flags |= S.NAMESPACE_FLAGS[typ]
    if flags:
        _step("unshare namespaces", sys.unshare, flags)

    # 4. Sysctls resolve against the writer's namespaces, so the host's /proc works here;
    #    one outside the container's own namespaces would change the host: refuse it.
    for key, value in (linux.get("sysctl") or {}).items():
        refused = _sysctl_refused(key, namespaces)
        if refused:
            raise InitError(refused)
        _step(f"setting sysctl {key}", sys.write_file, "/proc/sys/" + key.replace(".", "/"), value)

    # 5. Root file system, standard mounts, devices, then pivot_root.
    if "mount" in namespaces:
        _setup_rootfs(cfg, sys, rootfs, tty)
        _pivot_root(sys, rootfs)
        # runc's order: read-only paths, then masked ones
        for path in linux.get("readonlyPaths") or []:
            _readonly_path(sys, path)
        for path in linux.get("maskedPaths") or []:
            _mask_path(sys, path)
        if (spec.get("root") or {}).get("readonly"):
            _step("remounting rootfs read-only", sys.mount, None, "/", None,
                  S.MS_BIND | S.MS_REMOUNT | S.MS_RDONLY | sys.statvfs_flags("/"), None)
    else:
        _step(f"chroot-less start in {rootfs}", sys.chdir, rootfs)

    # 6. Host and domain names, loopback.
    if "uts" in namespaces:
        if spec.get("hostname"):
            _step("sethostname", sys.sethostname, spec["hostname"])
        if spec.get("domainname"):
            _step("setdomainname", sys.setdomainname, spec["domainname"])
    if "network" in namespaces and not namespaces["network"]:
        _step("bringing up loopback", sys.loopback_up)

    # 7. Terminal: a pty from the container's own devpts, sent to the shim.
    if tty:
        _setup_console(cfg, sys)

    # 8. Limits.
    for rl in process.get("rlimits") or []:
        num = RLIMITS.get(str(rl.get("type", "")).upper())
        if num is None:
            raise InitError(f"unknown rlimit type {rl.get('type')!r}")
        _step(f"setting rlimit {rl['type']}", sys.setrlimit, num, int(rl.get("soft", 0)), int(rl.get("hard", 0)))
    if "oomScoreAdj" in process:
        _step("setting oom_score_adj", sys.write_file, "/proc/self/oom_score_adj", str(int(process["oomScoreAdj"])))

    # 9. Working directory, created (root-owned, like dockerd) when missing.
    cwd = process.get("cwd") or "/"
    if not sys.exists(cwd):
        _step(f"creating working directory {cwd}", fs.mkdir_all, sys, cwd, 0o755)

    # 10. Identity and capabilities.  Seccomp like runc: without no_new_privs the filter
    #     goes in while we still hold CAP_SYS_ADMIN (the calls left - setgroups, setresuid,
    #     capset, prctl, chdir, the sync with the shim, execve - must then be allowed);
    #     with it, right before execve, so a strict profile only has to allow execve.
    late_seccomp = bool(process.get("noNewPrivileges"))
    if cfg.seccomp and not late_seccomp:
        _step("installing the seccomp filter", sys.seccomp_filter, cfg.seccomp)
    user = process.get("user") or {}
    _switch_user(sys, int(user.get("uid", 0)), int(user.get("gid", 0)),
                 [int(g) for g in user.get("additionalGids") or []], process.get("capabilities") or {})
    try:
        sys.chdir(cwd)
    except OSError as e:
        raise InitError(f'chdir to cwd ("{cwd}") set in config.json failed: {_err(e)}') from None
    if process.get("noNewPrivileges"):
        _step("setting no_new_privs", sys.prctl, S.PR_SET_NO_NEW_PRIVS, 1)
    # A container without its shim has no stdio and no one to record its exit:
    # die with the shim.  Set after the uid change, which clears it.
    _step("prctl(PR_SET_PDEATHSIG)", sys.prctl, S.PR_SET_PDEATHSIG, int(signal.SIGKILL))

    # 11. Resolve the program in the container's PATH before telling the shim we are ready.
    args = list(process.get("args") or [])
    if not args:
        raise InitError("args must not be empty", 128)
    env = list(process.get("env") or [])
    path_env = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    try:
        exe = fs.look_path(args[0], path_env)
    except fs.ExecLookupError as e:
        raise InitError(e.message, e.exit_code) from None

    # 12. Created: wait for start.
    cfg.channel.send({"type": "ready", "pid": os.getpid()})
    msg = cfg.channel.recv()
    if not msg or msg.get("type") != "go":
        raise _Abort()
    _exec_now(sys, exe, args, env, cfg.seccomp if late_seccomp else b"")


class ExecFailed(Exception):
    """execve itself failed after "go" (e.g. exec format error)."""

    def __init__(self, path: str, err: OSError) -> None:
        super().__init__(path)
        self.path = path
        self.err = err


def _sysctl_refused(key: str, namespaces: dict[str, str | None]) -> str:
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


class _Abort(Exception):
    """The shim went away or cancelled before start: exit quietly."""


def _step(what: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except OSError as e:
        raise InitError(f"{what}: {_err(e)}") from None


def _err(e: OSError) -> str:
    return os.strerror(e.errno).lower() if e.errno else str(e)


def _setup_rootfs(cfg: InitConfig, sys: S.Syscalls, rootfs: str, tty: bool) -> None:
    spec = cfg.spec
    linux = spec.get("linux") or {}
    # Nothing we mount may propagate back to the host.
    prop = fs.parse_mount_options([linux.get("rootfsPropagation") or "rslave"]).propagation
    _step("making / a slave mount", sys.mount, None, "/", None, prop or (S.MS_SLAVE | S.MS_REC), None)
    _step("bind-mounting rootfs", sys.mount, rootfs, rootfs, None, S.MS_BIND | S.MS_REC, None)

    for m in spec.get("mounts") or []:
        _mount_one(cfg, sys, rootfs, m)

    # /dev contents (only when /dev is our tmpfs, as with every dockerd container).
    dev = fs.secure_join(rootfs, "/dev")
    dev_is_tmpfs = any(m.get("destination") == "/dev" and m.get("type") == "tmpfs" for m in spec.get("mounts") or [])
    if dev_is_tmpfs:
        for name, major, minor in DEFAULT_DEVICES:
            _make_device(sys, os.path.join(dev, name), "c", major, minor, 0o666, 0, 0)
        for target, name in DEV_SYMLINKS:
            link = os.path.join(dev, name)
            if not sys.exists(link):
                _step(f"creating /dev/{name}", sys.symlink, target, link)
    for d in linux.get("devices") or []:
        path = fs.secure_join(rootfs, d["path"])
        fs.mkdir_all(sys, os.path.dirname(path))
        _make_device(sys, path, d.get("type", "c"), int(d.get("major", 0)), int(d.get("minor", 0)),
                     int(d.get("fileMode", 0o666)), int(d.get("uid", 0)), int(d.get("gid", 0)))
    if tty and dev_is_tmpfs:
        console = os.path.join(dev, "console")
        if not sys.exists(console):
            _step("creating /dev/console", sys.create_file, console, 0)


def _mount_one(cfg: InitConfig, sys: S.Syscalls, rootfs: str, m: dict[str, Any]) -> None:
    dest_rel = m["destination"]
    typ = m.get("type") or ""
    src = m.get("source") or ""
    opts = fs.parse_mount_options(m.get("options"))
    dest = fs.secure_join(rootfs, dest_rel)
    desc = f'error mounting "{src}" to rootfs at "{dest_rel}"'
    is_bind = bool(opts.flags & S.MS_BIND) or typ == "bind"

    if typ == "cgroup":
        _mount_cgroup(cfg, sys, dest, opts, desc)
        return
    # Create the mount point: a file for a bind of a file, else a directory.
    if not sys.exists(dest):
        try:
            if is_bind and sys.exists(src) and not sys.is_dir(src):
                fs.mkdir_all(sys, os.path.dirname(dest))
                sys.create_file(dest, 0o755)
            else:
                fs.mkdir_all(sys, dest)
        except OSError as e:
            raise InitError(f"{desc}: {_err(e)}") from None
    flags = opts.flags
    if is_bind:
        flags |= S.MS_BIND
        _step(desc, sys.mount, src, dest, None, flags & (S.MS_BIND | S.MS_REC), None)
        # Bind mounts ignore every other flag on the first call: remount to apply them.
        extra = flags & ~(S.MS_BIND | S.MS_REC | S.MS_REMOUNT)
        if extra:
            _step(desc, sys.mount, None, dest, None, S.MS_BIND | S.MS_REMOUNT | (flags & ~S.MS_REC), None)
    else:
        try:
            sys.mount(src, dest, typ, flags, opts.data or None)
        except OSError as e:
            if typ == "sysfs" and e.errno == 1:
                # no private network namespace: the kernel refuses a new sysfs, bind the host's
                _step(desc, sys.mount, "/sys", dest, None, S.MS_BIND | S.MS_REC, None)
                _step(desc, sys.mount, None, dest, None, S.MS_BIND | S.MS_REMOUNT | S.MS_REC | flags, None)
            else:
                raise InitError(f"{desc}: {_err(e)}") from None
    if opts.propagation:
        _step(desc, sys.mount, None, dest, None, opts.propagation, None)


def _mount_cgroup(cfg: InitConfig, sys: S.Syscalls, dest: str, opts: fs.MountOptions, desc: str) -> None:
    fs.mkdir_all(sys, dest)
    ro = opts.flags & S.MS_RDONLY
    base = opts.flags & (S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC)
    if cfg.cgroup_version == 2:
        _step(desc, sys.mount, "cgroup", dest, "cgroup2", opts.flags, None)
        return
    # v1: a tmpfs with the container's own directory of each hierarchy bound in.
    _step(desc, sys.mount, "tmpfs", dest, "tmpfs", base, "mode=755")
    for host_dir, name in cfg.cgroup_binds:
        sub = os.path.join(dest, name)
        fs.mkdir_all(sys, sub)
        _step(desc, sys.mount, host_dir, sub, None, S.MS_BIND | S.MS_REC, None)
        _step(desc, sys.mount, None, sub, None, S.MS_BIND | S.MS_REMOUNT | base | ro, None)


def _make_device(sys: S.Syscalls, path: str, typ: str, major: int, minor: int, mode: int, uid: int, gid: int) -> None:
    kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}.get(typ)
    if kind is None:
        raise InitError(f"{typ} is not a valid device type for device {path}")
    if sys.exists(path):
        return
    try:
        sys.mknod(path, kind | (mode & 0o7777), major, minor)
    except PermissionError:
        # mknod is refused (e.g. a user namespace): bind the host's node instead
        host = "/dev/" + os.path.basename(path)
        sys.create_file(path, 0)
        _step(f"binding device {host}", sys.mount, host, path, None, S.MS_BIND, None)
        return
    except OSError as e:
        raise InitError(f"creating device {path}: {_err(e)}") from None
    _step(f"chmod device {path}", sys.chmod, path, mode & 0o7777)
    _step(f"chown device {path}", sys.chown, path, uid, gid)


def _pivot_root(sys: S.Syscalls, rootfs: str) -> None:
    # pivot_root(".", "."): the old root ends up stacked on top of the new one,
    # where a lazy unmount removes it without needing a directory for it.
    _step("chdir to rootfs", sys.chdir, rootfs)
    _step("pivot_root", sys.pivot_root, ".", ".")
    _step("making old root a slave", sys.mount, None, ".", None, S.MS_SLAVE | S.MS_REC, None)
    _step("unmounting old root", sys.umount2, ".", S.MNT_DETACH)
    _step("chdir to /", sys.chdir, "/")


def _mask_path(sys: S.Syscalls, path: str) -> None:
    if not sys.exists(path):
        return
    if sys.is_dir(path):
        _step(f"masking {path}", sys.mount, "tmpfs", path, "tmpfs", S.MS_RDONLY, None)
    else:
        _step(f"masking {path}", sys.mount, "/dev/null", path, None, S.MS_BIND, None)


def _readonly_path(sys: S.Syscalls, path: str) -> None:
    if not sys.exists(path):
        return
    _step(f"making {path} read-only", sys.mount, path, path, None, S.MS_BIND | S.MS_REC, None)
    # keep nosuid/nodev/noexec of the underlying mount (a bind remount would clear them)
    flags = sys.statvfs_flags(path)
    _step(f"making {path} read-only", sys.mount, None, path, None,
          S.MS_BIND | S.MS_REMOUNT | S.MS_RDONLY | S.MS_REC | flags, None)


def _setup_console(cfg: InitConfig, sys: S.Syscalls) -> None:
    master, slave_path = _step("opening a pty", sys.open_pty, "/dev/pts/ptmx")
    slave = _step("opening the pty slave", sys.open, slave_path, os.O_RDWR | os.O_NOCTTY)
    if sys.exists("/dev/console"):
        _step("mounting /dev/console", sys.mount, slave_path, "/dev/console", None, S.MS_BIND, None)
    cfg.channel.send({"type": "pty"}, master)
    sys.close(master)
    _step("setting the controlling terminal", sys.set_controlling_tty, slave)
    for target in range(3):
        sys.dup2(slave, target)
    if slave > 2:
        sys.close(slave)


def _switch_user(sys: S.Syscalls, uid: int, gid: int, groups: list[int], caps: dict[str, Any]) -> None:
    # Capabilities this host does not give us (e.g. a sandbox without SYS_RESOURCE)
    # cannot be granted: leave them out instead of failing, so --privileged works.
    available = sys.cap_permitted()
    bounding = to_mask(caps.get("bounding")) & available
    # Keep permitted capabilities across setresuid so capset can grant the spec's set.
    _step("prctl(PR_SET_KEEPCAPS)", sys.prctl, S.PR_SET_KEEPCAPS, 1)
    for cap in range(sys.cap_last_cap() + 1):
        if not bounding & (1 << cap):
            _step("dropping bounding capabilities", sys.capbset_drop, cap)
    _step("setgroups", sys.setgroups, groups)
    _step(f"setgid {gid}", sys.setresgid, gid)
    _step(f"setuid {uid}", sys.setresuid, uid)
    _step("prctl(PR_SET_KEEPCAPS)", sys.prctl, S.PR_SET_KEEPCAPS, 0)
    _step("capset", sys.capset, to_mask(caps.get("effective")) & available,
          to_mask(caps.get("permitted")) & available, to_mask(caps.get("inheritable")) & available)
    ambient = to_mask(caps.get("ambient")) & available
    for cap in range(sys.cap_last_cap() + 1):
        if ambient & (1 << cap):
            _step("raising ambient capabilities", sys.ambient_raise, cap)


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
    ) -> None:
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
    _check_env(list(process.get("env") or []))
    _step("setsid", sys.setsid)
    if cfg.stdio is not None:
        for target, fd in enumerate(cfg.stdio):
            _step("setting up stdio", sys.dup2, fd, target)
    for procs in cfg.cgroup_procs:
        try:
            sys.write_file(procs, "0")
        except FileNotFoundError:
            pass  # the container is exiting; the exec will fail below or die with it
    for name, flag in EXEC_NAMESPACES:
        theirs = f"/proc/{cfg.init_pid}/ns/{name}"
        try:
            a, b = sys.stat(theirs), sys.stat(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            raise InitError(f"container process {cfg.init_pid} is gone", 126) from None
        if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
            _step(f"joining {name} namespace", sys.setns, theirs, flag)
    # setns(mnt) put us at the container's root; cwd is set below
    if process.get("terminal"):
        master, slave_path = _step("opening a pty", sys.open_pty, "/dev/pts/ptmx")
        slave = _step("opening the pty slave", sys.open, slave_path, os.O_RDWR | os.O_NOCTTY)
        cfg.channel.send({"type": "pty"}, master)
        sys.close(master)
        _step("setting the controlling terminal", sys.set_controlling_tty, slave)
        for target in range(3):
            sys.dup2(slave, target)
        if slave > 2:
            sys.close(slave)
    for rl in process.get("rlimits") or []:
        num = RLIMITS.get(str(rl.get("type", "")).upper())
        if num is not None:
            _step(f"setting rlimit {rl['type']}", sys.setrlimit, num, int(rl.get("soft", 0)), int(rl.get("hard", 0)))
    cwd = process.get("cwd") or "/"
    late_seccomp = bool(process.get("noNewPrivileges"))  # see run_init
    if cfg.seccomp and not late_seccomp:
        _step("installing the seccomp filter", sys.seccomp_filter, cfg.seccomp)
    user = process.get("user") or {}
    _switch_user(sys, int(user.get("uid", 0)), int(user.get("gid", 0)),
                 [int(g) for g in user.get("additionalGids") or []], process.get("capabilities") or {})
    try:
        sys.chdir(cwd)
    except OSError as e:
        raise InitError(f'chdir to cwd ("{cwd}") set in config.json failed: {_err(e)}') from None
    if process.get("noNewPrivileges"):
        _step("setting no_new_privs", sys.prctl, S.PR_SET_NO_NEW_PRIVS, 1)
    # A container without its shim has no stdio and no one to record its exit:
    # die with the shim.  Set after the uid change, which clears it.
    _step("prctl(PR_SET_PDEATHSIG)", sys.prctl, S.PR_SET_PDEATHSIG, int(signal.SIGKILL))
    args = list(process.get("args") or [])
    if not args:
        raise InitError("args must not be empty", 126)
    env = list(process.get("env") or [])
    path_env = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    try:
        exe = fs.look_path(args[0], path_env)
    except fs.ExecLookupError as e:
        raise InitError(e.message, e.exit_code) from None
    cfg.channel.send({"type": "ready"})
    if cfg.wait_for_go:
        msg = cfg.channel.recv()
        if not msg or msg.get("type") != "go":
            raise _Abort()
    _exec_now(sys, exe, args, env, cfg.seccomp if late_seccomp else b"")


def _exec_now(sys: S.Syscalls, exe: str, args: list[str], env: list[str], seccomp: bytes = b"") -> None:
    os.umask(0o022)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)  # ignored signals would survive execve
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    if seccomp:
        # no_new_privs is set: the filter can go in last, only execve left to pass it
        try:
            sys.seccomp_filter(seccomp)
        except OSError as e:
            raise ExecFailed(exe, e) from None
    try:
        sys.execve(exe, args, env)
    except OSError as e:
        raise ExecFailed(exe, e) from None
    except ValueError:  # a NUL byte in an argument: execve's EINVAL, as runc's exec reports it
        raise ExecFailed(exe, OSError(errno.EINVAL, os.strerror(errno.EINVAL))) from None


def _check_env(env: list[str]) -> None:
    """runc's checks of the process environment (its words), before anything is executed."""
    for pair in env:
        name, _, value = pair.partition("=")
        for part, what in ((name, "name"), (value, "value")):
            if "\x00" in part:
                raise InitError(f"error during container init: environment variable {what} "
                                f"can't contain null(\\x00): {fs.go_quote(pair)}")




def exec_main(cfg: ExecConfig) -> None:
    """Entry point in the shim's forked child for an exec.

    No setns(pid) is needed: the shim unshared the pid namespace for its
    children when it created the init, so every later fork of the shim lands
    in the container's pid namespace as the shim's own child."""
    _run_and_exit(lambda: run_exec(cfg, S.LinuxSyscalls()), cfg)


def child_main(cfg: InitConfig) -> None:
    """Entry point in the forked child: run the init, report failures, never return."""
    _run_and_exit(lambda: run_init(cfg, S.LinuxSyscalls()), cfg)


def _run_and_exit(fn: Any, cfg: InitConfig | ExecConfig) -> None:
    code = 1
    try:
        fn()
    except _Abort:
        code = 0
    except InitError as e:
        code = e.exit_code
        _report(cfg, e.message, e.exit_code)
    except ExecFailed as e:
        # After "go" nobody waits for our report: like runc, say it on the
        # container's stderr (it lands in the logs) and exit 1.
        try:
            os.write(2, f"exec {e.path}: {_err(e.err)}\n".encode())
        except OSError:
            pass
        code = 1
    except BaseException as e:  # noqa: BLE001 - never return into the shim's code
        _report(cfg, f"container init failed: {e!r}", 128)
        code = 128
    os._exit(code)


def _report(cfg: InitConfig | ExecConfig, message: str, exit_code: int) -> None:
    try:
        cfg.channel.send({"type": "error", "message": message, "exit_code": exit_code})
    except OSError:
        pass
