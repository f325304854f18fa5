"""Compile an OCI ``linux.seccomp`` profile into a classic-BPF seccomp filter.

No libseccomp: the subset Docker profiles use is small (per-syscall actions,
argument comparisons) and compiles to a binary search over the syscall numbers
per ABI.  On
x86_64 the native ABI and, when the profile lists SCMP_ARCH_X86, the i386 ABI
(int 0x80, 32-bit programs) get their own section with their own numbers; any
other ABI (x32, a foreign audit arch) is refused with EPERM so it cannot be
used to get around the list.
"""
from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

AUDIT_ARCH = {"x86_64": 0xC000003E, "i386": 0x40000003}
ARCH_NAMES = {"x86_64": "SCMP_ARCH_X86_64", "i386": "SCMP_ARCH_X86"}
# ABIs filtered alongside the native one: machine -> [(sub-ABI, its table loader name)]
_SUB_ABIS = {"x86_64": ("i386",)}
X32_BIT = 0x40000000

# classic BPF
LD_W_ABS = 0x20
ALU_AND_K = 0x54
JA = 0x05
JEQ_K = 0x15
JGT_K = 0x25
JGE_K = 0x35
RET_K = 0x06

RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

OFF_NR = 0
OFF_ARCH = 4
OFF_ARGS = 16
ENOSYS = 38


class SeccompError(Exception):
    pass


def _ret(action: str, errno_ret: int | None, default_errno: int = 1) -> int:
    if action == "SCMP_ACT_ALLOW":
        return RET_ALLOW
    if action == "SCMP_ACT_ERRNO":
        return RET_ERRNO | ((default_errno if errno_ret is None else errno_ret) & 0xFFFF)
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return RET_KILL_THREAD
    if action == "SCMP_ACT_KILL_PROCESS":
        return RET_KILL_PROCESS
    if action == "SCMP_ACT_TRAP":
        return RET_TRAP
    if action == "SCMP_ACT_LOG":
        return RET_LOG
    if action == "SCMP_ACT_TRACE":
        return RET_TRACE | ((errno_ret or 0) & 0xFFFF)
    raise SeccompError(f"unsupported seccomp action {action}")


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    if not (0 <= jt <= 255 and 0 <= jf <= 255):
        raise SeccompError("seccomp filter jump too long")
    return (code, jt, jf, k & 0xFFFFFFFF)


# An instruction before assembly: jumps name labels ("T"/"F" = the rule matched / did not).
_Sym = tuple[int, int, "str | None", "str | None"]


def _cmp64(off: int, op: str, value: int, two: int, n: int, prefix: str = "") -> list[_Sym]:
    """Checks of one 64-bit argument (two 32-bit loads): jump to "F" unless it holds.
    ``n`` makes the local labels unique."""
    lo, hi = off, off + 4
    vlo, vhi = value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF
    ok = f"{prefix}_ok{n}"
    if op == "SCMP_CMP_EQ":
        return [(LD_W_ABS, hi, None, None), (JEQ_K, vhi, None, "F"),
                (LD_W_ABS, lo, None, None), (JEQ_K, vlo, None, "F")]
    if op == "SCMP_CMP_MASKED_EQ":
        tlo, thi = two & 0xFFFFFFFF, (two >> 32) & 0xFFFFFFFF
        return [(LD_W_ABS, hi, None, None), (ALU_AND_K, vhi, None, None), (JEQ_K, thi, None, "F"),
                (LD_W_ABS, lo, None, None), (ALU_AND_K, vlo, None, None), (JEQ_K, tlo, None, "F")]
    if op == "SCMP_CMP_NE":
        return [(LD_W_ABS, hi, None, None), (JEQ_K, vhi, None, ok),
                (LD_W_ABS, lo, None, None), (JEQ_K, vlo, "F", None), (_LABEL, 0, ok, None)]
    # ordered comparisons: decide on the high word, look at the low word only when equal
    if op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        last = JGT_K if op == "SCMP_CMP_GT" else JGE_K
        return [(LD_W_ABS, hi, None, None), (JGT_K, vhi, ok, None), (JEQ_K, vhi, None, "F"),
                (LD_W_ABS, lo, None, None), (last, vlo, None, "F"), (_LABEL, 0, ok, None)]
    if op in ("SCMP_CMP_LT", "SCMP_CMP_LE"):
        # a < v  <=>  not (a >= v);  a <= v  <=>  not (a > v)
        last = JGE_K if op == "SCMP_CMP_LT" else JGT_K
        return [(LD_W_ABS, hi, None, None), (JGE_K, vhi, None, ok), (JEQ_K, vhi, None, "F"),
                (LD_W_ABS, lo, None, None), (last, vlo, "F", None), (_LABEL, 0, ok, None)]
    raise SeccompError(f"unsupported seccomp comparison {op}")


