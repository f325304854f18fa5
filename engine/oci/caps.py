"""Linux capability names and numbers (include/uapi/linux/capability.h).

Kept in a tiny module of its own because both the spec builder (names) and the
container init (numbers) use it, and the init must stay cheap to import.
"""
from __future__ import annotations

CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

# dockerd's default set, in dockerd's order (as written into config.json).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def every_capability() -> list[str]:
    """All capabilities, by number: what a privileged container (or exec) gets."""
    return sorted(CAPABILITIES, key=CAPABILITIES.__getitem__)


def process_capabilities(caps: list[str] | tuple[str, ...], uid: int) -> dict[str, list[str]]:
    """The OCI ``process.capabilities`` of a container's process or an exec: ``caps``
    bound; effective and permitted only for root, as dockerd does (a non-root process
    would lose them at execve anyway: no file capabilities)."""
    out: dict[str, list[str]] = {"bounding": list(caps)}
    if uid == 0:
        out["effective"] = list(caps)
        out["permitted"] = list(caps)
    return out


def normalize(name: str) -> str:
    """'net_admin' / 'NET_ADMIN' / 'CAP_NET_ADMIN' -> 'CAP_NET_ADMIN'."""
    up = name.strip().upper()
    return up if up.startswith("CAP_") else "CAP_" + up


def tweak(base: list[str] | tuple[str, ...], cap_add: list[str] | tuple[str, ...],
          cap_drop: list[str] | tuple[str, ...]) -> list[str]:
    """dockerd's --cap-add/--cap-drop rules: "ALL" added = every capability but the
    dropped ones; "ALL" dropped = only the added ones; otherwise drop, then add
    (so `--cap-drop X --cap-add X` keeps X)."""
    everything = every_capability()
    adds = [normalize(c) for c in cap_add]
    drops = [normalize(c) for c in cap_drop]
    if "CAP_ALL" in adds:
        return [c for c in everything if c not in drops]
    if "CAP_ALL" in drops:
        out: list[str] = []
        for c in adds:
            if c not in out:
                out.append(c)
        return out
    out = [c for c in (normalize(b) for b in base) if c not in drops]
    for c in adds:
        if c not in out:
            out.append(c)
    return out


def to_mask(names: list[str] | tuple[str, ...] | None) -> int:
    """Capability names -> bit mask; unknown names are ignored (newer than this kernel table)."""
    mask = 0
    for n in names or ():
        num = CAPABILITIES.get(normalize(n))
        if num is not None:
            mask |= 1 << num
    return mask
