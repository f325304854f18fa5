"""Docker's create body -> the engine's typed ``ContainerConfig`` and ``HostConfig``.

Decoding checks the JSON types of the fields a create body carries and answers type errors in
the words of Go's encoding/json, as dockerd does; refuses what pydockerd cannot honour
(``unsupported``); and applies dockerd's defaults.  Everything inspect shows later is in the
typed result (``convert_hostconfig`` encodes it back): nothing of the request is kept as JSON.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

from engine import gojson, system
from engine.containers.stored import NIL_LISTS
from engine.errors import EngineError
from engine.network import contributor as net_contrib
from engine.network import ports as net_ports
from engine.types import (
    ContainerConfig,
    EndpointConfig,
    HealthConfig,
    HostConfig,
    LogConfig,
    MountSpec,
    RestartPolicy,
)

from . import gotypes, resources_codec, unsupported, versions
from .errors import BadRequest

DEFAULT_SHM_SIZE = 64 << 20


def _strslice(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@functools.cache
def default_cgroupns_mode() -> str:
    return "private" if system.cgroup_version() == "2" else "host"


def decode_create(body: Any, version: str) -> tuple[ContainerConfig, HostConfig]:
    """A create body -> the typed config and host config (Go's decoding, dockerd's defaults)."""
    if body is None:
        raise BadRequest("config cannot be empty in order to create a container")
    # every field's JSON kind and integer range, in Go's words (dockerd's decoder runs first)
    body = gojson.decode_as(body, gotypes.create_request(version))   # keys matched regardless of case, as Go
    unsupported.check_create(body)   # a field pydockerd cannot honour is refused, not ignored
    hc_in = body.get("HostConfig") or {}

    health = None
    hc_raw = body.get("Healthcheck")
    if isinstance(hc_raw, dict) and any(hc_raw.get(k) for k in (
            "Test", "Interval", "Timeout", "Retries", "StartPeriod", "StartInterval")):
        health = HealthConfig(
            test=tuple(hc_raw.get("Test") or ()),
            interval_ns=int(hc_raw.get("Interval") or 0),
            timeout_ns=int(hc_raw.get("Timeout") or 0),
            retries=int(hc_raw.get("Retries") or 0),
            start_period_ns=int(hc_raw.get("StartPeriod") or 0),
            # StartInterval came with API 1.44; older clients' values are ignored, like dockerd.
            start_interval_ns=int(hc_raw.get("StartInterval") or 0) if versions.at_least(version, "1.44") else 0,
        )
    stop_timeout = body.get("StopTimeout")
    config = ContainerConfig(
        image=body.get("Image") or "",
        hostname=body.get("Hostname") or "",
        domainname=body.get("Domainname") or "",
        user=body.get("User") or "",
        attach_stdin=bool(body.get("AttachStdin")),
        attach_stdout=bool(body.get("AttachStdout")),
        attach_stderr=bool(body.get("AttachStderr")),
        tty=bool(body.get("Tty")),
        open_stdin=bool(body.get("OpenStdin")),
        stdin_once=bool(body.get("StdinOnce")),
        env=tuple(body.get("Env") or ()),
        cmd=_strslice(body.get("Cmd")),
        entrypoint=_strslice(body.get("Entrypoint")),
        working_dir=body.get("WorkingDir") or "",
        labels=dict(body.get("Labels") or {}),
        stop_signal=body.get("StopSignal") or None,
        stop_timeout=int(stop_timeout) if stop_timeout is not None else None,
        exposed_ports=tuple((body.get("ExposedPorts") or {}).keys()),
        volumes=tuple((body.get("Volumes") or {}).keys()),
        healthcheck=health,
        on_build=tuple(body.get("OnBuild") or ()),
        shell=_strslice(body.get("Shell")),
        network_disabled=bool(body.get("NetworkDisabled")),
        mac_address=body.get("MacAddress") or "",
        args_escaped=bool(body.get("ArgsEscaped")),
    )
    if config.working_dir and not config.working_dir.startswith("/"):
        raise BadRequest(f"the working directory '{config.working_dir}' is invalid, it needs to be an absolute path")

    # Empty means "the daemon's default": a private IPC namespace; for the cgroup namespace
    # dockerd's default-cgroupns-mode (host on cgroup v1, private on v2); the bridge network.
    network_mode = hc_in.get("NetworkMode") or "bridge"
    if network_mode == "default":
        network_mode = "bridge"
    rp = hc_in.get("RestartPolicy") or {}
    lc = hc_in.get("LogConfig") or {}
    shm = hc_in.get("ShmSize") or 0
    if shm < 0:
        raise BadRequest("SHM size can not be less than 0")
    console = hc_in.get("ConsoleSize") or [0, 0]
    host = HostConfig(
        auto_remove=bool(hc_in.get("AutoRemove")),
        restart_policy=RestartPolicy(name=rp.get("Name") or "no",
                                     maximum_retry_count=int(rp.get("MaximumRetryCount") or 0)),
        network_mode=network_mode,
        log_config=LogConfig(type=lc.get("Type") or "json-file", config=dict(lc.get("Config") or {})),
        privileged=bool(hc_in.get("Privileged")),
        readonly_rootfs=bool(hc_in.get("ReadonlyRootfs")),
        cap_add=tuple(hc_in.get("CapAdd") or ()),
        cap_drop=tuple(hc_in.get("CapDrop") or ()),
        security_opt=tuple(hc_in.get("SecurityOpt") or ()),
        init=hc_in.get("Init"),
        shm_size=int(shm) or DEFAULT_SHM_SIZE,
        console_size=(int(console[0]), int(console[1])) if len(console) == 2 else (0, 0),
        runtime=hc_in.get("Runtime") or "runc",
        extra_hosts=tuple(hc_in.get("ExtraHosts") or ()),
        dns=tuple(hc_in.get("Dns") or ()),
        dns_search=tuple(hc_in.get("DnsSearch") or ()),
        dns_options=tuple(hc_in.get("DnsOptions") or ()),
        devices=tuple(
            (str(d.get("PathOnHost") or ""), str(d.get("PathInContainer") or ""), str(d.get("CgroupPermissions") or ""))
            for d in hc_in.get("Devices") or ()
            if isinstance(d, dict)
        ),
        device_cgroup_rules=tuple(hc_in.get("DeviceCgroupRules") or ()),
        group_add=tuple(hc_in.get("GroupAdd") or ()),
        ipc_mode=hc_in.get("IpcMode") or "",
        pid_mode=hc_in.get("PidMode") or "",
        uts_mode=hc_in.get("UTSMode") or "",
        userns_mode=hc_in.get("UsernsMode") or "",
        cgroupns_mode=hc_in.get("CgroupnsMode") or default_cgroupns_mode(),
        sysctls=dict(hc_in.get("Sysctls") or {}),
        # the CLI sends [] for --security-opt systempaths=unconfined
        masked_paths=tuple(hc_in["MaskedPaths"]) if isinstance(hc_in.get("MaskedPaths"), list) else None,
        readonly_paths=tuple(hc_in["ReadonlyPaths"]) if isinstance(hc_in.get("ReadonlyPaths"), list) else None,
        resources=resources_codec.decode(hc_in),
        # storage
        binds=tuple(hc_in.get("Binds") or ()),
        mounts=_decode_mounts(hc_in.get("Mounts")),
        tmpfs=dict(hc_in.get("Tmpfs") or {}),
        volumes_from=tuple(hc_in.get("VolumesFrom") or ()),
        volume_driver=hc_in.get("VolumeDriver") or "",
        read_only_binds_non_recursive=_old_read_only_binds(hc_in, version),
        # as given: inspect shows them
        container_id_file=hc_in.get("ContainerIDFile") or "",
        isolation=hc_in.get("Isolation") or "",
        given_empty=frozenset(attr for attr, key in NIL_LISTS.items() if hc_in.get(key) == []),
    )
    return config, _decode_networking(body, hc_in, host)


def _old_read_only_binds(hc_in: dict[str, Any], version: str) -> bool:
    """Before API 1.44 read-only binds were not recursive: older clients keep that (and may not ask
    for ReadOnlyForceRecursive, nor for a volume subpath before 1.45), as dockerd."""
    for m in hc_in.get("Mounts") or ():
        if not isinstance(m, dict):
            continue
        if not versions.at_least(version, "1.44") and m.get("Type") == "bind" and \
                (m.get("BindOptions") or {}).get("ReadOnlyForceRecursive"):
            raise BadRequest("BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer")
        if not versions.at_least(version, "1.45") and (m.get("VolumeOptions") or {}).get("Subpath"):
            raise BadRequest("VolumeOptions.Subpath needs API v1.45 or newer")
    return not versions.at_least(version, "1.44")


def _opt_map(value: Any) -> dict[str, str] | None:
    return None if value is None else dict(value)


def _decode_mounts(raw: Any) -> tuple[MountSpec, ...]:
    """HostConfig.Mounts ([]mount.Mount); the kinds were checked with the whole body (gotypes.MOUNT)."""
    if raw is None:
        return ()
    out = []
    for m in raw:
        if m is None:
            out.append(MountSpec())
            continue
        bind = m.get("BindOptions")
        vol = m.get("VolumeOptions")
        tmp = m.get("TmpfsOptions")
        driver = (vol or {}).get("DriverConfig") or {}
        tmpfs_opts = (tmp or {}).get("Options") or []
        out.append(MountSpec(
            type=m.get("Type") or "", source=m.get("Source") or "", target=m.get("Target") or "",
            read_only=bool(m.get("ReadOnly")), consistency=m.get("Consistency") or "",
            has_bind_options=bind is not None,
            bind_propagation=(bind or {}).get("Propagation") or "",
            bind_non_recursive=bool((bind or {}).get("NonRecursive")),
            bind_create_mountpoint=bool((bind or {}).get("CreateMountpoint")),
            bind_readonly_non_recursive=bool((bind or {}).get("ReadOnlyNonRecursive")),
            bind_readonly_force_recursive=bool((bind or {}).get("ReadOnlyForceRecursive")),
            has_volume_options=vol is not None,
            volume_nocopy=bool((vol or {}).get("NoCopy")),
            volume_labels=_opt_map((vol or {}).get("Labels")),
            has_volume_driver_config=(vol or {}).get("DriverConfig") is not None,
            volume_driver=driver.get("Name") or "",
            volume_driver_options=dict(driver["Options"]) if driver.get("Options") is not None else None,
            volume_subpath=(vol or {}).get("Subpath") or "",
            has_tmpfs_options=tmp is not None,
            tmpfs_size=int((tmp or {}).get("SizeBytes") or 0),
            tmpfs_mode=int((tmp or {}).get("Mode") or 0),
            tmpfs_options=tuple(tuple(o) for o in tmpfs_opts),
        ))
    return tuple(out)


# --- networking: PortBindings, PublishAllPorts, Links, NetworkingConfig.EndpointsConfig
def _decode_networking(body: dict[str, Any], hc_in: dict[str, Any], host: HostConfig) -> HostConfig:
    raw_pb = hc_in.get("PortBindings") or {}
    if not isinstance(raw_pb, dict):
        raise BadRequest("json: cannot unmarshal PortBindings")
    pairs: dict[str, list[tuple[str, str]]] = {}
    port_map: list[tuple[str, tuple[tuple[str, str], ...] | None]] = []
    for key, items in raw_pb.items():
        pairs[key] = [(str((b or {}).get("HostIp") or ""), str((b or {}).get("HostPort") or ""))
                      for b in (items or [])]
        port_map.append((key, tuple(pairs[key]) if items is not None else None))
    try:
        net_ports.validate_port_bindings(pairs)
    except EngineError as e:
        raise BadRequest(e.message) from None
    mode = host.network_mode
    bindings: list[tuple[str, str, str]] = []
    if mode != "host":
        for key, items in pairs.items():
            proto, port = net_ports.split_proto_port(key)
            for ip, hp in items or [("", "")]:
                bindings.append((f"{port}/{proto}", ip, hp))
    endpoints: list[tuple[str, EndpointConfig]] = []
    nc = body.get("NetworkingConfig") or {}
    for name, ep in ((nc.get("EndpointsConfig") or {}) if isinstance(nc, dict) else {}).items():
        ep = ep or {}
        ipam_cfg = ep.get("IPAMConfig") or {}
        endpoints.append((name, EndpointConfig(
            aliases=tuple(ep.get("Aliases") or ()), links=tuple(ep.get("Links") or ()),
            ipv4_address=str(ipam_cfg.get("IPv4Address") or ""), ipv6_address=str(ipam_cfg.get("IPv6Address") or ""),
            link_local_ips=tuple(ipam_cfg.get("LinkLocalIPs") or ()), mac_address=str(ep.get("MacAddress") or ""),
            driver_opts=dict(ep.get("DriverOpts") or {}), gw_priority=int(ep.get("GwPriority") or 0))))
    # -P is kept as asked: the host network publishes nothing (the network contributor)
    host = dataclasses.replace(host, port_bindings=tuple(bindings), port_map=tuple(port_map),
                               publish_all_ports=bool(hc_in.get("PublishAllPorts")),
                               links=tuple(hc_in.get("Links") or ()), endpoints=tuple(endpoints))
    mac_given = bool(body.get("MacAddress")) or any(ep.mac_address for _, ep in endpoints)
    try:
        net_contrib.check_create(host, hostname_given=bool(body.get("Hostname")), mac_given=mac_given)
    except EngineError as e:
        raise BadRequest(e.message) from None
    return host
