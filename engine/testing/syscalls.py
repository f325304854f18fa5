"""A recording fake of the init's system calls (``engine.runtime.syscalls.Syscalls``).

Every mutating call is recorded as a tuple and does nothing else, so the init
sequence can be unit-tested without root; read-only queries go to the real file
system (the interface's own methods).
"""
from __future__ import annotations

import os
from typing import Any

from ..runtime.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID, Syscalls


class RecordingSyscalls(Syscalls):
    """Records every mutating call as ``(name, *args)``; does nothing else.

    ``fail`` maps a call name to an OSError to raise (for error-path tests).
    """

    def __init__(self, fail: dict[str, OSError] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = dict(fail or {})
        self._next_fd = 100

    def _rec(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        err = self.fail.get(name)
        if err is not None:
            raise err

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def unshare(self, flags: int) -> None: self._rec("unshare", flags)
    def setns(self, path: str, nstype: int) -> None: self._rec("setns", path, nstype)
    def setns_fd(self, fd: int, nstype: int) -> None: self._rec("setns_fd", fd, nstype)
    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
        self._rec("mount", source, target, fstype, flags, data)
    def umount2(self, target: str, flags: int) -> None: self._rec("umount2", target, flags)
    def make_readonly_recursive(self, target: str) -> None: self._rec("make_readonly_recursive", target)
    def pivot_root(self, new_root: str, put_old: str) -> None: self._rec("pivot_root", new_root, put_old)
    def mkdir(self, path: str, mode: int) -> None: self._rec("mkdir", path, mode)
    def create_file(self, path: str, mode: int) -> None: self._rec("create_file", path, mode)
    def mknod(self, path: str, mode: int, major: int, minor: int) -> None: self._rec("mknod", path, mode, major, minor)
    def chown(self, path: str, uid: int, gid: int) -> None: self._rec("chown", path, uid, gid)
    def chmod(self, path: str, mode: int) -> None: self._rec("chmod", path, mode)
    def symlink(self, target: str, path: str) -> None: self._rec("symlink", target, path)
    def write_file(self, path: str, data: str) -> None: self._rec("write_file", path, data)
    def write_fd(self, fd: int, data: str) -> None: self._rec("write_fd", fd, data)
    def chdir(self, path: str) -> None: self._rec("chdir", path)

    def open(self, path: str, flags: int, mode: int = 0) -> int:
        self._rec("open", path, flags)
        self._next_fd += 1
        return self._next_fd

    def close(self, fd: int) -> None: self._rec("close", fd)
    def dup2(self, fd: int, fd2: int) -> None: self._rec("dup2", fd, fd2)
    def sethostname(self, name: str) -> None: self._rec("sethostname", name)
    def setdomainname(self, name: str) -> None: self._rec("setdomainname", name)
    def setsid(self) -> None: self._rec("setsid")
    def set_controlling_tty(self, fd: int) -> None: self._rec("set_controlling_tty", fd)
    def set_window_size(self, fd: int, height: int, width: int) -> None:
        self._rec("set_window_size", fd, height, width)
    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> None: self._rec("prctl", option, arg2, arg3)
    def capbset_drop(self, cap: int) -> None: self._rec("capbset_drop", cap)
    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self._rec("capset", effective, permitted, inheritable)
    def ambient_raise(self, cap: int) -> None: self._rec("ambient_raise", cap)
    def setgroups(self, gids: list[int]) -> None: self._rec("setgroups", list(gids))
    def setresgid(self, gid: int) -> None: self._rec("setresgid", gid)
    def setresuid(self, uid: int) -> None: self._rec("setresuid", uid)
    def setrlimit(self, resource: int, soft: int, hard: int) -> None: self._rec("setrlimit", resource, soft, hard)
    def loopback_up(self) -> None: self._rec("loopback_up")

    def open_pty(self, ptmx: str) -> tuple[int, str]:
        self._rec("open_pty", ptmx)
        self._next_fd += 1
        return self._next_fd, os.path.join(os.path.dirname(ptmx), "0")

    def seccomp_filter(self, prog: bytes) -> None:
        self._rec("seccomp_filter", len(prog) // 8)

    def execve(self, path: str, args: list[str], env: list[str]) -> None:
        self._rec("execve", path, list(args), list(env))

    def statvfs_flags(self, path: str) -> int:
        return MS_NOSUID | MS_NODEV | MS_NOEXEC

    def cap_last_cap(self) -> int:
        return 40

    def cap_permitted(self) -> int:
        return (1 << 41) - 1
