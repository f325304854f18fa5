"""The default seccomp profile, and Docker's profile format -> OCI ``linux.seccomp``.

dockerd ships an allow-list: every system call not named is refused with EPERM.
Some entries only apply when the container holds a capability (``includes``),
when it does not (``excludes``), on some architectures or from a kernel version
on.  dockerd resolves those conditions per container when it writes the OCI
spec; ``to_oci`` does the same, for the default profile and for a custom one
sent with ``--security-opt seccomp=<file>`` (the CLI sends the file's JSON).

The lists below are the facts of Docker's current default profile, grouped by
the condition under which they apply.  Newer than the reference dockerd
20.10: io_uring_* are refused (Docker 25), AF_ALG sockets too, and newer system calls are listed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .. import gojson
from ..errors import go_json_kind

EPERM = 1
ENOSYS = 38

# Always allowed.
_BASE = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat getcpu getcwd
getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer
getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32
getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area
gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get
ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self
lchown lchown32 lgetxattr link linkat listen listmount listxattr listxattrat llistxattr _llseek
lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier memfd_create
memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr
mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink
mremap mseal msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc
pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease
pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom
recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename renameat renameat2
restart_syscall riscv_hwprobe rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
setitimer setpgid setpriority setregid setregid32 setresgid
setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt
set_thread_area set_tid_address setuid setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown
sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs
statfs64 statmount statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
truncate64 ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes vfork
vmsplice wait4 waitid waitpid write writev
"""

# Allowed only when the container holds the capability.
_BY_CAP: tuple[tuple[str, str], ...] = (
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    ("CAP_SYS_ADMIN", "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie lsm_get_self_attr "
                      "lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount open_tree perf_event_open "
                      "quotactl quotactl_fd "
                      "setdomainname sethostname setns syslog umount umount2 unshare"),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
)

# Allowed on some architectures only (Go's GOARCH names, as in Docker's profile).
_BY_ARCH: tuple[tuple[tuple[str, ...], str], ...] = (
    (("ppc64le",), "sync_file_range2 swapcontext"),
    (("arm", "arm64"), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (("riscv64",), "riscv_flush_icache"),
)

# Namespace-creating clone(2) flags (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET).
CLONE_NS_MASK = 0x7E020000
AF_ALG = 38
AF_VSOCK = 40
# personality(2) values allowed: PER_LINUX, UNAME26, PER_LINUX32, UNAME26|PER_LINUX32, query.
_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# os.uname().machine -> (Go arch name, seccomp arch name, sub-architectures)
_NATIVE = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
    "s390x": ("s390x", "SCMP_ARCH_S390X", ("SCMP_ARCH_S390",)),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64", ()),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE", ()),
}


def _names(words: str) -> list[str]:
    return words.split()


def default_document() -> dict[str, Any]:
    """The default profile in Docker's profile format (what ``docker info``'s
    ``seccomp=builtin`` stands for), with its includes/excludes unresolved."""
    rules: list[dict[str, Any]] = [{"names": _names(_BASE), "action": "SCMP_ACT_ALLOW"}]
    rules.append({"names": ["process_vm_readv", "process_vm_writev", "ptrace"], "action": "SCMP_ACT_ALLOW",
                  "includes": {"minKernel": "4.8"}})
    # socket(2): every address family but AF_ALG (38) and AF_VSOCK (40)
    for op, value in (("SCMP_CMP_LT", AF_ALG), ("SCMP_CMP_EQ", AF_ALG + 1), ("SCMP_CMP_GT", AF_VSOCK)):
        rules.append(
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": value, "op": op}]}
        )
    for value in _PERSONALITIES:
        rules.append({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]})
    for arches, words in _BY_ARCH:
        rules.append({"names": _names(words), "action": "SCMP_ACT_ALLOW", "includes": {"arches": list(arches)}})
    for cap, words in _BY_CAP:
        rules.append({"names": _names(words), "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}})
    # Without CAP_SYS_ADMIN: clone only without namespace flags (s390 swaps the first two arguments),
    # and clone3 (flags in memory, out of a filter's reach) fails with ENOSYS so libc falls back to clone.
    rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": CLONE_NS_MASK, "op": "SCMP_CMP_MASKED_EQ"}],
                  "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}})
    rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 1, "value": CLONE_NS_MASK, "op": "SCMP_CMP_MASKED_EQ"}],
                  "includes": {"arches": ["s390", "s390x"]}, "excludes": {"caps": ["CAP_SYS_ADMIN"]}})
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS,
                  "excludes": {"caps": ["CAP_SYS_ADMIN"]}})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "archMap": [{"architecture": a, "subArchitectures": list(subs)} for _, a, subs in _NATIVE.values()],
        "syscalls": rules,
    }


class ProfileError(ValueError):
    """A custom profile dockerd would refuse; the message is dockerd's."""


@dataclass(frozen=True)
class Target:
    """What the conditions of a profile are resolved against."""

    capabilities: tuple[str, ...]
    machine: str = field(default_factory=lambda: os.uname().machine)
    kernel: tuple[int, int] = field(default_factory=lambda: _kernel_version(os.uname().release))


def _kernel_version(release: str) -> tuple[int, int]:
    parts = release.split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    except ValueError:
        return 0, 0


