"""Seccomp: the profile, its BPF compilation (run on a tiny interpreter), and the kernel."""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import pytest

from engine.oci.caps import DEFAULT_CAPABILITIES
from engine.oci.seccomp import default_profile
from engine.runtime import seccomp as sc
from engine.runtime.syscall_table_x86_64 import SYSCALLS
from tests.runtime.conftest import Bench, collect, run

ARCH = 0xC000003E


def bpf_run(prog: bytes, nr: int, args: tuple[int, ...] = (0,) * 6, arch: int = ARCH) -> int:
    """Evaluate a classic-BPF seccomp program over one struct seccomp_data."""
    data = struct.pack("iIQ6Q", nr, arch, 0, *args)
    ins = [struct.unpack_from("HBBI", prog, i) for i in range(0, len(prog), 8)]
    a = 0
    pc = 0
    while True:
        code, jt, jf, k = ins[pc]
        pc += 1
        if code == sc.LD_W_ABS:
            a = struct.unpack_from("I", data, k)[0]
        elif code == sc.ALU_AND_K:
            a &= k
        elif code == sc.JEQ_K:
            pc += jt if a == k else jf
        elif code == sc.JGE_K:
            pc += jt if a >= k else jf
        elif code == sc.JGT_K:
            pc += jt if a > k else jf
        elif code == sc.JA:
            pc += k
        elif code == sc.RET_K:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


EPERM = sc.RET_ERRNO | 1


def test_default_profile_compiled() -> None:
    prog = sc.compile_filter(default_profile(list(DEFAULT_CAPABILITIES)), SYSCALLS)
    assert bpf_run(prog, SYSCALLS["read"]) == sc.RET_ALLOW
    assert bpf_run(prog, SYSCALLS["keyctl"]) == EPERM
    assert bpf_run(prog, SYSCALLS["unshare"]) == EPERM
    assert bpf_run(prog, SYSCALLS["mount"]) == EPERM
    assert bpf_run(prog, SYSCALLS["io_uring_setup"]) == EPERM   # refused since Docker 25
    assert bpf_run(prog, SYSCALLS["chroot"]) == sc.RET_ALLOW   # CAP_SYS_CHROOT is a default capability
    assert bpf_run(prog, SYSCALLS["clone3"]) == sc.RET_ERRNO | 38
    # an allow-list: a call nobody named is refused, one newer than the table gets ENOSYS
    assert bpf_run(prog, SYSCALLS["vhangup"]) == EPERM
    assert bpf_run(prog, max(SYSCALLS.values()) + 1) == sc.RET_ERRNO | 38
    # personality: the listed personas only; socket: all families but AF_ALG and AF_VSOCK
    assert bpf_run(prog, SYSCALLS["personality"], (8, 0, 0, 0, 0, 0)) == sc.RET_ALLOW
    assert bpf_run(prog, SYSCALLS["personality"], (1, 0, 0, 0, 0, 0)) == EPERM
    for family, want in ((1, sc.RET_ALLOW), (2, sc.RET_ALLOW), (37, sc.RET_ALLOW), (38, EPERM), (39, sc.RET_ALLOW),
                         (40, EPERM), (41, sc.RET_ALLOW), (1 << 32 | 38, sc.RET_ALLOW)):
        assert bpf_run(prog, SYSCALLS["socket"], (family, 1, 0, 0, 0, 0)) == want, family
    # clone: threads and forks pass, namespace flags do not
    assert bpf_run(prog, SYSCALLS["clone"], (0x003D0F00, 0, 0, 0, 0, 0)) == sc.RET_ALLOW
    assert bpf_run(prog, SYSCALLS["clone"], (0x10000011, 0, 0, 0, 0, 0)) == EPERM
    assert bpf_run(prog, SYSCALLS["clone"], (0x40000000 | 17, 0, 0, 0, 0, 0)) == EPERM
    # the i386 ABI has the same list under its own numbers; x32 and others cannot sidestep it
    i386 = sc.table_for("i386")
    assert bpf_run(prog, i386["read"], arch=sc.AUDIT_ARCH["i386"]) == sc.RET_ALLOW
    assert bpf_run(prog, i386["unshare"], arch=sc.AUDIT_ARCH["i386"]) == EPERM
    assert bpf_run(prog, i386["socketcall"], arch=sc.AUDIT_ARCH["i386"]) == sc.RET_ALLOW
    assert bpf_run(prog, i386["clone"], (0x10000011, 0, 0, 0, 0, 0), arch=sc.AUDIT_ARCH["i386"]) == EPERM
    assert bpf_run(prog, max(i386.values()) + 1, arch=sc.AUDIT_ARCH["i386"]) == sc.RET_ERRNO | 38
    assert bpf_run(prog, SYSCALLS["read"], arch=0xC00000B7) == EPERM   # aarch64
    native_only = sc.compile_filter({**default_profile(list(DEFAULT_CAPABILITIES)),
                                     "architectures": ["SCMP_ARCH_X86_64"]}, SYSCALLS)
    assert bpf_run(native_only, i386["read"], arch=sc.AUDIT_ARCH["i386"]) == EPERM
    assert bpf_run(native_only, SYSCALLS["read"]) == sc.RET_ALLOW
    assert bpf_run(prog, SYSCALLS["read"] | 0x40000000) == EPERM


