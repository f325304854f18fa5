"""The engine's typed ``HostConfig`` -> inspect's ``HostConfig`` JSON.

Fields come in dockerd's order; the ones Go leaves out when empty (``omitempty``: Tmpfs,
Sysctls, Mounts, Init) follow the rest when set, where inspect has always shown them.  A list
field a client set to ``[]`` shows ``[]``, one it left unset ``null``, as Go keeps them apart
(``HostConfig.given_empty``).  Resources (and the restart policy) are the engine's current
values, so ``docker update`` shows.
"""
from __future__ import annotations

from typing import Any

from engine.types import HostConfig, MountSpec

from . import resources_codec
from .convert_create import DEFAULT_SHM_SIZE, default_cgroupns_mode

# dockerd's defaults, shown when the client did not set its own
DEFAULT_MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def _nil_list(hc: HostConfig, attr: str) -> list[Any] | None:
    value = getattr(hc, attr, ())
    return list(value) if value or attr in hc.given_empty else None


def network_mode(hc: HostConfig) -> str:
    return "bridge" if hc.network_mode in ("", "default") else hc.network_mode


def encode_mount(m: MountSpec) -> dict[str, Any]:
    """One HostConfig.Mounts entry as the client's mount.Mount (every field omitempty)."""
    out: dict[str, Any] = {}
    for key, value in (("Type", m.type), ("Source", m.source), ("Target", m.target), ("ReadOnly", m.read_only),
                       ("Consistency", m.consistency)):
        if value:
            out[key] = value
    if m.has_bind_options:
        out["BindOptions"] = {k: v for k, v in (
            ("Propagation", m.bind_propagation), ("NonRecursive", m.bind_non_recursive),
            ("CreateMountpoint", m.bind_create_mountpoint),
            ("ReadOnlyNonRecursive", m.bind_readonly_non_recursive),
            ("ReadOnlyForceRecursive", m.bind_readonly_force_recursive)) if v}
    if m.has_volume_options:
        vol: dict[str, Any] = {}
        if m.volume_nocopy:
            vol["NoCopy"] = True
        if m.volume_labels:
            vol["Labels"] = dict(m.volume_labels)
        if m.volume_subpath:
            vol["Subpath"] = m.volume_subpath
        if m.has_volume_driver_config or m.volume_driver or m.volume_driver_options:
            driver: dict[str, Any] = {}
            if m.volume_driver:
                driver["Name"] = m.volume_driver
            if m.volume_driver_options:
                driver["Options"] = dict(m.volume_driver_options)
            vol["DriverConfig"] = driver
        out["VolumeOptions"] = vol
    if m.has_tmpfs_options:
        tmp: dict[str, Any] = {}
        if m.tmpfs_size:
            tmp["SizeBytes"] = m.tmpfs_size
        if m.tmpfs_mode:
            tmp["Mode"] = m.tmpfs_mode
        if m.tmpfs_options:
            tmp["Options"] = [list(o) for o in m.tmpfs_options]
        out["TmpfsOptions"] = tmp
    return out


def encode_host_config(hc: HostConfig) -> dict[str, Any]:
    rp = hc.restart_policy
    out: dict[str, Any] = {
        "Binds": _nil_list(hc, "binds"),
        "ContainerIDFile": hc.container_id_file,
        "LogConfig": {"Type": hc.log_config.type, "Config": dict(hc.log_config.config)},
        "NetworkMode": network_mode(hc),
        "PortBindings": {key: [{"HostIp": ip, "HostPort": port} for ip, port in items] if items is not None
                         else None for key, items in hc.port_map},
        "RestartPolicy": {"Name": rp.name or "no", "MaximumRetryCount": rp.maximum_retry_count},
        "AutoRemove": hc.auto_remove,
        "VolumeDriver": hc.volume_driver,
        "VolumesFrom": _nil_list(hc, "volumes_from"),
        "ConsoleSize": list(hc.console_size),
        "CapAdd": _nil_list(hc, "cap_add"),
        "CapDrop": _nil_list(hc, "cap_drop"),
        "CgroupnsMode": hc.cgroupns_mode or default_cgroupns_mode(),
        "Dns": list(hc.dns),
        "DnsOptions": list(hc.dns_options),
        "DnsSearch": list(hc.dns_search),
        "ExtraHosts": _nil_list(hc, "extra_hosts"),
        "GroupAdd": _nil_list(hc, "group_add"),
        "IpcMode": hc.ipc_mode or "private",
        "Cgroup": "",
        "Links": _nil_list(hc, "links"),
        "OomScoreAdj": 0,
        "PidMode": hc.pid_mode,
        "Privileged": hc.privileged,
        "PublishAllPorts": hc.publish_all_ports,
        "ReadonlyRootfs": hc.readonly_rootfs,
        "SecurityOpt": _nil_list(hc, "security_opt"),
        "UTSMode": hc.uts_mode,
        "UsernsMode": hc.userns_mode,
        "ShmSize": hc.shm_size or DEFAULT_SHM_SIZE,
        "Runtime": hc.runtime or "runc",
        "Isolation": hc.isolation,
        # container.Resources (values set by resources_codec below)
        "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": hc.cgroup_parent, "BlkioWeight": 0,
        "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
        "CpusetCpus": "", "CpusetMems": "",
        "Devices": [{"PathOnHost": h, "PathInContainer": c, "CgroupPermissions": p} for h, c, p in hc.devices],
        "DeviceCgroupRules": _nil_list(hc, "device_cgroup_rules"),
        "DeviceRequests": [] if "device_requests" in hc.given_empty else None,
        "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False,
        "PidsLimit": None, "Ulimits": [], "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": list(hc.masked_paths if hc.masked_paths is not None else DEFAULT_MASKED_PATHS),
        "ReadonlyPaths": list(hc.readonly_paths if hc.readonly_paths is not None else DEFAULT_READONLY_PATHS),
    }
    if hc.tmpfs:
        out["Tmpfs"] = dict(hc.tmpfs)
    if hc.sysctls:
        out["Sysctls"] = dict(hc.sysctls)
    if hc.resources.kernel_memory:
        out["KernelMemory"] = 0   # where a client that sets it sends it; else after everything
    if hc.mounts:
        out["Mounts"] = [encode_mount(m) for m in hc.mounts]
    if hc.init is not None:
        out["Init"] = hc.init
    resources_codec.encode_into(out, hc.resources)
    return out
