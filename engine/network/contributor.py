"""The network's start contributor: a container's network namespace, endpoints and published ports.

Modes (HostConfig.NetworkMode): ``host`` shares the host's namespace, ``none``
gets a fresh one with loopback only (the runtime makes it), ``container:<ref>``
joins another running container's, anything else (``bridge``, a user network)
gets a namespace prepared here, before the process starts, and joined by path.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from pathlib import Path

from ..containers import files
from ..containers.contributors import BaseContributor, StartPlan
from ..errors import Conflict, InvalidParameter
from ..types import Container, HostConfig
from .ports import split_proto_port
from .service import NetworkService

log = logging.getLogger(__name__)


def check_create(hc: HostConfig, *, hostname_given: bool, mac_given: bool) -> None:
    """dockerd's conflicts of a network mode with other options (at create)."""
    mode = hc.network_mode
    if mode.startswith("container:"):
        if hostname_given:
            raise InvalidParameter("conflicting options: hostname and the network mode")
        if hc.links:
            raise InvalidParameter("conflicting options: container type network can't be used with links. "
                                   "This would result in undefined behavior")
        if hc.dns:
            raise InvalidParameter("conflicting options: dns and the network mode")
        if hc.extra_hosts:
            raise InvalidParameter("conflicting options: custom host-to-IP mapping and the network mode")
        if mac_given:
            raise InvalidParameter("conflicting options: mac-address and the network mode")
        if hc.port_bindings or hc.publish_all_ports:
            raise InvalidParameter("conflicting options: port publishing and the container type network mode")
    if mode == "host" and hc.links:
        raise InvalidParameter("conflicting options: host type networking can't be used with links. "
                               "This would result in undefined behavior")


class NetworkContributor(BaseContributor):
    name = "network"

    def __init__(self, svc: NetworkService, lookup: Callable[[str], Container],
                 is_running: Callable[[Container], bool]) -> None:
        self.svc = svc
        self._lookup = lookup
        self._is_running = is_running

    async def created(self, c: Container) -> None:
        mode = self.svc.resolve_mode(c)
        if mode.startswith("container:"):
            self._lookup(mode.partition(":")[2])       # No such container: <ref>
            return
        await asyncio.to_thread(self.svc.record_create, c)

    async def prepare(self, plan: StartPlan) -> None:
        c = plan.container
        mode = self.svc.resolve_mode(c)
        if mode == "host":
            plan.share_host_network = True
            if c.config.hostname == c.id[:12]:
                plan.hostname = socket.gethostname()
            return
        if mode == "none":
            return
        if mode.startswith("container:"):
            self._join_container(plan, mode.partition(":")[2])
            return
        endpoints = await asyncio.to_thread(self.svc.setup_sandbox, c, c.name)
        plan.namespace_paths["network"] = str(self.svc.ns_path(c))
        for ep in endpoints:
            for addr in (ep.ipv4, ep.ipv6):
                if addr:
                    plan.hosts_addresses.append(addr.split("/")[0])
        await self._publish(c, endpoints[0] if endpoints else None)

    def _join_container(self, plan: StartPlan, ref: str) -> None:
        other = self._lookup(ref)
        if other.id == plan.container.id:
            raise InvalidParameter("cannot join own network")
        if not self._is_running(other) or not other.state.pid:
            raise Conflict(f"cannot join network of a non running container: {other.id}")
        mode = self.svc.resolve_mode(other)
        if mode == "host":
            plan.share_host_network = True
        else:
            own = self.svc.ns_path(other)
            plan.namespace_paths["network"] = str(own) if own.exists() else f"/proc/{other.state.pid}/ns/net"
        plan.hostname = other.config.hostname
        try:
            plan.resolv_conf = Path(other.resolv_conf_path).read_text()
        except OSError:
            pass

    async def _publish(self, c: Container, ep: object) -> None:
        from .types import Endpoint

        hc = c.host_config
        wanted: list[tuple[int, str, str, str]] = []
        bound = set()
        for key, host_ip, host_port in hc.port_bindings:
            proto, port = split_proto_port(key)
            bound.add(f"{port}/{proto}")
            wanted.append((int(port), proto, host_ip, host_port))
        if hc.publish_all_ports:
            for key in c.config.exposed_ports:
                proto, port = split_proto_port(key)
                if f"{port}/{proto}" not in bound and port.isdigit():
                    wanted.append((int(port), proto, "", ""))
        if not wanted:
            return
        if not isinstance(ep, Endpoint) or not ep.ipv4:
            return
        net = self.svc.get(ep.network_id)
        default_ip = net.options.get("com.docker.network.bridge.host_binding_ipv4") or self.svc.config.default_ip
        wanted = [(p, proto, ip or (default_ip if default_ip not in ("", "0.0.0.0") else ""), hp)
                  for p, proto, ip, hp in wanted]
        made = await self.svc.ports.publish(c.id, f"{c.name} ({ep.id})", net.bridge_name,
                                            ep.ipv4.split("/")[0], wanted)
        await asyncio.to_thread(self.svc.store.set_ports, c.id, made)

    async def release(self, c: Container) -> None:
        await self.svc.ports.unpublish(c.id)
        await asyncio.to_thread(self.svc.store.set_ports, c.id, [])
        await asyncio.to_thread(self.svc.teardown_sandbox, c)

    async def removed(self, c: Container, *, volumes: bool) -> None:
        await asyncio.to_thread(self.svc.forget, c)

    async def restore(self, c: Container, *, running: bool) -> None:
        if not running:
            await self.release(c)
            return
        bindings = self.svc.published(c.id)
        if not bindings:
            return
        atts = self.svc.attachments(c.id)
        if not atts or atts[0].endpoint is None or not atts[0].endpoint.ipv4:
            return
        ep = atts[0].endpoint
        await self.svc.ports.restore(c.id, atts[0].network.bridge_name, ep.ipv4.split("/")[0], bindings)


def resolv_for_user_network(host_resolv: Path, dns: tuple[str, ...], search: tuple[str, ...],
                            options: tuple[str, ...]) -> str:
    """resolv.conf of a container on a user network: the embedded resolver, the real servers noted."""
    base = files.resolv_conf_content(host_resolv, dns, search, options)
    servers = [line.split()[1] for line in base.splitlines() if line.startswith("nameserver ")]
    out = [line for line in base.splitlines() if not line.startswith("nameserver ")]
    out.insert(0, "nameserver 127.0.0.11")
    if not any(line.startswith("options ") for line in out):
        out.append("options ndots:0")
    out.append("")
    out.append("# Based on host file: '/etc/resolv.conf' (internal resolver)")
    out.append("# ExtServers: [" + " ".join(servers) + "]")
    out.append("# Overrides: []")
    out.append("# Option ndots from: internal")
    return "\n".join(out) + "\n"
