"""Every system call the container init makes, behind one interface.

``engine.runtime.linux.LinuxSyscalls`` does the real thing through ctypes.  The
recording fake the init's unit tests replay the sequence on is
``engine.testing.syscalls.RecordingSyscalls``; read-only queries (exists, is_dir,
readlink...) go to the real file system in both, which lets tests run the init
logic against a temp dir.

Everything is imported at module load: after pivot_root the host's Python
library is out of reach, so the init must not import lazily.
"""
from __future__ import annotations

import os

# clone(2) / unshare(2) flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS: dict[str, int] = {
    "mount": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "network": CLONE_NEWNET,
    "cgroup": CLONE_NEWCGROUP,
    "pid": CLONE_NEWPID,
    "user": CLONE_NEWUSER,
}

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# ioctl(2)
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

class SyscallError(OSError):
    """An OSError that names the call, so init error messages say what failed."""


class Syscalls:
    """The interface.  Methods raise OSError (errno set) on failure."""

    # -- namespaces
    def unshare(self, flags: int) -> None: raise NotImplementedError
    def setns(self, path: str, nstype: int) -> None: raise NotImplementedError
    def setns_fd(self, fd: int, nstype: int) -> None: raise NotImplementedError   # an open nsfs file
    # -- mounts
    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
        raise NotImplementedError
    def umount2(self, target: str, flags: int) -> None: raise NotImplementedError
    def make_readonly_recursive(self, target: str) -> None: raise NotImplementedError  # mount_setattr(2)
    def pivot_root(self, new_root: str, put_old: str) -> None: raise NotImplementedError
    # -- files
    def mkdir(self, path: str, mode: int) -> None: raise NotImplementedError
    def create_file(self, path: str, mode: int) -> None: raise NotImplementedError
    def mknod(self, path: str, mode: int, major: int, minor: int) -> None: raise NotImplementedError
    def chown(self, path: str, uid: int, gid: int) -> None: raise NotImplementedError
    def chmod(self, path: str, mode: int) -> None: raise NotImplementedError
    def symlink(self, target: str, path: str) -> None: raise NotImplementedError
    def write_file(self, path: str, data: str) -> None: raise NotImplementedError
    def write_fd(self, fd: int, data: str) -> None: raise NotImplementedError     # an open file
    def chdir(self, path: str) -> None: raise NotImplementedError
    def open(self, path: str, flags: int, mode: int = 0) -> int: raise NotImplementedError
    def close(self, fd: int) -> None: raise NotImplementedError
    def dup2(self, fd: int, fd2: int) -> None: raise NotImplementedError
    # -- identity / process
    def sethostname(self, name: str) -> None: raise NotImplementedError
    def setdomainname(self, name: str) -> None: raise NotImplementedError
    def setsid(self) -> None: raise NotImplementedError
    def set_controlling_tty(self, fd: int) -> None: raise NotImplementedError
    def set_window_size(self, fd: int, height: int, width: int) -> None: raise NotImplementedError
    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> None: raise NotImplementedError
    def capbset_drop(self, cap: int) -> None: raise NotImplementedError
    def capset(self, effective: int, permitted: int, inheritable: int) -> None: raise NotImplementedError
    def ambient_raise(self, cap: int) -> None: raise NotImplementedError
    def setgroups(self, gids: list[int]) -> None: raise NotImplementedError
    def setresgid(self, gid: int) -> None: raise NotImplementedError
    def setresuid(self, uid: int) -> None: raise NotImplementedError
    def setrlimit(self, resource: int, soft: int, hard: int) -> None: raise NotImplementedError
    def loopback_up(self) -> None: raise NotImplementedError
    def open_pty(self, ptmx: str) -> tuple[int, str]: raise NotImplementedError
    def seccomp_filter(self, prog: bytes) -> None: raise NotImplementedError
    def execve(self, path: str, args: list[str], env: list[str]) -> None: raise NotImplementedError

    # -- read-only queries: the real file system in every implementation
    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def stat(self, path: str) -> os.stat_result:
        return os.stat(path)

    def readlink(self, path: str) -> str:
        return os.readlink(path)

    def islink(self, path: str) -> bool:
        return os.path.islink(path)

    def statvfs_flags(self, path: str) -> int:
        """The mount flags (MS_*) of the mount holding ``path``."""
        f = os.statvfs(path).f_flag
        # ST_* values equal MS_* for these bits.
        keep = (
            MS_RDONLY
            | MS_NOSUID
            | MS_NODEV
            | MS_NOEXEC
            | MS_SYNCHRONOUS
            | MS_MANDLOCK
            | MS_NOATIME
            | MS_NODIRATIME
            | MS_RELATIME
        )
        return f & keep

    def cap_permitted(self) -> int:
        """Our permitted capability set (what capset can still grant)."""
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("CapPrm:"):
                        return int(line.split()[1], 16)
        except (OSError, ValueError):
            pass
        return (1 << 64) - 1

    def cap_last_cap(self) -> int:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as fh:
                return int(fh.read())
        except OSError:
            return 40
