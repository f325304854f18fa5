"""Spec options: each a small function that edits a config.json being built (``SpecOption``).

Applied in order over ``defaults.default_spec`` (``apply``), as moby's ``oci_linux.go`` composes
its spec; the result has dockerd's key order whatever order the options added keys in.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.oci.caps import every_capability
from engine.oci.defaults import DEFAULT_NET_SYSCTLS, Mount, Spec, SpecOption


def _rlimit_name(name: str) -> str:
    up = name.upper()
    return up if up.startswith("RLIMIT_") else "RLIMIT_" + up


def with_process(args: list[str], env: list[str], cwd: str = "/", *, tty: bool = False,
                 oom_score_adj: int = 0) -> SpecOption:
    def opt(spec: Spec) -> None:
        p = spec["process"]
        p.update(args=list(args), env=list(env), cwd=cwd or "/", oomScoreAdj=oom_score_adj)
        if tty:
            p["terminal"] = True
    return opt


def with_user(uid: int, gid: int, additional_gids: Iterable[int] = ()) -> SpecOption:
    """The process's identity; a non-root process keeps only the bounding capability set
    (dockerd gives effective/permitted to root only: they would be lost at execve anyway)."""
    def opt(spec: Spec) -> None:
        user: dict[str, Any] = {"uid": uid, "gid": gid}
        gids = list(additional_gids)
        if gids:
            user["additionalGids"] = gids
        spec["process"]["user"] = user
        if uid != 0:
            caps = spec["process"]["capabilities"]
            caps.pop("effective", None)
            caps.pop("permitted", None)
    return opt


def with_capabilities(caps: list[str]) -> SpecOption:
    def opt(spec: Spec) -> None:
        capset = spec["process"]["capabilities"]
        for key in ("bounding", "effective", "permitted"):
            if key in capset:
                capset[key] = list(caps)
    return opt


def with_no_new_privileges() -> SpecOption:
    def opt(spec: Spec) -> None:
        spec["process"]["noNewPrivileges"] = True
    return opt


def with_rlimits(rlimits: Iterable[tuple[str, int, int]]) -> SpecOption:
    """("RLIMIT_NOFILE" or "nofile", soft, hard) entries."""
    def opt(spec: Spec) -> None:
        spec["process"]["rlimits"] = [{"type": _rlimit_name(n), "hard": int(hard), "soft": int(soft)}
                                      for n, soft, hard in rlimits]
    return opt


def with_readonly_rootfs() -> SpecOption:
    def opt(spec: Spec) -> None:
        spec["root"]["readonly"] = True
    return opt


def with_hostname(hostname: str, domainname: str = "") -> SpecOption:
    def opt(spec: Spec) -> None:
        spec["hostname"] = hostname
        if domainname:
            spec["domainname"] = domainname
    return opt


def with_namespaces(namespaces: Iterable[tuple[str, str | None]],
                    overrides: Iterable[tuple[str, str]] = ()) -> SpecOption:
    """(type, path or None) in order; an override joins a path, or shares the host's with "".
    Sharing the host's UTS namespace means the host's hostname; no network namespace of its
    own drops the sysctls dockerd sets for a private one."""
    def opt(spec: Spec) -> None:
        over = dict(overrides)
        ns = [(t, over.get(t, p)) for t, p in namespaces if over.get(t) != ""]
        spec["linux"]["namespaces"] = [{"type": t, "path": p} if p else {"type": t} for t, p in ns]
        types = {t for t, _ in ns}
        if over.get("uts") == "":
            spec["hostname"] = ""
        if "network" not in types:
            for key in DEFAULT_NET_SYSCTLS:
                spec["linux"].get("sysctl", {}).pop(key, None)
    return opt


def with_sysctls(sysctls: dict[str, str], *, replace: bool = False) -> SpecOption:
    """On top of what is there (``replace``: instead of it)."""
    def opt(spec: Spec) -> None:
        current = {} if replace else spec["linux"].get("sysctl", {})
        spec["linux"]["sysctl"] = {**current, **sysctls}
    return opt


def with_mounts(mounts: Iterable[Mount]) -> SpecOption:
    """Appended in order; one with a standard mount's destination replaces that one."""
    def opt(spec: Spec) -> None:
        extra: list[dict[str, Any]] = [{"destination": d, "type": t, "source": s, "options": list(o)}
                                       for d, t, s, o in mounts]
        dests = {m["destination"].rstrip("/") or "/" for m in extra}
        spec["mounts"] = [m for m in spec["mounts"] if m["destination"] not in dests] + extra
    return opt