def _assemble(syms: list[_Sym]) -> list[tuple[int, int, int, int]]:
    """Resolve labels (all jumps go forward) into relative offsets."""
    where: dict[str, int] = {}
    real: list[_Sym] = []
    for code, k, jt, jf in syms:
        if code == _LABEL:
            where[str(jt)] = len(real)
        else:
            real.append((code, k, jt, jf))
    out = []
    for i, (code, k, jt, jf) in enumerate(real):
        if code == JA:  # unconditional: the offset goes in k (32 bits)
            off = where[str(jt)] - i - 1
            if off < 0:
                raise SeccompError("seccomp filter: backward jump")
            out.append(_ins(code, off))
            continue
        t = where[jt] - i - 1 if jt is not None else 0
        f = where[jf] - i - 1 if jf is not None else 0
        if t < 0 or f < 0:
            raise SeccompError("seccomp filter: backward jump")
        out.append(_ins(code, k, t, f))
    return out


_LABEL = -1  # pseudo-instruction marking a label


def compile_filter(profile: dict[str, Any], table: dict[str, int], arch: str = "x86_64") -> bytes:
    """-> packed ``struct sock_filter[]``.

    Rules are checked in order; a rule applies when its syscall number matches
    and all its argument conditions hold (several rules for one call: any).
    Calls numbered above every call a table knows get ENOSYS, like runc, so
    that new libc wrappers fall back instead of failing with EPERM."""
    if arch not in AUDIT_ARCH:
        raise SeccompError(f"seccomp filters are not supported on {arch}")
    archs = profile.get("architectures") or [ARCH_NAMES[arch]]
    if ARCH_NAMES[arch] not in archs:
        raise SeccompError(f"the seccomp profile does not cover {ARCH_NAMES[arch]}")
    sections: list[tuple[str, dict[str, int]]] = [(arch, table)]
    for sub in _SUB_ABIS.get(arch, ()):
        if ARCH_NAMES[sub] in archs:
            sections.append((sub, table_for(sub)))
    # dispatch on the audit arch; the sections are long, hence the unconditional jumps
    syms: list[_Sym] = [(LD_W_ABS, OFF_ARCH, None, None)]
    for name, _ in sections:
        syms += [(JEQ_K, AUDIT_ARCH[name], None, f"not_{name}"), (JA, 0, f"abi_{name}", None),
                 (_LABEL, 0, f"not_{name}", None)]
    syms.append((RET_K, RET_ERRNO | 1, None, None))   # an ABI we do not filter: refused
    for name, tab in sections:
        syms.append((_LABEL, 0, f"abi_{name}", None))
        syms += _section(profile, tab, x32_guard=(name == "x86_64"), prefix=name)
    prog = _assemble(syms)
    if len(prog) > 4096:
        raise SeccompError("seccomp filter too long")
    return b"".join(struct.pack("HBBI", *ins) for ins in prog)