def parse_profile(text: str) -> dict[str, Any]:
    """The JSON of ``--security-opt seccomp=...`` -> a profile document."""
    try:
        doc = gojson.loads(text)
        doc = gojson.decode_as(doc, _SECCOMP)
    except (gojson.JSONSyntaxError, gojson.GoTypeError) as e:
        raise ProfileError(f"Decoding seccomp profile failed: {e.message}") from None
    if not isinstance(doc, dict):  # null
        raise ProfileError("Decoding seccomp profile failed: json: cannot unmarshal "
                           f"{go_json_kind(doc)} into Go value of type seccomp.Seccomp")
    return doc


# The Go types dockerd decodes a profile into, for its "cannot unmarshal" errors
_ACTION = gojson.named(gojson.STRING, "specs.LinuxSeccompAction")
_ARCH = gojson.named(gojson.STRING, "specs.Arch")
_ARCHES = gojson.Slice(_ARCH, "[]specs.Arch")
_FILTER = gojson.Struct("seccomp.Filter", "Filter", {
    "caps": gojson.STRINGS, "arches": gojson.STRINGS, "minKernel": gojson.STRING,
})
_SECCOMP = gojson.Struct("seccomp.Seccomp", "Seccomp", {
    "defaultAction": _ACTION, "defaultErrnoRet": gojson.UINT,
    "architectures": _ARCHES,
    "archMap": gojson.Slice(gojson.Struct("seccomp.Architecture", "Architecture", {
        "architecture": _ARCH, "subArchitectures": _ARCHES,
    }), "[]seccomp.Architecture"),
    "syscalls": gojson.Slice(gojson.Struct("seccomp.Syscall", "Syscall", {
        "name": gojson.STRING, "names": gojson.STRINGS, "action": _ACTION, "errnoRet": gojson.UINT,
        "args": gojson.Slice(gojson.Struct("specs.LinuxSeccompArg", "LinuxSeccompArg", {
            "index": gojson.UINT, "value": gojson.UINT64, "valueTwo": gojson.UINT64,
            "op": gojson.named(gojson.STRING, "specs.LinuxSeccompOperator"),
        }), "[]*specs.LinuxSeccompArg"),
        "comment": gojson.STRING, "includes": _FILTER, "excludes": _FILTER,
    }), "[]*seccomp.Syscall"),
    "listenerPath": gojson.STRING, "listenerMetadata": gojson.STRING,
    "flags": gojson.Slice(gojson.named(gojson.STRING, "specs.LinuxSeccompFlag"), "[]specs.LinuxSeccompFlag"),
})


def _applies(rule: dict[str, Any], target: Target, goarch: str) -> bool:
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if inc.get("arches") and goarch not in inc["arches"]:
        return False
    if inc.get("caps") and not all(c in target.capabilities for c in inc["caps"]):
        return False
    if inc.get("minKernel"):
        want = _kernel_version(str(inc["minKernel"]))
        if target.kernel < want:
            return False
    if exc.get("arches") and goarch in exc["arches"]:
        return False
    if exc.get("caps") and any(c in target.capabilities for c in exc["caps"]):
        return False
    if exc.get("minKernel") and target.kernel >= _kernel_version(str(exc["minKernel"])):
        return False
    return True


def to_oci(doc: dict[str, Any], target: Target) -> dict[str, Any]:
    """Resolve a profile document for one container, like dockerd's setupSeccomp."""
    goarch, native, _subs = _NATIVE.get(target.machine, (target.machine, "", ()))
    if doc.get("architectures") and doc.get("archMap"):
        raise ProfileError("both 'architectures' and 'archMap' are specified in the seccomp profile, "
                           "use either 'architectures' or 'archMap'")
    arches: list[str] = list(doc.get("architectures") or [])
    for entry in doc.get("archMap") or []:
        if entry.get("architecture") == native:
            arches.append(native)
            arches.extend(entry.get("subArchitectures") or [])
    syscalls: list[dict[str, Any]] = []
    for rule in doc.get("syscalls") or []:
        if rule.get("name") and rule.get("names"):
            raise ProfileError("use either 'name' or 'names'")
        if not _applies(rule, target, goarch):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        out: dict[str, Any] = {"names": names, "action": rule.get("action") or ""}
        if rule.get("errnoRet") is not None:
            out["errnoRet"] = rule["errnoRet"]
        args = [{"index": int(a.get("index", 0)), "value": int(a.get("value", 0)),
                 "valueTwo": int(a.get("valueTwo", 0)), "op": a.get("op") or ""} for a in rule.get("args") or []]
        if args:
            out["args"] = args
        syscalls.append(out)
    oci: dict[str, Any] = {"defaultAction": doc.get("defaultAction") or ""}
    if doc.get("defaultErrnoRet") is not None:
        oci["defaultErrnoRet"] = doc["defaultErrnoRet"]
    oci["architectures"] = arches
    oci["syscalls"] = syscalls
    return oci


def default_profile(capabilities: list[str] | tuple[str, ...], machine: str | None = None,
                    kernel: tuple[int, int] | None = None) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` dockerd writes for a container with these capabilities."""
    target = Target(tuple(capabilities))
    if machine is not None:
        target = Target(target.capabilities, machine, target.kernel)
    if kernel is not None:
        target = Target(target.capabilities, target.machine, kernel)
    return to_oci(default_document(), target)
