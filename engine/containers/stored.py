"""A container's stored record (the JSON of ``to_jsonable(Container)``) -> ``Container``.

Tolerant of every format pydockerd has written: unknown keys are dropped, missing ones take
their defaults, and rows written before the host config was fully typed are migrated on read.
Those rows kept the request's HostConfig (Docker JSON) under ``annotations["HostConfig"]`` and
the exec ids under ``annotations["ExecIDs"]``; what inspect showed from that JSON is recovered
into the typed fields here (the next save writes the new format).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..types import (
    Container,
    ContainerConfig,
    ContainerState,
    EndpointConfig,
    Health,
    HealthConfig,
    HealthLogEntry,
    HostConfig,
    LogConfig,
    MountSpec,
    Resources,
    RestartPolicy,
)

# attribute -> the Docker field it came from, for the list fields where [] and null differ
NIL_LISTS: dict[str, str] = {
    "binds": "Binds", "volumes_from": "VolumesFrom", "cap_add": "CapAdd", "cap_drop": "CapDrop",
    "extra_hosts": "ExtraHosts", "group_add": "GroupAdd", "links": "Links", "security_opt": "SecurityOpt",
    "device_cgroup_rules": "DeviceCgroupRules", "device_requests": "DeviceRequests",
}

_TUPLES_HC = ("cap_add", "cap_drop", "security_opt", "extra_hosts", "dns", "dns_search", "dns_options",
              "device_cgroup_rules", "group_add", "binds", "volumes_from", "links")
_DEVICE_LISTS = ("blkio_weight_device", "device_read_bps", "device_write_bps", "device_read_iops",
                 "device_write_iops")


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _config(data: dict[str, Any]) -> ContainerConfig:
    cfg = dict(data)
    for key in ("env", "exposed_ports", "volumes", "on_build"):
        cfg[key] = tuple(cfg.get(key) or ())
    for key in ("cmd", "entrypoint", "shell"):
        cfg[key] = tuple(cfg[key]) if cfg.get(key) is not None else None
    if cfg.get("healthcheck") is not None:
        hc = dict(cfg["healthcheck"])
        hc["test"] = tuple(hc.get("test") or ())
        cfg["healthcheck"] = HealthConfig(**_known(HealthConfig, hc))
    return ContainerConfig(**_known(ContainerConfig, cfg))


def _resources(data: dict[str, Any]) -> Resources:
    res = dict(data)
    res["ulimits"] = tuple(tuple(u) for u in res.get("ulimits") or ())
    for key in _DEVICE_LISTS:
        res[key] = tuple(tuple(d) for d in res.get(key) or ())
    return Resources(**_known(Resources, res))


def _mount(data: dict[str, Any]) -> MountSpec:
    m = dict(data)
    m["tmpfs_options"] = tuple(tuple(o) for o in m.get("tmpfs_options") or ())
    return MountSpec(**_known(MountSpec, m))


def _endpoint(data: dict[str, Any]) -> EndpointConfig:
    d = dict(data)
    for key in ("aliases", "links", "link_local_ips"):
        d[key] = tuple(d.get(key) or ())
    return EndpointConfig(**_known(EndpointConfig, d))


def _port_map(raw: Any) -> tuple[tuple[str, tuple[tuple[str, str], ...] | None], ...]:
    """The stored port_map ([[key, [[ip, port], ...] | null], ...])."""
    return tuple((str(key), tuple((str(ip), str(port)) for ip, port in items) if items is not None else None)
                 for key, items in raw or ())


def _host_config(data: dict[str, Any]) -> HostConfig:
    hc = dict(data)
    hc["restart_policy"] = RestartPolicy(**_known(RestartPolicy, hc.get("restart_policy") or {}))
    hc["log_config"] = LogConfig(**_known(LogConfig, hc.get("log_config") or {}))
    hc["console_size"] = tuple(hc.get("console_size") or (0, 0))
    for key in _TUPLES_HC:
        hc[key] = tuple(hc.get(key) or ())
    hc["devices"] = tuple(tuple(d) for d in hc.get("devices") or ())
    for key in ("masked_paths", "readonly_paths"):
        if hc.get(key) is not None:
            hc[key] = tuple(hc[key])
    hc["resources"] = _resources(hc.get("resources") or {})
    hc["mounts"] = tuple(_mount(m) for m in hc.get("mounts") or ())
    hc["port_bindings"] = tuple(tuple(b) for b in hc.get("port_bindings") or ())
    hc["endpoints"] = tuple((name, _endpoint(ep)) for name, ep in hc.get("endpoints") or ())
    hc["port_map"] = _port_map(hc.get("port_map"))
    hc["given_empty"] = frozenset(hc.get("given_empty") or ())
    return HostConfig(**_known(HostConfig, hc))


def _migrate_docker_host_config(hc: HostConfig, docker: dict[str, Any]) -> HostConfig:
    """A row of the older format: the fields inspect showed from the stored request JSON."""
    raw_ports = docker.get("PortBindings") or {}
    port_map = tuple(
        (str(key), tuple((str((b or {}).get("HostIp") or ""), str((b or {}).get("HostPort") or ""))
                         for b in items) if items is not None else None)
        for key, items in (raw_ports.items() if isinstance(raw_ports, dict) else ())
    )
    given_empty = frozenset(attr for attr, key in NIL_LISTS.items() if docker.get(key) == [])
    mounts = hc.mounts
    raw_mounts = docker.get("Mounts")
    if isinstance(raw_mounts, list) and len(raw_mounts) == len(mounts):
        mounts = tuple(dataclasses.replace(m, has_volume_driver_config=isinstance(raw, dict) and isinstance(
            raw.get("VolumeOptions"), dict) and raw["VolumeOptions"].get("DriverConfig") is not None)
            for m, raw in zip(mounts, raw_mounts, strict=True))
    return dataclasses.replace(
        hc, port_map=port_map, given_empty=given_empty, mounts=mounts,
        container_id_file=str(docker.get("ContainerIDFile") or ""), isolation=str(docker.get("Isolation") or ""),
        # the older format kept -P false under the host network; the request said otherwise
        publish_all_ports=bool(docker.get("PublishAllPorts")),
    )


def _state(data: dict[str, Any]) -> ContainerState:
    fields = _known(ContainerState, data)
    health = fields.get("health")
    if isinstance(health, dict):
        fields["health"] = Health(
            status=health.get("status", "starting"),
            failing_streak=int(health.get("failing_streak", 0)),
            log=[HealthLogEntry(**e) for e in health.get("log") or []],
        )
    return ContainerState(**fields)


def container_from_row(data: dict[str, Any]) -> Container:
    host_config = _host_config(data["host_config"])
    exec_ids = list(data.get("exec_ids") or ())
    old = data.get("annotations")
    if isinstance(old, dict):
        if isinstance(old.get("HostConfig"), dict):
            host_config = _migrate_docker_host_config(host_config, old["HostConfig"])
        exec_ids = exec_ids or [str(e) for e in old.get("ExecIDs") or ()]
    return Container(
        id=data["id"],
        name=data["name"],
        created=data["created"],
        image_id=data["image_id"],
        config=_config(data["config"]),
        host_config=host_config,
        path=data["path"],
        args=tuple(data["args"]),
        state=_state(data["state"]),
        restart_count=data.get("restart_count", 0),
        log_path=data.get("log_path", ""),
        hostname_path=data.get("hostname_path", ""),
        hosts_path=data.get("hosts_path", ""),
        resolv_conf_path=data.get("resolv_conf_path", ""),
        driver=data.get("driver", "overlay2"),
        platform=data.get("platform", "linux"),
        exec_ids=exec_ids,
    )
