"""Create and update fields pydockerd cannot honour are refused, naming the field.

A field a client sets is either acted on or refused with a 400: never accepted and
silently ignored.  The values every client sends by default (zero values, ``null``,
empty lists and maps: the docker CLI sends every HostConfig field on a plain
``docker run``) are not refusals.

``FIELDS`` describes every field of the create body's ``Config`` and ``HostConfig``
(and of ``NetworkingConfig.EndpointsConfig``'s ``EndpointSettings``): what pydockerd
does with it, or which values it refuses and why.  The README's field table is
rendered from it (``readme_table``) and a unit test keeps the two and the API spec's
schemas in step.  ``check_create``, ``check_update`` and ``check_connect`` run after the body's JSON
kinds were checked (``gojson.check``), so the values have the Go types' shapes.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest


@dataclass(frozen=True)
class Field:
    """One create-body field: what is done with it, and which values are refused."""

    acted: str            # what pydockerd does with it ("" = nothing: every set value is refused)
    refused: str = ""     # which values are refused and why ("" = none)


ACTED = "acted on"

CONFIG: dict[str, Field] = {
    "Hostname": Field("the container's hostname (/etc/hostname, /etc/hosts, uname)"),
    "Domainname": Field("the UTS domain name and the /etc/hosts entry"),
    "User": Field("user[:group] of the process (names looked up in the image's /etc/passwd, /etc/group)"),
    "AttachStdin": Field("attach streams"),
    "AttachStdout": Field("attach streams"),
    "AttachStderr": Field("attach streams"),
    "ExposedPorts": Field("recorded; published by PublishAllPorts (-P)"),
    "Tty": Field("a pseudo-terminal for the process"),
    "OpenStdin": Field("stdin kept open for attaches"),
    "StdinOnce": Field("stdin closed after the first attach ends"),
    "Env": Field("the process environment (over the image's)"),
    "Cmd": Field("the command (over the image's)"),
    "Healthcheck": Field("healthcheck probes and State.Health"),
    "ArgsEscaped": Field("recorded (Windows-only meaning, as in dockerd)"),
    "Image": Field("the image the rootfs is made of"),
    "Volumes": Field("an anonymous volume per path"),
    "WorkingDir": Field("the process's working directory (created if missing)"),
    "Entrypoint": Field("the entrypoint (over the image's)"),
    "NetworkDisabled": Field("", "true: refused, a container always gets the network its NetworkMode names"),
    "MacAddress": Field("the first endpoint's MAC address (deprecated field, API < 1.44)"),
    "OnBuild": Field("recorded; kept in an image committed from the container"),
    "Labels": Field("labels (over the image's), filters"),
    "StopSignal": Field("the signal docker stop sends"),
    "StopTimeout": Field("the grace period docker stop gives"),
    "Shell": Field("recorded; kept in an image committed from the container"),
}

HOST_CONFIG: dict[str, Field] = {
    # Resources (also the body of POST /containers/{id}/update)
    "CpuShares": Field("cgroup cpu.shares"),
    "Memory": Field("cgroup memory limit"),
    "CgroupParent": Field("", "any value: refused, containers' cgroups are always under the daemon's own parent"),
    "BlkioWeight": Field("cgroup blkio weight (discarded with dockerd's warning where the kernel lacks it)"),
    "BlkioWeightDevice": Field("cgroup blkio per-device weight (dockerd's warning where the kernel lacks it)"),
    "BlkioDeviceReadBps": Field("cgroup blkio throttling"),
    "BlkioDeviceWriteBps": Field("cgroup blkio throttling"),
    "BlkioDeviceReadIOps": Field("cgroup blkio throttling"),
    "BlkioDeviceWriteIOps": Field("cgroup blkio throttling"),
    "CpuPeriod": Field("cgroup CFS period"),
    "CpuQuota": Field("cgroup CFS quota"),
    "CpuRealtimePeriod": Field("", "non-zero: refused, no real-time cgroup scheduling"),
    "CpuRealtimeRuntime": Field("", "non-zero: refused, no real-time cgroup scheduling"),
    "CpusetCpus": Field("cgroup cpuset"),
    "CpusetMems": Field("cgroup cpuset"),
    "Devices": Field("device nodes in the container and the device cgroup"),
    "DeviceCgroupRules": Field("device cgroup rules"),
    "DeviceRequests": Field("", "non-empty: refused, no device drivers (GPUs, CDI)"),
    "KernelMemory": Field("deprecated: dockerd's warning, never applied (as dockerd on this kernel)"),
    "KernelMemoryTCP": Field("", "non-zero: refused, no kernel TCP memory limit"),
    "MemoryReservation": Field("cgroup memory soft limit"),
    "MemorySwap": Field("cgroup memory+swap limit (dockerd's warning where swap accounting is off)"),
    "MemorySwappiness": Field("cgroup memory swappiness"),
    "NanoCpus": Field("cgroup CFS quota over the default period"),
    "OomKillDisable": Field("cgroup memory OOM control"),
    "Init": Field("docker-init (tini) as PID 1"),
    "PidsLimit": Field("cgroup pids limit"),
    "Ulimits": Field("process rlimits"),
    "CpuCount": Field("", "non-zero: refused, a Windows-only field"),
    "CpuPercent": Field("", "non-zero: refused, a Windows-only field"),
    "IOMaximumIOps": Field("", "non-zero: dockerd's 'Invalid QoS settings' error (Windows-only)"),
    "IOMaximumBandwidth": Field("", "non-zero: dockerd's 'Invalid QoS settings' error (Windows-only)"),
    # the rest of HostConfig
    "Binds": Field("bind mounts and named volumes (-v)"),
    "ContainerIDFile": Field("recorded; the CLI writes the file itself (dockerd ignores it too)"),
    "LogConfig": Field("json-file, local and none drivers with their options; journald and syslog fail the "
                       "start as dockerd's do where the host lacks them; other names: dockerd's errors"),
    "NetworkMode": Field("bridge (default), host, none, container:<id>, a user-defined network"),
    "PortBindings": Field("published ports (iptables DNAT and a userland proxy)"),
    "RestartPolicy": Field("restart policies with dockerd's back-off"),
    "AutoRemove": Field("removal when the container exits (--rm)"),
    "VolumeDriver": Field("the driver of the container's volumes (local only)"),
    "VolumesFrom": Field("another container's mounts"),
    "Mounts": Field("bind (with bind-recursive: enabled, disabled, writable, readonly), volume and tmpfs mounts "
                    "(--mount)"),
    "ConsoleSize": Field("the initial terminal size"),
    "Annotations": Field("", "non-empty: refused, pydockerd runs no OCI runtime to pass them to"),
    "CapAdd": Field("capabilities"),
    "CapDrop": Field("capabilities"),
    "CgroupnsMode": Field("private, host; empty: dockerd's default (host on cgroup v1, private on v2)",
                          "another value: dockerd's 'invalid cgroup namespace mode' error"),
    "Dns": Field("resolv.conf nameservers"),
    "DnsOptions": Field("resolv.conf options"),
    "DnsSearch": Field("resolv.conf search domains"),
    "ExtraHosts": Field("/etc/hosts entries"),
    "GroupAdd": Field("supplementary groups"),
    "IpcMode": Field("private, shareable, host, none, container:<id>"),
    "Cgroup": Field("", "any value: refused, a container cannot join another one's cgroup"),
    "Links": Field("legacy links (hosts entries and variables; an alias on user networks)"),
    "OomScoreAdj": Field("the process's oom_score_adj"),
    "PidMode": Field("private, host, container:<id>"),
    "Privileged": Field("all capabilities, devices, no seccomp, writable /sys"),
    "PublishAllPorts": Field("every exposed port published on an ephemeral port (-P)"),
    "ReadonlyRootfs": Field("a read-only rootfs"),
    "SecurityOpt": Field("seccomp, no-new-privileges, systempaths, writable-cgroups; apparmor and label are "
                          "checked and, as dockerd does on a host without AppArmor or SELinux, not applied"),
    "StorageOpt": Field("", "non-empty: refused, no per-container storage quotas"),
    "Tmpfs": Field("tmpfs mounts (--tmpfs)"),
    "UTSMode": Field("private, host"),
    "UsernsMode": Field("host, private (no user-namespace remapping, as dockerd without userns-remap)"),
    "ShmSize": Field("the size of /dev/shm"),
    "Sysctls": Field("namespaced sysctls"),
    "Runtime": Field("runc (the native runtime)", "another name: dockerd's unknown-runtime error"),
    "Isolation": Field("default", "another value: dockerd's 'Invalid isolation' error"),
    "MaskedPaths": Field("masked /proc and /sys paths"),
    "ReadonlyPaths": Field("read-only /proc paths"),
}

ENDPOINT_SETTINGS: dict[str, Field] = {
    "IPAMConfig": Field("IPv4Address and IPv6Address: static addresses on user networks",
                        "LinkLocalIPs non-empty: refused"),
    "Links": Field("the same links as HostConfig.Links (the CLI copies --link here)",
                   "a link not also in HostConfig.Links: refused"),
    "MacAddress": Field("the endpoint's MAC address"),
    "Aliases": Field("network-scoped aliases (embedded DNS)"),
    "DriverOpts": Field("", "non-empty: refused, no endpoint driver options"),
    "GwPriority": Field("", "non-zero: refused, the first network's gateway is the default route"),
    "NetworkID": Field("output only: ignored on input, as dockerd"),
    "EndpointID": Field("output only: ignored on input, as dockerd"),
    "Gateway": Field("output only: ignored on input, as dockerd"),
    "IPAddress": Field("output only: ignored on input, as dockerd"),
    "IPPrefixLen": Field("output only: ignored on input, as dockerd"),
    "IPv6Gateway": Field("output only: ignored on input, as dockerd"),
    "GlobalIPv6Address": Field("output only: ignored on input, as dockerd"),
    "GlobalIPv6PrefixLen": Field("output only: ignored on input, as dockerd"),
    "DNSNames": Field("output only: ignored on input, as dockerd"),
}

# POST /containers/{id}/update: the fields applied to a container (see resources_codec.FIELDS)
UPDATE_APPLIED = frozenset({
    "Memory", "MemorySwap", "MemoryReservation", "KernelMemory", "CpuShares", "CpuPeriod", "CpuQuota",
    "NanoCpus", "CpusetCpus", "CpusetMems", "BlkioWeight", "PidsLimit", "RestartPolicy",
})


def _refuse(where: str, reason: str) -> BadRequest:
    return BadRequest(f"{where} is not supported by pydockerd: {reason}")


def _set(value: Any) -> bool:
    """Whether a client set the field to something other than its zero value."""
    return value not in (None, "", 0, False, [], {})


# HostConfig field -> (is this value refused?, the reason)
_HOST_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "CgroupParent": (_set, "containers' cgroups are always under the daemon's own parent"),
    "CpuRealtimePeriod": (_set, "no real-time cgroup scheduling"),
    "CpuRealtimeRuntime": (_set, "no real-time cgroup scheduling"),
    "DeviceRequests": (_set, "no device drivers (GPUs, CDI)"),
    "KernelMemoryTCP": (_set, "no kernel TCP memory limit"),
    "CpuCount": (_set, "a Windows-only field"),
    "CpuPercent": (_set, "a Windows-only field"),
    "Annotations": (_set, "pydockerd runs no OCI runtime to pass them to"),
    "Cgroup": (_set, "a container cannot join another container's cgroup"),
    "StorageOpt": (_set, "no per-container storage quotas"),
}


def check_create(body: Mapping[str, Any]) -> None:
    """Refuse what pydockerd cannot honour in a create body (400, naming the field)."""
    if body.get("NetworkDisabled"):
        raise _refuse("Config.NetworkDisabled",
                      "a container always gets the network its HostConfig.NetworkMode names (use --network none)")
    hc = body.get("HostConfig") or {}
    if not isinstance(hc, Mapping):
        return
    # dockerd's own words where dockerd refuses the value on Linux
    if _set(hc.get("IOMaximumBandwidth")) or _set(hc.get("IOMaximumIOps")):
        raise BadRequest("Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps")
    isolation = hc.get("Isolation") or ""
    if isolation.lower() not in ("", "default"):
        raise BadRequest(f'Invalid isolation: "{isolation}" - linux only supports \'default\'')
    cgroupns = hc.get("CgroupnsMode") or ""
    if cgroupns not in ("", "private", "host"):
        raise BadRequest(f"invalid cgroup namespace mode: {cgroupns}")
    for key, (refused, reason) in _HOST_RULES.items():
        if refused(hc.get(key)):
            raise _refuse(f"HostConfig.{key}", reason)
    links = set(hc.get("Links") or ())
    nc = body.get("NetworkingConfig") or {}
    endpoints = nc.get("EndpointsConfig") if isinstance(nc, Mapping) else None
    for name, ep in (endpoints or {}).items():
        _check_endpoint(f"NetworkingConfig.EndpointsConfig[{name}]", ep or {}, links)


def _check_endpoint(where: str, ep: Mapping[str, Any], links: set[str]) -> None:
    if _set((ep.get("IPAMConfig") or {}).get("LinkLocalIPs")):
        raise _refuse(f"{where}.IPAMConfig.LinkLocalIPs", "no link-local addresses")
    if _set(ep.get("DriverOpts")):
        raise _refuse(f"{where}.DriverOpts", "no endpoint driver options")
    if _set(ep.get("GwPriority")):
        raise _refuse(f"{where}.GwPriority", "the first network's gateway is always the default route")
    extra = [link for link in ep.get("Links") or () if link not in links]
    if extra:
        raise _refuse(f"{where}.Links", "links are acted on only as HostConfig.Links (docker run --link)")


def check_connect(body: Mapping[str, Any]) -> None:
    """POST /networks/{id}/connect: the endpoint settings pydockerd cannot honour are refused."""
    ep = body.get("EndpointConfig") or {}
    if isinstance(ep, Mapping):
        _check_endpoint("EndpointConfig", ep, set())


def check_update(body: Mapping[str, Any]) -> None:
    """Refuse update fields that would not be applied to the container (400, naming the field)."""
    for key, value in body.items():
        if key not in UPDATE_APPLIED and _set(value):
            raise _refuse(f"UpdateConfig.{key}", "docker update cannot change it on a container")


def readme_table() -> str:
    """The README's field table (Markdown), rendered from the tables above."""
    rows = ["| Field | Acted on | Refused |", "|---|---|---|"]
    for scope, fields in (("Config", CONFIG), ("HostConfig", HOST_CONFIG),
                          ("EndpointSettings", ENDPOINT_SETTINGS)):
        for name, f in fields.items():
            rows.append(f"| {scope}.{name} | {f.acted or '-'} | {f.refused or '-'} |")
    return "\n".join(rows) + "\n"
