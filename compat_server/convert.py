"""Engine containers -> Docker JSON: inspect, the list's summaries, state and health.

The create body is decoded in ``convert_create`` (``decode_create`` is re-exported here) and the
host config encoded in ``convert_hostconfig``; both work on the engine's typed records only.
"""
from __future__ import annotations

import time
from typing import Any

from engine import timeutil
from engine.logs import drivers as log_drivers
from engine.types import PAUSED, RUNNING, Container

from .convert_create import decode_create
from .convert_hostconfig import encode_host_config, network_mode

__all__ = ["decode_create", "encode_config", "encode_inspect", "encode_mounts", "encode_state", "encode_summary",
           "status_text"]


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
    mode = network_mode(c.host_config)
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
    hc = encode_host_config(c.host_config)
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
        "ExecIDs": list(c.exec_ids) or None,
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
    mode = network_mode(c.host_config)
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
