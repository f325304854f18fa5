"""A container's security and namespace options (HostConfig) -> SpecInput fields.

Two entry points, both used by the container service:

- ``check_create``: what dockerd refuses when the container is created
  (malformed ``--security-opt``, a hostname with ``--uts=host``...);
- ``spec_options``: at start, the keyword arguments for ``SpecInput`` (seccomp
  profile, namespaces to join, devices, sysctls, extra groups, the init
  process...).  Errors here are start errors, as with dockerd.

Like the rest of ``engine.oci`` this module is pure: other containers
(``--ipc/--pid container:<id>``) are reached through a ``Peers`` callback and
the host (device nodes, docker-init) through ``HostLookups``, both supplied by
the bundle step (``engine.containers.hostaccess``), which also mounts the
host-side /dev/shm of a shareable IPC container.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import Conflict, EngineError, InvalidParameter, NotFound
from engine.oci import seccomp as seccomp_profiles
from engine.oci.caps import CAPABILITIES, DEFAULT_CAPABILITIES, tweak

# Where dockerd bind-mounts docker-init (tini) for --init.
INIT_PATH_IN_CONTAINER = "/sbin/docker-init"

_MODES_WITH_CONTAINER = ("ipc", "pid")


@dataclass(frozen=True)
class Peer:
    """A container another one shares a namespace with."""

    id: str
    pid: int            # its init's host pid, 0 when not running
    ipc_mode: str
    container_dir: str = ""  # where its shareable /dev/shm lives (see shareable_shm)


# container reference -> Peer (raises the engine's NotFound for an unknown one)
Peers = Callable[[str], Peer]


@dataclass(frozen=True)
class HostLookups:
    """What the spec options read from the host, through the caller."""

    host_devices: Callable[[], list[dict[str, Any]]]                     # --privileged: every node
    devices_from_path: Callable[[str, str, str], list[dict[str, Any]]]   # --device host:ctr:perms
    init_binary: Callable[[], str]                                       # --init: docker-init's path


@dataclass(frozen=True)
class SecurityOpts:
    no_new_privileges: bool = False
    seccomp: str = ""             # "", "unconfined", "builtin" or the profile's JSON
    apparmor: str = ""
    labels: tuple[str, ...] = ()
    unconfined_paths: bool = False  # systempaths=unconfined
    writable_cgroups: bool | None = None


def _parse_bool(v: str) -> bool | None:
    # Go's strconv.ParseBool
    if v in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if v in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def parse_security_opts(opts: tuple[str, ...] | list[str]) -> SecurityOpts:
    nnp = False
    seccomp = apparmor = ""
    labels: list[str] = []
    systempaths = False
    writable: bool | None = None
    for opt in opts:
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "disable":
            labels.append("disable")
            continue
        if "=" in opt:
            k, v = opt.split("=", 1)
        elif ":" in opt:
            k, v = opt.split(":", 1)  # the separator older clients used
        else:
            raise InvalidParameter(f'invalid --security-opt 1: "{opt}"')
        if k == "label":
            labels.append(v)
        elif k == "apparmor":
            apparmor = v
        elif k == "seccomp":
            seccomp = v
        elif k in ("no-new-privileges", "writable-cgroups"):
            b = _parse_bool(v)
            if b is None:
                raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
            if k == "no-new-privileges":
                nnp = b
            else:
                writable = b
        elif k == "systempaths" and v == "unconfined":
            systempaths = True
        else:
            raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
    return SecurityOpts(nnp, seccomp, apparmor, tuple(labels), systempaths, writable)


def _mode(value: str) -> tuple[str, str]:
    """"container:<ref>" -> ("container", ref); "host" -> ("host", "")."""
    kind, _, ref = value.partition(":")
    return kind, ref


def _valid_ipc(mode: str) -> bool:
    kind, ref = _mode(mode)
    return mode in ("", "private", "shareable", "host", "none") or (kind == "container" and bool(ref))


def _valid_pid(mode: str) -> bool:
    kind, ref = _mode(mode)
    return mode in ("", "host") or (kind == "container" and bool(ref))


_CGROUP_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


def check_create(hc: Any, hostname_given: bool, peers: Peers) -> None:
    """Create-time validation of the security and namespace options."""
    parse_security_opts(hc.security_opt)
    if not _valid_ipc(hc.ipc_mode):
        raise InvalidParameter(f"invalid IPC mode: {hc.ipc_mode}")
    if not _valid_pid(hc.pid_mode):
        raise InvalidParameter(f"invalid PID mode: {hc.pid_mode}")
    if hc.uts_mode not in ("", "host"):
        raise InvalidParameter(f"invalid UTS mode: {hc.uts_mode}")
    if hc.userns_mode not in ("", "host", "private"):
        raise InvalidParameter(f"invalid USER mode: {hc.userns_mode}")
    if hc.uts_mode == "host" and hostname_given:
        raise InvalidParameter("conflicting options: hostname and the UTS mode")
    for mode in (hc.ipc_mode, hc.pid_mode):
        kind, ref = _mode(mode)
        if kind == "container":
            try:
                peers(ref)
            except NotFound as e:
                raise InvalidParameter(e.message) from None  # dockerd: 400, not 404
    for rule in hc.device_cgroup_rules:
        if not _CGROUP_RULE.match(rule):
            raise InvalidParameter(f"invalid device cgroup format '{rule}'")


def _device_rules(rule: str) -> list[dict[str, Any]]:
    m = _CGROUP_RULE.match(rule)
    assert m is not None  # checked at create
    typ, major, minor, access = m.groups()
    out = []
    # "a" (all) as its char and block halves, so the access letters are kept whatever
    # the cgroup writer does with a bare "a"
    for t in ("c", "b") if typ == "a" else (typ,):
        r: dict[str, Any] = {"allow": True, "type": t}
        if major != "*":
            r["major"] = int(major)
        if minor != "*":
            r["minor"] = int(minor)
        r["access"] = access
        out.append(r)
    return out


def resolve_groups(names: tuple[str, ...], group_file: str) -> list[int]:
    """--group-add entries (names from the image's /etc/group, or numbers) -> gids.
    ``group_file``: the content of the container's /etc/group ("" when it has none)."""
    table: dict[str, int] = {}
    for line in group_file.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            table.setdefault(parts[0], int(parts[2]))
    gids: list[int] = []
    for name in names:
        if name in table:
            gids.append(table[name])
        elif name.isdigit():
            gids.append(int(name))
        else:
            raise EngineError(f"Unable to find group {name}: no matching entries in group file")
    return gids


def spec_options(hc: Any, args: list[str], peers: Peers, group_file: str, container_dir: str,
                 host: HostLookups) -> dict[str, Any]:
    """SpecInput keyword arguments for the container's security and namespace options.
    A shareable IPC container's /dev/shm source is ``shm_path(container_dir)``: the caller
    mounts it there once this has returned (nothing is mounted for a start that fails here)."""
    sec = parse_security_opts(hc.security_opt)
    out: dict[str, Any] = {"no_new_privileges": sec.no_new_privileges}
    if sec.writable_cgroups is not None:
        out["writable_cgroups"] = sec.writable_cgroups

    # capabilities decide which parts of a seccomp profile apply
    caps = _effective_caps(hc)
    if hc.privileged or sec.seccomp == "unconfined":
        out["seccomp"] = False
    elif sec.seccomp and sec.seccomp != "builtin":
        try:
            doc = seccomp_profiles.parse_profile(sec.seccomp)
            out["seccomp_profile"] = seccomp_profiles.to_oci(doc, seccomp_profiles.Target(tuple(caps)))
        except seccomp_profiles.ProfileError as e:
            raise EngineError(str(e)) from None
    if hc.masked_paths is not None:
        out["masked_paths"] = tuple(hc.masked_paths)
    if hc.readonly_paths is not None:
        out["readonly_paths"] = tuple(hc.readonly_paths)
    if sec.unconfined_paths:  # what the CLI turns into empty MaskedPaths/ReadonlyPaths
        out["masked_paths"] = ()
        out["readonly_paths"] = ()

    # namespaces: join another container's, or share the host's ("")
    overrides: list[tuple[str, str]] = []
    ipc_kind, ipc_ref = _mode(hc.ipc_mode)
    if ipc_kind == "host":
        overrides.append(("ipc", ""))
        out["shm_source"] = "/dev/shm"  # the host's, as it is
    elif ipc_kind == "container":
        peer = _running_peer(peers, ipc_ref, "IPC")
        if peer.ipc_mode != "shareable":
            raise InvalidParameter(f"failed to join IPC namespace: container {ipc_ref}: non-shareable IPC "
                                   "(hint: use IpcMode:shareable for the donor container)")
        overrides.append(("ipc", f"/proc/{peer.pid}/ns/ipc"))
        out["shm_source"] = shm_path(peer.container_dir)
    elif ipc_kind == "none":
        out["shm_source"] = ""

    pid_kind, pid_ref = _mode(hc.pid_mode)
    if pid_kind == "host":
        overrides.append(("pid", ""))
    elif pid_kind == "container":
        peer = _running_peer(peers, pid_ref, "PID")
        overrides.append(("pid", f"/proc/{peer.pid}/ns/pid"))
    if hc.uts_mode == "host":
        overrides.append(("uts", ""))
    if overrides:
        out["ns_overrides"] = tuple(overrides)

    # sysctls on top of dockerd's defaults (the init refuses one outside the
    # container's own namespaces, with runc's words)
    if hc.sysctls:
        out["extra_sysctls"] = dict(hc.sysctls)

    # devices
    if hc.privileged:
        out["devices"] = tuple(host.host_devices())
    elif hc.devices:
        devs = []
        for host_path, ctr, perms in hc.devices:
            try:
                # dockerd passes unknown letters on; the cgroup only knows r, w and m
                access = "".join(ch for ch in "rwm" if ch in perms) if perms else "rwm"
                devs.extend(host.devices_from_path(host_path, ctr or host_path, access))
            except InvalidParameter as e:
                raise EngineError(e.message) from None
        out["devices"] = tuple(devs)
    if hc.device_cgroup_rules and not hc.privileged:
        out["device_rules"] = tuple(r for text in hc.device_cgroup_rules for r in _device_rules(text))

    # extra groups
    if hc.group_add:
        out["extra_gids"] = tuple(resolve_groups(tuple(hc.group_add), group_file))

    # --init: tini as PID 1, bind-mounted read-only like dockerd's docker-init
    if hc.init:
        out["args"] = [INIT_PATH_IN_CONTAINER, "--", *args]
        out["init_binary"] = host.init_binary()

    # a shareable /dev/shm: a host-side tmpfs both containers bind (see hostaccess)
    if ipc_kind == "shareable":
        out["shm_source"] = shm_path(container_dir)
    return out


def shareable_shm_size(hc: Any) -> int | None:
    """The size of the host-side /dev/shm tmpfs to mount before the start, or None."""
    return (hc.shm_size or 64 * 1024 * 1024) if _mode(hc.ipc_mode)[0] == "shareable" else None


def shm_path(container_dir: str) -> str:
    return os.path.join(container_dir, "mounts", "shm")


def _running_peer(peers: Peers, ref: str, what: str) -> Peer:
    """dockerd's start-time checks of the container whose namespace is joined."""
    try:
        peer = peers(ref)
    except NotFound as e:
        raise InvalidParameter(f"failed to join {what} namespace: {e.message}") from None
    if not peer.pid:
        raise Conflict(f"failed to join {what} namespace: container {ref} is not running")
    return peer


def exec_options(hc: Any, group_file: str) -> dict[str, Any]:
    """What a `docker exec` process inherits from its container: capabilities
    (the container's set; ``docker exec --privileged`` widens it), no_new_privs
    and the --group-add groups."""
    out: dict[str, Any] = {
        "capabilities": _effective_caps(hc),
        "no_new_privileges": parse_security_opts(hc.security_opt).no_new_privileges,
    }
    out["extra_gids"] = resolve_groups(tuple(hc.group_add), group_file) if hc.group_add else []
    return out


def _effective_caps(hc: Any) -> list[str]:
    if hc.privileged:
        return list(CAPABILITIES)
    return tweak(DEFAULT_CAPABILITIES, hc.cap_add, hc.cap_drop)