def _section(profile: dict[str, Any], table: dict[str, int], x32_guard: bool, prefix: str) -> list[_Sym]:
    """The checks of one ABI, starting with its syscall number not yet loaded.

    The number is found by a binary search over ranges of numbers that share an outcome
    (an action, or the argument checks of one call), so the filter stays short: the kernel
    runs it at every call whose result it could not cache, and runs it for every number
    when the filter is installed (its per-call cache), which a linear list made cost
    ~0.6 ms at every container start and exec."""
    default = _ret(profile.get("defaultAction", "SCMP_ACT_ALLOW"), profile.get("defaultErrnoRet"))
    syms: list[_Sym] = [(LD_W_ABS, OFF_NR, None, None)]
    if x32_guard:
        # x32 shares x86_64's audit arch and sets this bit in the number
        syms += [(JGE_K, X32_BIT, None, f"{prefix}_not_x32"), (RET_K, RET_ERRNO | 1, None, None),
                 (_LABEL, 0, f"{prefix}_not_x32", None)]
    if default != RET_ALLOW and table:
        syms += [(JGT_K, max(table.values()), None, f"{prefix}_known"), (RET_K, RET_ERRNO | ENOSYS, None, None),
                 (_LABEL, 0, f"{prefix}_known", None)]
    # Each call's rules in the profile's order: the first that holds decides, as in a linear scan.
    rules: dict[int, list[tuple[list[dict[str, Any]], int]]] = {}
    for rule in profile.get("syscalls") or []:
        action = _ret(rule.get("action", "SCMP_ACT_ERRNO"), rule.get("errnoRet"))
        args = list(rule.get("args") or [])
        for a in args:
            idx = int(a.get("index", 0))
            if not 0 <= idx <= 5:
                raise SeccompError(f"bad seccomp argument index {idx}")
        for name in rule.get("names") or []:
            nr = table.get(name)
            if nr is not None:  # not on this ABI: nothing to filter
                rules.setdefault(nr, []).append((args, action))
    # Ranges of numbers [start, next range's start) with one outcome: ("ret", action), or
    # ("checks", the rules of one call).
    ranges: list[tuple[int, str, Any]] = [(0, "ret", default)]

    def place(start: int, kind: str, what: Any) -> None:
        if ranges and ranges[-1][0] == start:
            ranges.pop()                    # an empty range (two neighbouring calls)
        if kind == "ret" and ranges and ranges[-1][1] == "ret" and ranges[-1][2] == what:
            return                          # the range before has this action: it grows
        ranges.append((start, kind, what))

    for nr in sorted(rules):
        first_args, first_action = rules[nr][0]
        if first_args:
            place(nr, "checks", rules[nr])
        else:
            place(nr, "ret", first_action)  # later rules of this call can never apply
        place(nr + 1, "ret", default)
    labels = iter(range(1 << 30))

    def outcome(kind: str, what: Any) -> list[_Sym]:
        if kind == "ret":
            return [(RET_K, what, None, None)]
        out: list[_Sym] = []
        for args, action in what:
            if not args:
                return [*out, (RET_K, action, None, None)]
            n = next(labels)
            fail = f"{prefix}_F{n}"
            block: list[_Sym] = []
            for a in args:
                block += _cmp64(OFF_ARGS + 8 * int(a.get("index", 0)), a.get("op") or "SCMP_CMP_EQ",
                                int(a.get("value", 0)), int(a.get("valueTwo", 0)), next(labels), prefix)
            block.append((RET_K, action, None, None))
            out += [(c, k, fail if jt == "F" else jt, fail if jf == "F" else jf) for c, k, jt, jf in block]
            out.append((_LABEL, 0, fail, None))
        return [*out, (RET_K, default, None, None)]

    def tree(part: list[tuple[int, str, Any]]) -> list[_Sym]:
        if len(part) == 1:
            return outcome(part[0][1], part[0][2])
        mid = len(part) // 2
        n = next(labels)
        low, high = f"{prefix}_lt{n}", f"{prefix}_ge{n}"
        # the number is in the upper half: on to the far jump (conditional ones reach 255 at most)
        return [(JGE_K, part[mid][0], None, low), (JA, 0, high, None), (_LABEL, 0, low, None),
                *tree(part[:mid]), (_LABEL, 0, high, None), *tree(part[mid:])]

    return syms + tree(ranges)


def table_for(arch: str) -> dict[str, int]:
    if arch == "x86_64":
        from engine.runtime.syscall_table_x86_64 import SYSCALLS
        return SYSCALLS
    if arch == "i386":
        from engine.runtime.syscall_table_i386 import SYSCALLS as I386
        return I386
    raise SeccompError(f"seccomp filters are not supported on {arch}")


CACHE_ENTRIES = 64  # distinct profiles kept (the default one varies only with --cap-add/--cap-drop)


def compile_cached(profile: dict[str, Any], arch: str, cache_dir: str = "") -> bytes:
    """``compile_filter`` for this machine's table, through a cache of compiled filters in
    ``cache_dir`` (a root-only directory under the exec root; "" = no cache).

    A container start then reads ~12 KiB instead of compiling the profile (~3 ms).  The
    key covers the profile as written in config.json, the architecture and this
    compiler's source, so a changed compiler never reuses an old filter."""
    if not cache_dir:
        return compile_filter(profile, table_for(arch), arch)
    import hashlib
    import json
    import os
    me = os.stat(__file__)
    key = hashlib.sha256(f"{arch}\0{me.st_mtime_ns}\0{me.st_size}\0".encode()
                         + json.dumps(profile, separators=(",", ":")).encode()).hexdigest()
    path = os.path.join(cache_dir, key + ".bpf")
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data and len(data) % 8 == 0:
            return data
    except FileNotFoundError:
        pass
    data = compile_filter(profile, table_for(arch), arch)
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        entries = sorted(os.scandir(cache_dir), key=lambda e: e.stat().st_mtime_ns)
        for old in entries[: max(0, len(entries) - CACHE_ENTRIES + 1)]:
            os.unlink(old.path)
        from engine.fileutil import write_atomic
        write_atomic(path, data, 0o600)
    except OSError:
        pass  # a cache that cannot be written only costs the compile next time
    return data
