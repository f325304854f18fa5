"""Every system call the container init makes, behind one interface.

``LinuxSyscalls`` does the real thing through ctypes (Python 3.11 has no
os.unshare/os.setns and no pivot_root at all).  The recording fake the init's
unit tests replay the sequence on is ``engine.testing.syscalls.RecordingSyscalls``;
read-only queries (exists, is_dir, readlink...) go to the real file system in
both, which lets tests run the init logic against a temp dir.

Everything is imported at module load: after pivot_root the host's Python
library is out of reach, so the init must not import lazily.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import resource as _resource
import socket
import struct
import termios

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

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# syscall numbers glibc has no wrapper for
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "ppc64le": 203, "s390x": 217}
_SYS_MOUNT_SETATTR = 442    # the same number on every architecture (new syscalls are unified)
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1


class SyscallError(OSError):
    """An OSError that names the call, so init error messages say what failed."""


class Syscalls:
    """The interface.  Methods raise OSError (errno set) on failure."""

    # -- namespaces
    def unshare(self, flags: int) -> None: raise NotImplementedError
    def setns(self, path: str, nstype: int) -> None: raise NotImplementedError
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


def malloc_trim() -> None:
    """Give the C heap's free pages back to the kernel (glibc's malloc_trim; elsewhere a no-op)."""
    try:
        ctypes.CDLL(None).malloc_trim(ctypes.c_size_t(0))
    except (AttributeError, OSError):
        pass


def _check(ret: int, what: str) -> int:
    if ret < 0:
        e = ctypes.get_errno()
        raise SyscallError(e, f"{what}: {os.strerror(e)}")
    return ret


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class LinuxSyscalls(Syscalls):
    """The real kernel, through libc."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        self._libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self._libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        self._libc.syscall.restype = ctypes.c_long

    @staticmethod
    def _b(s: str | None) -> bytes | None:
        return None if s is None else os.fsencode(s)

    def unshare(self, flags: int) -> None:
        _check(self._libc.unshare(ctypes.c_int(flags)), "unshare")

    def setns(self, path: str, nstype: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(self._libc.setns(fd, nstype), f"setns {path}")
        finally:
            os.close(fd)

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
        _check(self._libc.mount(self._b(source), self._b(target), self._b(fstype), flags, self._b(data)),
               f"mount {source} to {target}")

    def umount2(self, target: str, flags: int) -> None:
        _check(self._libc.umount2(self._b(target), flags), f"umount {target}")

    def make_readonly_recursive(self, target: str) -> None:
        """mount_setattr(2) with AT_RECURSIVE: the mount at ``target`` and every mount below it
        read-only (OCI's "rro", as runc does it)."""
        attr = (ctypes.c_uint64 * 4)(_MOUNT_ATTR_RDONLY, 0, 0, 0)   # struct mount_attr
        _check(self._libc.syscall(ctypes.c_long(_SYS_MOUNT_SETATTR), ctypes.c_int(_AT_FDCWD), self._b(target),
                                  ctypes.c_uint(_AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(32)),
               f"mount_setattr {target}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        nr = _SYS_PIVOT_ROOT.get(os.uname().machine)
        if nr is None:
            raise SyscallError(errno.ENOSYS, "pivot_root: unknown architecture")
        _check(self._libc.syscall(ctypes.c_long(nr), self._b(new_root), self._b(put_old)), "pivot_root")

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(path, mode)

    def create_file(self, path: str, mode: int) -> None:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, mode))

    def mknod(self, path: str, mode: int, major: int, minor: int) -> None:
        os.mknod(path, mode, os.makedev(major, minor))

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(path, uid, gid, follow_symlinks=False)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(path, mode)

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target, path)

    def write_file(self, path: str, data: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)

    def chdir(self, path: str) -> None:
        os.chdir(path)

    def open(self, path: str, flags: int, mode: int = 0) -> int:
        return os.open(path, flags, mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def dup2(self, fd: int, fd2: int) -> None:
        os.dup2(fd, fd2, inheritable=True)

    def sethostname(self, name: str) -> None:
        b = name.encode()
        _check(self._libc.sethostname(b, ctypes.c_size_t(len(b))), "sethostname")

    def setdomainname(self, name: str) -> None:
        b = name.encode()
        _check(self._libc.setdomainname(b, ctypes.c_size_t(len(b))), "setdomainname")

    def setsid(self) -> None:
        os.setsid()

    def set_controlling_tty(self, fd: int) -> None:
        fcntl.ioctl(fd, TIOCSCTTY, 0)

    def set_window_size(self, fd: int, height: int, width: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> None:
        _check(self._libc.prctl(option, arg2, arg3, 0, 0), f"prctl({option})")

    def capbset_drop(self, cap: int) -> None:
        try:
            self.prctl(PR_CAPBSET_DROP, cap)
        except OSError as e:
            if e.errno != errno.EINVAL:  # EINVAL: cap unknown to this kernel
                raise

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i in range(2):
            shift = 32 * i
            data[i].effective = (effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        _check(self._libc.capset(ctypes.byref(hdr), data), "capset")

    def ambient_raise(self, cap: int) -> None:
        self.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)

    def setgroups(self, gids: list[int]) -> None:
        os.setgroups(gids)

    def setresgid(self, gid: int) -> None:
        os.setresgid(gid, gid, gid)

    def setresuid(self, uid: int) -> None:
        os.setresuid(uid, uid, uid)

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        _resource.setrlimit(resource, (soft, hard))

    def loopback_up(self) -> None:
        # A new network namespace has "lo" down; one ioctl brings it up.
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            req = struct.pack("16sH14s", b"lo", 0, b"")
            flags = struct.unpack("16sH14s", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))
        finally:
            s.close()

    def open_pty(self, ptmx: str) -> tuple[int, str]:
        """Open a new pty pair on the devpts instance of ``ptmx``; return (master fd, slave path)."""
        master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
        n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
        return master, os.path.join(os.path.dirname(ptmx), str(n))

    def seccomp_filter(self, prog: bytes) -> None:
        """Install a classic-BPF seccomp filter (packed struct sock_filter[])."""
        buf = ctypes.create_string_buffer(prog, len(prog))
        fprog = _SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
        self.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))

    def execve(self, path: str, args: list[str], env: list[str]) -> None:
        envd: dict[str, str] = {}
        for item in env:
            k, _, v = item.partition("=")
            envd[k] = v
        os.execve(path, args, envd)
