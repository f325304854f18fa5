"""``Syscalls`` on the real kernel, through libc (ctypes): Python 3.11 has no
os.unshare/os.setns and no pivot_root at all.

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

from engine.runtime.syscalls import (
    IFF_UP,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    PR_SET_SECCOMP,
    SECCOMP_MODE_FILTER,
    SIOCGIFFLAGS,
    SIOCSIFFLAGS,
    TIOCGPTN,
    TIOCSCTTY,
    TIOCSPTLCK,
    SyscallError,
    Syscalls,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# syscall numbers glibc has no wrapper for
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "ppc64le": 203, "s390x": 217}
_SYS_MOUNT_SETATTR = 442    # the same number on every architecture (new syscalls are unified)
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1


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
    """The real kernel, through libc.

    The capability queries are answered once per instance (they do not change in the
    shim or in anything it forks), and the last seccomp program's kernel structure is
    kept: the shim makes one instance, ``linux_syscalls()``, before it forks the init and
    every exec, so that a forked child does neither the /proc reads nor the ctypes setup
    again (each page it touches first costs a fault)."""

    def __init__(self) -> None:
        self._cap_permitted: int | None = None
        self._cap_last_cap: int | None = None
        self._fprog: tuple[bytes, Any, Any] | None = None
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

    def setns_fd(self, fd: int, nstype: int) -> None:
        _check(self._libc.setns(fd, nstype), "setns")

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

    def write_fd(self, fd: int, data: str) -> None:
        os.write(fd, data.encode())

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
        self.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(self.prepare_seccomp(prog)))

    def prepare_seccomp(self, prog: bytes) -> Any:
        """The kernel's ``struct sock_fprog`` for ``prog`` (kept for the next call with it)."""
        if self._fprog is None or self._fprog[0] is not prog:
            buf = ctypes.create_string_buffer(prog, len(prog))
            self._fprog = (prog, buf, _SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p)))
        return self._fprog[2]

    def cap_permitted(self) -> int:
        if self._cap_permitted is None:
            self._cap_permitted = super().cap_permitted()
        return self._cap_permitted

    def cap_last_cap(self) -> int:
        if self._cap_last_cap is None:
            self._cap_last_cap = super().cap_last_cap()
        return self._cap_last_cap

    def execve(self, path: str, args: list[str], env: list[str]) -> None:
        envd: dict[str, str] = {}
        for item in env:
            k, _, v = item.partition("=")
            envd[k] = v
        os.execve(path, args, envd)


_linux: LinuxSyscalls | None = None


def linux_syscalls() -> LinuxSyscalls:
    """The process's ``LinuxSyscalls``, made (and its capability queries answered) once:
    in the shim parent, so every shim and every child it forks inherit it ready."""
    global _linux
    if _linux is None:
        _linux = LinuxSyscalls()
        _linux.cap_permitted()
        _linux.cap_last_cap()
    return _linux
