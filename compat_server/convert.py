"""Docker JSON <-> engine types for containers.

Decoding checks the JSON types of the fields a create body carries and
answers type errors in the words of Go's encoding/json, as dockerd does.
The full HostConfig a client sent (overlaid on dockerd's defaults) is kept as
an annotation and echoed back by inspect, so fields round-trip untouched.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import time
from typing import Any

from engine import gojson, system, timeutil
from engine.errors import EngineError, go_json_kind
from engine.logs import drivers as log_drivers
from engine.network import contributor as net_contrib
from engine.network import ports as net_ports
from engine.types import (
    PAUSED,
    RUNNING,
    Container,
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

_go_kind = go_json_kind


def _strslice(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@functools.cache
def _default_cgroupns_mode() -> str:
    return "private" if system.cgroup_version() == "2" else "host"


def default_host_config() -> dict[str, Any]:
    return {
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": "bridge", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0],
        "CapAdd": None, "CapDrop": None, "CgroupnsMode": _default_cgroupns_mode(), "Dns": [], "DnsOptions": [],
        "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "",
        "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
        "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864,
        "Runtime": "runc", "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "",
        "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0,
        "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
        "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0, "MemorySwap": 0,
        "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None, "Ulimits": [], "CpuCount": 0,
        "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
        "MaskedPaths": [
            "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
            "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
        ],
        "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    }


def decode_create(body: Any, version: str) -> tuple[ContainerConfig, HostConfig, dict[str, Any]]:
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

    full_hc = default_host_config()
    for key, value in hc_in.items():
        if value is not None or key in ("Binds", "CapAdd", "CapDrop", "ExtraHosts", "SecurityOpt"):
            full_hc[key] = copy.deepcopy(value)
    # Empty means "the daemon's default": a private IPC namespace; for the cgroup
    # namespace dockerd's default-cgroupns-mode (host on cgroup v1, private on v2).
    if not full_hc.get("IpcMode"):
        full_hc["IpcMode"] = "private"
    if not full_hc.get("CgroupnsMode"):
        full_hc["CgroupnsMode"] = _default_cgroupns_mode()
    if isinstance(full_hc.get("PidsLimit"), (int, float)) and full_hc["PidsLimit"] <= 0:
        full_hc["PidsLimit"] = None   # 0 and -1 mean unlimited: dockerd stores (and shows) null
    if full_hc.get("MemorySwappiness") == -1:
        full_hc["MemorySwappiness"] = None  # the CLI's "unset"; dockerd shows null
    if full_hc.get("NetworkMode") in ("", "default", None):
        full_hc["NetworkMode"] = "bridge"
    rp = hc_in.get("RestartPolicy") or {}
    if not rp.get("Name"):
        full_hc["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": int(rp.get("MaximumRetryCount") or 0)}
    lc = hc_in.get("LogConfig") or {}
    if not lc.get("Type"):
        full_hc["LogConfig"] = {"Type": "json-file", "Config": dict(lc.get("Config") or {})}
    if full_hc["LogConfig"].get("Config") is None:
        full_hc["LogConfig"]["Config"] = {}
    shm = hc_in.get("ShmSize") or 0
    if shm < 0:
        raise BadRequest("SHM size can not be less than 0")
    if not shm:
        full_hc["ShmSize"] = 67108864
    console = hc_in.get("ConsoleSize") or [0, 0]
    host = HostConfig(
        auto_remove=bool(hc_in.get("AutoRemove")),
        restart_policy=RestartPolicy(
            name=full_hc["RestartPolicy"]["Name"] or "no",
            maximum_retry_count=int(full_hc["RestartPolicy"].get("MaximumRetryCount") or 0),
        ),
        network_mode=full_hc["NetworkMode"],
        log_config=LogConfig(type=full_hc["LogConfig"]["Type"], config=dict(full_hc["LogConfig"]["Config"])),
        privileged=bool(hc_in.get("Privileged")),
        readonly_rootfs=bool(hc_in.get("ReadonlyRootfs")),
        cap_add=tuple(hc_in.get("CapAdd") or ()),
        cap_drop=tuple(hc_in.get("CapDrop") or ()),
        security_opt=tuple(hc_in.get("SecurityOpt") or ()),
        init=hc_in.get("Init"),
        shm_size=int(full_hc["ShmSize"]),
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
        cgroupns_mode=full_hc["CgroupnsMode"],
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
    )
    host = _decode_networking(body, hc_in, host)
    annotations = {"HostConfig": full_hc, "NetworkingConfig": body.get("NetworkingConfig")}
    return config, host, annotations


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
    for key, items in raw_pb.items():
        pairs[key] = [(str((b or {}).get("HostIp") or ""), str((b or {}).get("HostPort") or ""))
                      for b in (items or [])]
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
    host = dataclasses.replace(host, port_bindings=tuple(bindings),
                               publish_all_ports=bool(hc_in.get("PublishAllPorts")) and mode != "host",
                               links=tuple(hc_in.get("Links") or ()), endpoints=tuple(endpoints))
    mac_given = bool(body.get("MacAddress")) or any(ep.mac_address for _, ep in endpoints)
    try:
        net_contrib.check_create(host, hostname_given=bool(body.get("Hostname")), mac_given=mac_given)
    except EngineError as e:
        raise BadRequest(e.message) from None
    return host


# ------------------------------------------------------------------ encoding
def encode_config(c: Container) -> dict[str, Any]:
    cfg = c.config
    out: dict[str, Any] = {
        "Hostname": cfg.hostname,
        "Domainname": cfg.domainname,
        "User": cfg.user,
        "AttachStdin": cfg.attach_stdin,
        "AttachStdout": cfg.attach_stdout,
        "AttachStderr": cfg.attach_stderr,
    }
    if cfg.exposed_ports:
        out["ExposedPorts"] = {p: {} for p in cfg.exposed_ports}
    out.update({
        "Tty": cfg.tty,
        "OpenStdin": cfg.open_stdin,
        "StdinOnce": cfg.stdin_once,
        "Env": list(cfg.env) or None,
        "Cmd": list(cfg.cmd) if cfg.cmd is not None else None,
    })
    if cfg.healthcheck is not None:
        h = cfg.healthcheck
        hc: dict[str, Any] = {"Test": list(h.test)}
        for key, value in (("Interval", h.interval_ns), ("Timeout", h.timeout_ns), ("StartPeriod", h.start_period_ns),
                           ("StartInterval", h.start_interval_ns), ("Retries", h.retries)):
            if value:
                hc[key] = value
        out["Healthcheck"] = hc
    if cfg.args_escaped:
        out["ArgsEscaped"] = True
    out.update({
        "Image": cfg.image,
        "Volumes": {v: {} for v in cfg.volumes} if cfg.volumes else None,
        "WorkingDir": cfg.working_dir,
        "Entrypoint": list(cfg.entrypoint) if cfg.entrypoint is not None else None,
    })
    if cfg.network_disabled:
        out["NetworkDisabled"] = True
    if cfg.mac_address:
        out["MacAddress"] = cfg.mac_address
    out["OnBuild"] = list(cfg.on_build) or None
    out["Labels"] = dict(cfg.labels)
    if cfg.stop_signal:
        out["StopSignal"] = cfg.stop_signal
    if cfg.stop_timeout is not None:
        out["StopTimeout"] = cfg.stop_timeout
    if cfg.shell:
        out["Shell"] = list(cfg.shell)
    return out


def encode_state(c: Container) -> dict[str, Any]:
    s = c.state
    return {
        "Status": s.status,
        "Running": s.status in (RUNNING, PAUSED) or s.restarting,
        "Paused": s.status == PAUSED,
        "Restarting": s.restarting,
        "OOMKilled": s.oom_killed,
        "Dead": s.dead,
        "Pid": s.pid,
        "ExitCode": s.exit_code,
        "Error": s.error,
        "StartedAt": s.started_at,
        "FinishedAt": s.finished_at,
        **({"Health": encode_health(s.health)} if s.health is not None else {}),
    }


def encode_health(h: Any) -> dict[str, Any]:
    return {
        "Status": h.status,
        "FailingStreak": h.failing_streak,
        "Log": [{"Start": e.start, "End": e.end, "ExitCode": e.exit_code, "Output": e.output} for e in h.log],
    }


def health_suffix(c: Container) -> str:
    """` (healthy)` / ` (health: starting)` / ` (unhealthy)` after "Up ..." in `docker ps`."""
    h = c.state.health
    if h is None:
        return ""
    return " (health: starting)" if h.status == "starting" else f" ({h.status})"


def _network_entry(network_id: str = "") -> dict[str, Any]:
    return {
        "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
        "GwPriority": 0, "NetworkID": network_id, "EndpointID": "", "Gateway": "", "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def _networks(c: Container) -> dict[str, Any]:
    mode = (c.annotations.get("HostConfig") or {}).get("NetworkMode") or "bridge"
    if mode.startswith("container:"):
        return {}
    return {mode: _network_entry()}


def encode_mounts(mounts: Any) -> list[dict[str, Any]]:
    """Mount points as dockerd's inspect and ps show them (volumes name their volume and driver)."""
    out = []
    for m in sorted(mounts or (), key=lambda m: m.destination):
        entry: dict[str, Any] = {"Type": m.type}
        if m.type == "volume":
            entry["Name"] = m.name
        entry["Source"] = m.source
        entry["Destination"] = m.destination
        if m.type == "volume":
            entry["Driver"] = m.driver
        entry.update({"Mode": m.mode, "RW": m.rw, "Propagation": m.propagation})
        out.append(entry)
    return out