def with_init(init_binary: str) -> SpecOption:
    """--init: docker-init from the host, read-only at /sbin/docker-init (after the other mounts)."""
    def opt(spec: Spec) -> None:
        spec["mounts"].append({"destination": "/sbin/docker-init", "type": "bind", "source": init_binary,
                               "options": ["bind", "ro"]})
    return opt


def with_cgroups_path(path: str) -> SpecOption:
    def opt(spec: Spec) -> None:
        spec["linux"]["cgroupsPath"] = path
    return opt


def with_resources(resources: dict[str, Any]) -> SpecOption:
    """OCI linux.resources, merged key by key into what is there (device rules are kept)."""
    def opt(spec: Spec) -> None:
        current = spec["linux"]["resources"]
        for key, value in resources.items():
            if isinstance(value, dict) and isinstance(current.get(key), dict):
                current[key] = {**current[key], **value}
            else:
                current[key] = value
    return opt


def with_devices(devices: Iterable[dict[str, Any]], *, allow: bool = True) -> SpecOption:
    """Device nodes (OCI linux.devices plus the cgroup permission under "access"); ``allow``:
    add a cgroup rule for each (a privileged container allows every device already)."""
    def opt(spec: Spec) -> None:
        devs = list(devices)
        if allow:
            spec["linux"]["resources"]["devices"].extend(
                {"allow": True, "type": d.get("type", "c"), "major": d.get("major"), "minor": d.get("minor"),
                 "access": d.get("access", "rwm")} for d in devs)
        if devs:
            spec["linux"]["devices"] = [{k: v for k, v in d.items() if k != "access"} for d in devs]
    return opt


def with_device_rules(rules: Iterable[dict[str, Any]]) -> SpecOption:
    def opt(spec: Spec) -> None:
        spec["linux"]["resources"]["devices"].extend(dict(r) for r in rules)
    return opt


def with_seccomp(profile: dict[str, Any] | None) -> SpecOption:
    """A profile, or None for none at all (unconfined, privileged)."""
    def opt(spec: Spec) -> None:
        if profile is None:
            spec["linux"].pop("seccomp", None)
        else:
            spec["linux"]["seccomp"] = profile
    return opt


def with_paths(masked: Iterable[str] | None, readonly: Iterable[str] | None) -> SpecOption:
    """Masked and read-only paths; None or empty leaves the list out."""
    def opt(spec: Spec) -> None:
        for key, paths in (("maskedPaths", masked), ("readonlyPaths", readonly)):
            if paths is None:
                spec["linux"].pop(key, None)
            else:
                spec["linux"][key] = list(paths)
    return opt


def with_privileged(devices: Iterable[dict[str, Any]] = ()) -> SpecOption:
    """--privileged: every capability, every device allowed, no seccomp, no masked paths,
    read-write /sys and cgroups."""
    caps = every_capability()

    def opt(spec: Spec) -> None:
        with_capabilities(caps)(spec)
        spec["linux"]["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
        spec["linux"].pop("seccomp", None)
        spec["linux"].pop("maskedPaths", None)
        spec["linux"].pop("readonlyPaths", None)
        with_devices(devices, allow=False)(spec)
    return opt


def apply(spec: Spec, options: Iterable[SpecOption]) -> Spec:
    for option in options:
        option(spec)
    return _canonical(spec)


# dockerd's key order in config.json (the options may add keys in any order)
_KEY_ORDER = {
    "": ("ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks", "linux"),
    "process": ("terminal", "user", "args", "env", "cwd", "capabilities", "oomScoreAdj", "noNewPrivileges",
                "rlimits"),
    "linux": ("sysctl", "resources", "cgroupsPath", "namespaces", "devices", "seccomp", "maskedPaths",
              "readonlyPaths"),
}


def _ordered(d: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    rank = {k: i for i, k in enumerate(order)}
    return dict(sorted(d.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def _canonical(spec: Spec) -> Spec:
    out = _ordered(spec, _KEY_ORDER[""])
    out["process"] = _ordered(out["process"], _KEY_ORDER["process"])
    linux = _ordered(out["linux"], _KEY_ORDER["linux"])
    if not linux.get("sysctl"):
        linux.pop("sysctl", None)
    out["linux"] = linux
    return out
