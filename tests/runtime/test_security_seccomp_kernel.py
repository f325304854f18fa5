"""The compiled default filter as the kernel runs it, for the native and the i386 ABI.

A forked child installs the filter (with no_new_privs) and reports what a few
system calls return; the i386 calls go through ``int 0x80`` from a tiny piece
of machine code, which the kernel audits as AUDIT_ARCH_I386.
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import struct

import pytest

from engine.oci.caps import DEFAULT_CAPABILITIES
from engine.oci.seccomp import default_profile
from engine.runtime import seccomp as sc

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 ABIs")

PR_SET_NO_NEW_PRIVS = 38
SYS_SECCOMP = 317
SECCOMP_SET_MODE_FILTER = 1


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _int80(nr: int, arg0: int) -> ctypes._CFuncPtr:
    """A function running one i386 system call: mov eax,nr; mov ebx,arg0; xor ecx,ecx;
    xor edx,edx; int 0x80; ret."""
    code = b"\xb8" + struct.pack("<I", nr) + b"\xbb" + struct.pack("<I", arg0) + b"\x31\xc9\x31\xd2\xcd\x80\xc3"
    buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    fn = ctypes.CFUNCTYPE(ctypes.c_int)(addr)
    fn._keep = buf  # type: ignore[attr-defined]
    return fn


def _in_child(filter_prog: bytes | None, calls: list[tuple[str, int, int]]) -> list[int]:
    """Run ``calls`` ((abi, nr, arg0)) in a forked child; -> results (negative errno)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            fns = {(nr, a0): _int80(nr, a0) for abi, nr, a0 in calls if abi == "i386"}
            if filter_prog is not None:
                buf = ctypes.create_string_buffer(filter_prog)
                prog = _SockFprog(len(filter_prog) // 8, ctypes.addressof(buf))
                if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                    os._exit(3)
                if libc.syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(prog)) != 0:
                    os._exit(4)
            out = []
            for abi, nr, a0 in calls:
                if abi == "i386":
                    out.append(fns[(nr, a0)]())
                else:
                    ret = libc.syscall(ctypes.c_long(nr), ctypes.c_ulong(a0), ctypes.c_long(0), ctypes.c_long(0))
                    out.append(-ctypes.get_errno() if ret == -1 else ret)
            os.write(w, struct.pack(f"{len(out)}q", *out))
            os._exit(0)
        except BaseException:  # noqa: BLE001 - the forked child must never return into pytest
            os._exit(5)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        raise RuntimeError(f"child failed: {status:#x}")
    return list(struct.unpack(f"{len(data) // 8}q", data))


def _ia32_available() -> bool:
    try:
        return _in_child(None, [("i386", 20, 0)])[0] > 0  # getpid
    except RuntimeError:
        return False


def test_kernel_runs_the_filter_for_both_abis() -> None:
    if not _ia32_available():
        pytest.skip("no IA32 emulation in this kernel")
    i386 = sc.table_for("i386")
    x64 = sc.table_for("x86_64")
    prog = sc.compile_filter(default_profile(list(DEFAULT_CAPABILITIES)), x64)
    # CLONE_NEWUSER for unshare; 0xffffffff = personality query
    got = _in_child(prog, [
        ("x86_64", x64["getppid"], 0),
        ("x86_64", x64["unshare"], 0x10000000),
        ("x86_64", x64["keyctl"], 0),
        ("x86_64", max(x64.values()) + 1, 0),
        ("x86_64", x64["personality"], 0xFFFFFFFF),
        ("i386", i386["getppid"], 0),
        ("i386", i386["unshare"], 0x10000000),
        ("i386", i386["keyctl"], 0),
        ("i386", max(i386.values()) + 1, 0),
    ])
    ppid = os.getpid()
    assert got[0] == ppid
    assert got[1:4] == [-errno.EPERM, -errno.EPERM, -errno.ENOSYS]
    assert got[4] >= 0
    assert got[5] == ppid
    assert got[6:] == [-errno.EPERM, -errno.EPERM, -errno.ENOSYS]