def encode_inspect(c: Container, graph_driver: dict[str, Any], version: str, size: tuple[int, int] | None,
                   mounts: Any = ()) -> dict[str, Any]:
    hc = copy.deepcopy(c.annotations.get("HostConfig") or default_host_config())
    resources_codec.encode_into(hc, c.host_config.resources)
    rp = c.host_config.restart_policy  # `docker update --restart` changes it after create
    hc["RestartPolicy"] = {"Name": rp.name or "no", "MaximumRetryCount": rp.maximum_retry_count}
    out: dict[str, Any] = {
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": list(c.args),
        "State": encode_state(c),
        "Image": c.image_id,
        "ResolvConfPath": c.resolv_conf_path,
        "HostnamePath": c.hostname_path,
        "HostsPath": c.hosts_path,
        "LogPath": log_drivers.shown_log_path(c.host_config.log_config.type, c.log_path),
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Driver": c.driver,
        "Platform": c.platform,
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": c.annotations.get("ExecIDs") or None,
        "HostConfig": hc,
        "GraphDriver": graph_driver,
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    out["Mounts"] = encode_mounts(mounts)
    out["Config"] = encode_config(c)
    out["NetworkSettings"] = {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "Ports": {},
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": _networks(c),
    }
    return out


def status_text(c: Container, now: float | None = None) -> str:
    """The `Status` column of `docker ps`."""
    now = time.time() if now is None else now
    s = c.state
    if s.removal_in_progress:
        return "Removal In Progress"
    if s.dead:
        return "Dead"
    if s.status in (RUNNING, PAUSED):
        started = timeutil.parse_ns(s.started_at) / 1e9
        text = "Up " + timeutil.human_duration(now - started)
        if s.status == PAUSED:
            text += " (Paused)"
        else:
            text += health_suffix(c)
        return text
    if s.restarting:
        finished = timeutil.parse_ns(s.finished_at) / 1e9
        return f"Restarting ({s.exit_code}) {timeutil.human_duration(now - finished)} ago"
    if s.status == "created" or s.finished_at == timeutil.ZERO_TIME:
        return "Created"
    finished = timeutil.parse_ns(s.finished_at) / 1e9
    return f"Exited ({s.exit_code}) {timeutil.human_duration(now - finished)} ago"


def encode_summary(c: Container, image_ref: str, size: tuple[int, int] | None, mounts: Any = ()) -> dict[str, Any]:
    # dockerd single-quotes the arguments that contain a space (not the path)
    command = c.path + ((" " + " ".join(f"'{a}'" if " " in a else a for a in c.args)) if c.args else "")
    mode = (c.annotations.get("HostConfig") or {}).get("NetworkMode") or "bridge"
    out: dict[str, Any] = {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": image_ref,
        "ImageID": c.image_id,
        "Command": command,
        "Created": timeutil.parse_ns(c.created) // 1_000_000_000,
        "Ports": [],
        "Labels": dict(c.config.labels),
        "State": c.state.status,
        "Status": status_text(c),
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": _networks(c)},
        "Mounts": encode_mounts(mounts),
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out
