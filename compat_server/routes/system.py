"""System routes: /_ping, /version, /info, /events, /system/df."""
from __future__ import annotations

import asyncio
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from engine import timeutil
from engine.system import go_arch

from .. import versions
from ..backends import SystemBackend
from ..errors import BadRequest
from ..responses import api_version, docker_json, dumps, qfilters

# No client reads these, they only print them (`docker version`): say what this daemon is built
# with, in Go's "go1.24.4" form, not a Go release it never ran on.
GO_VERSION = f"{sys.implementation.name}{platform.python_version()}"


def _ping_headers() -> dict[str, str]:
    return {
        "API-Version": versions.MAX_API_VERSION,
        "Builder-Version": "1",
        "Docker-Experimental": "false",
        "OSType": "linux",
        "Swarm": "inactive",
        "Server": f"Docker/{versions.ENGINE_VERSION} (linux)",
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }


async def ping(request: Request) -> Response:
    headers = _ping_headers()
    if request.method == "HEAD":
        headers["Content-Length"] = "0"
        return Response(b"", headers=headers, media_type="text/plain; charset=utf-8")
    return Response(b"OK", headers=headers, media_type="text/plain; charset=utf-8")


async def version(request: Request) -> Response:
    engine: SystemBackend = request.app.state.engine
    facts = engine.facts
    build_time = engine.build_time
    details = {
        "ApiVersion": versions.MAX_API_VERSION,
        "Arch": go_arch(),
        "BuildTime": build_time,
        "Experimental": "false",
        "GitCommit": engine.git_commit,
        "GoVersion": GO_VERSION,
        "KernelVersion": facts.kernel_version,
        "MinAPIVersion": versions.MIN_API_VERSION,
        "Os": "linux",
    }
    body = {
        "Platform": {"Name": "pydockerd"},
        "Components": [
            {"Name": "Engine", "Version": versions.ENGINE_VERSION, "Details": details},
            {"Name": "pydockerd-runtime", "Version": versions.PYDOCKERD_VERSION,
             "Details": {"GitCommit": engine.git_commit, "Python": platform.python_version()}},
        ],
        "Version": versions.ENGINE_VERSION,
        "ApiVersion": versions.MAX_API_VERSION,
        "MinAPIVersion": versions.MIN_API_VERSION,
        "GitCommit": engine.git_commit,
        "GoVersion": GO_VERSION,
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": facts.kernel_version,
        "BuildTime": build_time,
    }
    return docker_json(body)


def _fd_count() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