def _holds(op: str, arg: int, value: int, two: int) -> bool:
    return {"SCMP_CMP_EQ": arg == value, "SCMP_CMP_NE": arg != value, "SCMP_CMP_MASKED_EQ": arg & value == two,
            "SCMP_CMP_GT": arg > value, "SCMP_CMP_GE": arg >= value, "SCMP_CMP_LT": arg < value,
            "SCMP_CMP_LE": arg <= value}[op]


def _decided(profile: dict[str, Any], table: dict[str, int], nr: int, args: tuple[int, ...]) -> int:
    """What the profile says for one call, read rule by rule (the semantics the filter compiles)."""
    if nr > max(table.values()) and profile.get("defaultAction") != "SCMP_ACT_ALLOW":
        return sc.RET_ERRNO | 38
    for rule in profile.get("syscalls") or []:
        if nr in [table.get(n) for n in rule.get("names") or []] and all(
                _holds(a.get("op", "SCMP_CMP_EQ"), args[a.get("index", 0)], a.get("value", 0), a.get("valueTwo", 0))
                for a in rule.get("args") or []):
            return sc._ret(rule.get("action", "SCMP_ACT_ERRNO"), rule.get("errnoRet"))
    return sc._ret(profile.get("defaultAction", "SCMP_ACT_ALLOW"), profile.get("defaultErrnoRet"))


@pytest.mark.parametrize("caps", [list(DEFAULT_CAPABILITIES), [], [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"]])
def test_the_filter_decides_every_call_as_the_profile_reads(caps: list[str]) -> None:
    """Every number of both ABIs, with argument values the profile's rules compare against;
    and the filter is a search, not a list (the kernel runs it for every number at install)."""
    import random
    profile = default_profile(caps)
    prog = sc.compile_filter(profile, SYSCALLS)
    assert len(prog) // 8 < 800     # a linear list of the same profile was ~1,500
    values = sorted({int(a.get(k, 0)) for r in profile["syscalls"] for a in r.get("args") or []
                     for k in ("value", "valueTwo")} | {0, 1, (1 << 64) - 1})
    rnd = random.Random(7)
    for abi, table in (("x86_64", SYSCALLS), ("i386", sc.table_for("i386"))):
        for nr in range(max(table.values()) + 3):
            for args in [(0,) * 6] + [tuple(rnd.choice(values) for _ in range(6)) for _ in range(2)]:
                assert bpf_run(prog, nr, args, arch=sc.AUDIT_ARCH[abi]) == _decided(profile, table, nr, args), \
                    (abi, nr, args)


def test_capabilities_lift_restrictions() -> None:
    prog = sc.compile_filter(default_profile([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_TIME"]), SYSCALLS)
    assert bpf_run(prog, SYSCALLS["mount"]) == sc.RET_ALLOW
    assert bpf_run(prog, SYSCALLS["clone"], (0x10000011, 0, 0, 0, 0, 0)) == sc.RET_ALLOW
    assert bpf_run(prog, SYSCALLS["settimeofday"]) == sc.RET_ALLOW
    assert bpf_run(prog, SYSCALLS["clone3"]) == sc.RET_ALLOW
    assert bpf_run(prog, SYSCALLS["keyctl"]) == EPERM


def test_allowlist_profile_and_masked_64bit_args() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": ["ioctl"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 1, "value": 0xFF00000000, "valueTwo": 0x1200000000, "op": "SCMP_CMP_MASKED_EQ"}],
            },
            {"names": ["no_such_syscall"], "action": "SCMP_ACT_ALLOW"},
        ],
    }
    prog = sc.compile_filter(profile, SYSCALLS)
    assert bpf_run(prog, SYSCALLS["write"]) == sc.RET_ALLOW
    assert bpf_run(prog, SYSCALLS["openat"]) == EPERM
    assert bpf_run(prog, SYSCALLS["personality"], (0xFFFFFFFF, 0, 0, 0, 0, 0)) == sc.RET_ALLOW
    assert bpf_run(prog, SYSCALLS["personality"], (0x0008, 0, 0, 0, 0, 0)) == EPERM
    assert bpf_run(prog, SYSCALLS["ioctl"], (0, 0x12_0000_0001, 0, 0, 0, 0)) == sc.RET_ALLOW
    assert bpf_run(prog, SYSCALLS["ioctl"], (0, 0x13_0000_0001, 0, 0, 0, 0)) == EPERM
    with pytest.raises(sc.SeccompError):
        sc.compile_filter({"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_BOGUS"}]}]}, SYSCALLS)


@pytest.mark.parametrize("op,value,cases", [
    ("SCMP_CMP_NE", 5, ((5, False), (4, True), (1 << 32 | 5, True))),
    ("SCMP_CMP_LT", 1 << 32 | 10, ((10, True), (1 << 32 | 9, True), (1 << 32 | 10, False), (2 << 32, False))),
    ("SCMP_CMP_LE", 1 << 32 | 10, ((1 << 32 | 10, True), (1 << 32 | 11, False), (0, True))),
    ("SCMP_CMP_GT", 1 << 32 | 10, ((1 << 32 | 11, True), (1 << 32 | 10, False), (2 << 32, True), (99, False))),
    ("SCMP_CMP_GE", 10, ((10, True), (9, False), (1 << 32, True))),
])
def test_64bit_comparisons(op: str, value: int, cases: tuple[tuple[int, bool], ...]) -> None:
    profile = {"defaultAction": "SCMP_ACT_ERRNO",
               "syscalls": [{"names": ["lseek"], "action": "SCMP_ACT_ALLOW",
                             "args": [{"index": 1, "value": value, "op": op}]}]}
    prog = sc.compile_filter(profile, SYSCALLS)
    for arg, allowed in cases:
        got = bpf_run(prog, SYSCALLS["lseek"], (0, arg, 0, 0, 0, 0))
        assert (got == sc.RET_ALLOW) is allowed, (op, value, arg)


def test_two_conditions_are_anded() -> None:
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13,
               "syscalls": [{"names": ["lseek"], "action": "SCMP_ACT_ALLOW",
                             "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"},
                                      {"index": 2, "value": 1, "op": "SCMP_CMP_LE"}]},
                            {"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22}]}
    prog = sc.compile_filter(profile, SYSCALLS)
    assert bpf_run(prog, SYSCALLS["lseek"], (3, 0, 1, 0, 0, 0)) == sc.RET_ALLOW
    assert bpf_run(prog, SYSCALLS["lseek"], (3, 0, 2, 0, 0, 0)) == sc.RET_ERRNO | 22
    assert bpf_run(prog, SYSCALLS["lseek"], (4, 0, 0, 0, 0, 0)) == sc.RET_ERRNO | 22
    assert bpf_run(prog, SYSCALLS["read"]) == sc.RET_ERRNO | 13


def _run_in(bench: Bench, script: str, **kw: object) -> str:
    async def go() -> str:
        h = await bench.create(["sh", "-c", script], **kw)
        a = await h.attach(stdin=False, stdout=True, stderr=True)
        await h.start()
        out, err = await collect(a)
        await h.wait()
        await a.close()
        await h.close()
        return (out + err).decode()
    return run(go())


def test_filter_in_a_real_container(bench: Bench) -> None:
    out = _run_in(bench, "grep Seccomp: /proc/self/status; unshare -U true && echo userns-ok || echo userns-denied")
    assert "Seccomp:\t2" in out
    assert "userns-denied" in out


def test_unconfined(bench: Bench) -> None:
    out = _run_in(bench, "grep Seccomp: /proc/self/status; unshare -U true && echo userns-ok || echo userns-denied",
                  seccomp=False)
    assert "Seccomp:\t0" in out
    if "userns-denied" in out:
        pytest.skip("this kernel refuses user namespaces even without a filter")
    assert "userns-ok" in out


def test_compiled_filters_are_cached_per_profile(tmp_path: Path) -> None:
    cache = str(tmp_path / "seccomp")
    profile = default_profile(list(DEFAULT_CAPABILITIES))
    compiled = sc.compile_filter(profile, sc.table_for("x86_64"), "x86_64")
    assert sc.compile_cached(profile, "x86_64", cache) == compiled
    (entry,) = os.listdir(cache)
    assert os.stat(cache).st_mode & 0o777 == 0o700
    # the next start reads the entry instead of compiling: a marked entry comes back
    marked = compiled[:-8] + struct.pack("HBBI", sc.RET_K, 0, 0, sc.RET_ALLOW)
    with open(os.path.join(cache, entry), "wb") as f:
        f.write(marked)
    assert sc.compile_cached(profile, "x86_64", cache) == marked
    # another profile is another entry; a torn entry is compiled again
    other = default_profile(list(DEFAULT_CAPABILITIES) + ["CAP_SYS_ADMIN"])
    assert sc.compile_cached(other, "x86_64", cache) == sc.compile_filter(other, sc.table_for("x86_64"), "x86_64")
    assert len(os.listdir(cache)) == 2
    with open(os.path.join(cache, entry), "wb") as f:
        f.write(b"abc")
    assert sc.compile_cached(profile, "x86_64", cache) == compiled


def test_the_cache_keeps_a_bounded_number_of_filters(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sc, "CACHE_ENTRIES", 3)
    cache = str(tmp_path / "seccomp")
    for i in range(6):
        sc.compile_cached({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": i + 1}]}, "x86_64", cache)
    assert len(os.listdir(cache)) == 3