async def info(request: Request) -> Response:
    engine: SystemBackend = request.app.state.engine
    facts = engine.facts
    cfg = engine.config
    counts = engine.containers.counts()
    plugins = engine.plugins.listing()
    images = await asyncio.to_thread(engine.image_service.list)
    insecure = ["127.0.0.0/8", "::1/128"]
    body: dict[str, Any] = {
        "ID": engine.id,
        "Containers": counts["total"],
        "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"],
        "ContainersStopped": counts["stopped"],
        "Images": len(images),
        "Driver": cfg.storage_driver,
        "DriverStatus": engine.driver_status(),
        "Plugins": {
            "Volume": list(plugins.volume),
            "Network": list(plugins.network),
            "Authorization": None,
            "Log": list(plugins.log),
        },
        "MemoryLimit": facts.memory_limit,
        "SwapLimit": facts.swap_limit,
        "KernelMemoryTCP": facts.kernel_memory_tcp,
        "CpuCfsPeriod": facts.cpu_cfs_period,
        "CpuCfsQuota": facts.cpu_cfs_quota,
        "CPUShares": facts.cpu_shares,
        "CPUSet": facts.cpuset,
        "PidsLimit": facts.pids_limit,
        "IPv4Forwarding": facts.ipv4_forwarding,
        "BridgeNfIptables": os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"),  # noqa: ASYNC240 - procfs, never waits on a disk
        "BridgeNfIp6tables": os.path.exists("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),  # noqa: ASYNC240 - procfs, never waits on a disk
        "OomKillDisable": facts.oom_kill_disable,
        "Debug": cfg.debug,
        "NFd": _fd_count(),
        "NGoroutines": threading.active_count() + len(asyncio.all_tasks()),
        "SystemTime": _local_time(),
        "LoggingDriver": "json-file",
        "CgroupDriver": facts.cgroup_driver,
        "CgroupVersion": facts.cgroup_version,
        "NEventsListener": engine.events.listener_count(),
        "KernelVersion": facts.kernel_version,
        "OperatingSystem": facts.operating_system,
        "OSVersion": facts.os_version,
        "OSType": "linux",
        "Architecture": facts.architecture,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": None,
            "AllowNondistributableArtifactsHostnames": None,
            "InsecureRegistryCIDRs": insecure + [r for r in cfg.insecure_registries if "/" in r],
            "IndexConfigs": {
                "docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True},
                **{
                    r: {"Name": r, "Mirrors": [], "Secure": False, "Official": False}
                    for r in cfg.insecure_registries
                    if "/" not in r
                },
            },
            "Mirrors": [],
        },
        "NCPU": facts.ncpu,
        "MemTotal": facts.mem_total,
        "GenericResources": None,
        "DockerRootDir": str(cfg.data_root),
        "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
        "Name": facts.hostname,
        "Labels": list(cfg.labels),
        "ExperimentalBuild": False,
        "ServerVersion": versions.ENGINE_VERSION,
        "Runtimes": {name: {"path": path} for name, path in engine.plugins.runtimes().items()},
        "DefaultRuntime": cfg.default_runtime,
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": engine.config.live_restore,
        "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        # seccomp: the built-in default profile (engine/oci/seccomp.py), as newer dockerd names it
        "SecurityOptions": ["name=seccomp,profile=builtin"]
        + (["name=cgroupns"] if facts.cgroup_version == "2" else []),
        "CDISpecDirs": [],
        "Warnings": engine.warnings(),
    }
    if versions.at_least(api_version(request), "1.44"):
        body["Containerd"] = None
    return docker_json(body)


def _local_time() -> str:
    t = time.time()
    lt = time.localtime(t)
    off = lt.tm_gmtoff
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    frac = f"{int((t % 1) * 1e9):09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + (("." + frac) if frac else "") + \
        f"{sign}{off // 3600:02d}:{(off % 3600) // 60:02d}"


def event_json(event: Any, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # The deprecated top-level fields (gone in API 1.52) exist for container and image events.
    if not versions.at_least(version, "1.52") and event.type in ("container", "image"):
        out["status"] = event.action
        if event.actor_id:          # omitted when empty (the prune events), like dockerd
            out["id"] = event.actor_id
        if event.type == "container" and "image" in event.attributes:
            out["from"] = event.attributes["image"]
    out.update({
        "Type": event.type,
        "Action": event.action,
        "Actor": {"ID": event.actor_id, "Attributes": dict(event.attributes)},
        "scope": event.scope,
        "time": event.time_nano // 1_000_000_000,
        "timeNano": event.time_nano,
    })
    return out


async def events(request: Request) -> Response:
    engine: SystemBackend = request.app.state.engine
    version = api_version(request)
    try:
        since = request.query_params.get("since")
        until = request.query_params.get("until")
        since_ns = timeutil.parse_timestamp_arg(since) if since else None
        until_ns = timeutil.parse_timestamp_arg(until) if until else None
    except ValueError as err:
        raise BadRequest(f"failed to parse value {err}: invalid timestamp") from err
    if since_ns is not None and until_ns is not None and since_ns > until_ns:
        raise BadRequest(f"`since` time ({since}) cannot be after `until` time ({until})")
    predicate = engine.event_filter(qfilters(request))

    async def stream() -> AsyncIterator[bytes]:
        yield b""  # head now: clients wait for it before they report "listening"
        async for ev in engine.events.subscribe(since_ns, until_ns, predicate):
            yield dumps(event_json(ev, version))

    return StreamingResponse(stream(), media_type="application/json")


routes = [
    Route("/_ping", ping, methods=["GET", "HEAD"]),
    Route("/version", version, methods=["GET"]),
    Route("/info", info, methods=["GET"]),
    Route("/events", events, methods=["GET"]),
]

del resource
