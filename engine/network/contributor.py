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
from ..errors import Conflict, InvalidParameter, NotFound
from ..types import Container, HostConfig
from .dns import EmbeddedDNS, Peer
from .ports import split_proto_port
from .service import NetworkService, split_link
from .types import Link

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
        self.dns = EmbeddedDNS(self._peers, self._upstreams)
        svc.dns = self.dns
        svc.container_name = lambda cid: self._name(cid) or None

    # ------------------------------------------------------------ embedded DNS
    def _name(self, cid: str) -> str:
        try:
            return self._lookup(cid).name
        except NotFound:
            return ""

    def _peers(self, cid: str) -> list[Peer]:
        """Who the container can resolve: everyone live on the user networks it is live on."""
        out: list[Peer] = []
        for att in self.svc.attachments(cid):
            n = att.network
            if n.predefined or att.endpoint is None:
                continue
            for other, settings, ep in self.svc.containers_on(n.id):
                if ep is None:
                    continue
                name = self._name(other)
                names = tuple(x.lower() for x in (name, other[:12], *settings.aliases) if x)
                out.append(Peer(names=names, ptr_name=f"{name}.{n.name}",
                                ipv4=ep.ipv4.split("/")[0], ipv6=ep.ipv6.split("/")[0]))
        try:
            links = self.svc.links(self._lookup(cid))
        except NotFound:
            links = []
        for link in links:        # on user networks a link is a name only the linker resolves
            target = link.child_id[:12] or link.child_name.lower()
            for p in list(out):
                if target in p.names:
                    out.append(Peer(names=(link.alias.lower(),), ptr_name=p.ptr_name, ipv4=p.ipv4, ipv6=p.ipv6))
        return out

    def _dns_settings(self, c: Container) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        hc, cfg = c.host_config, self.svc.config
        return (hc.dns or cfg.dns, hc.dns_search or cfg.dns_search, hc.dns_options or cfg.dns_options)

    def _upstreams(self, cid: str) -> list[tuple[str, int]]:
        try:
            c = self._lookup(cid)
        except NotFound:
            return []
        dns, _, _ = self._dns_settings(c)
        servers = list(dns) or host_nameservers(HOST_RESOLV)
        return [(s, 53) for s in servers]

    async def created(self, c: Container) -> None:
        links: list[Link] = []
        for link in c.host_config.links:
            target, alias = split_link(link)
            try:
                child = self._lookup(target)
            except NotFound as e:
                raise InvalidParameter(f"could not get container for {target}: {e.message}") from None
            links.append(Link(alias=alias, child_id=child.id, child_name=child.name))
        if links:
            await asyncio.to_thread(self.svc.store.set_links, c.id, links)
        mode = self.svc.resolve_mode(c)
        if mode.startswith("container:"):
            self._lookup(mode.partition(":")[2])       # No such container: <ref>
            return
        await asyncio.to_thread(self.svc.endpoints.record_create, c)

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
        endpoints = await asyncio.to_thread(self.svc.endpoints.setup_sandbox, c, c.name)
        for ep in endpoints:
            self.svc.publish_container_event("connect", self.svc.get(ep.network_id), c.id)
        path = self.svc.ns_path(c)
        plan.namespace_paths["network"] = str(path)
        for ep in endpoints:
            for addr in (ep.ipv4, ep.ipv6):
                if addr:
                    plan.hosts_addresses.append(addr.split("/")[0])
        await self._publish(c, endpoints[0] if endpoints else None)
        if mode == "bridge":
            self._legacy_links(plan)
        dns, search, options = self._dns_settings(c)
        if any(not a.network.predefined for a in self.svc.attachments(c.id)):
            await self.dns.serve(c.id, path)
            plan.resolv_conf = resolv_for_user_network(HOST_RESOLV, dns, search, options)
        elif (dns, search, options) != (c.host_config.dns, c.host_config.dns_search, c.host_config.dns_options):
            plan.resolv_conf = files.resolv_conf_content(HOST_RESOLV, dns, search, options)

    def _legacy_links(self, plan: StartPlan) -> None:
        """--link on the default bridge: a hosts entry and the ALIAS_* variables, like dockerd."""
        c = plan.container
        for link in self.svc.links(c):
            alias = link.alias
            try:
                other: Container | None = self._lookup(link.child_id or link.child_name)
            except NotFound:
                other = None        # removed since: dockerd keeps the link, and refuses to start
            ip = ""
            if other is not None and self._is_running(other):
                for att in self.svc.attachments(other.id):
                    if att.network.is_default_bridge and att.endpoint is not None:
                        ip = att.endpoint.ipv4.split("/")[0]
            if other is None or not ip:
                name = other.name if other is not None else link.child_name
                raise InvalidParameter(f"Cannot link to a non running container: /{name} AS /{c.name}/{alias}")
            plan.hosts_entries.append((ip, f"{alias} {other.id[:12]} {other.name}"))
            plan.env.extend(link_env(alias, c.name, ip, other.config.exposed_ports, other.config.env))

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
                                            ep.ipv4.split("/")[0], wanted, ep.ipv6.split("/")[0])
        await asyncio.to_thread(self.svc.store.set_ports, c.id, made)

    async def release(self, c: Container) -> None:
        await self.dns.stop(c.id)
        await self.svc.ports.unpublish(c.id)
        await asyncio.to_thread(self.svc.store.set_ports, c.id, [])
        live = [a.network for a in self.svc.attachments(c.id) if a.endpoint is not None]
        await asyncio.to_thread(self.svc.endpoints.teardown_sandbox, c)
        for n in live:
            self.svc.publish_container_event("disconnect", n, c.id)

    async def removed(self, c: Container, *, volumes: bool) -> None:
        await asyncio.to_thread(self.svc.endpoints.forget, c)
        await asyncio.to_thread(self.svc.store.note_child_name, c.id, c.name)

    async def restore(self, c: Container, *, running: bool) -> None:
        if not running:
            await self.release(c)
            return
        path = self.svc.ns_path(c)
        if path.exists() and any(not a.network.predefined and a.endpoint is not None
                                 for a in self.svc.attachments(c.id)):
            try:
                await self.dns.serve(c.id, path)
            except OSError as e:
                log.warning("embedded DNS of %s: %s", c.id[:12], e)
        bindings = self.svc.published(c.id)
        if not bindings:
            return
        atts = self.svc.attachments(c.id)
        if not atts or atts[0].endpoint is None or not atts[0].endpoint.ipv4:
            return
        ep = atts[0].endpoint
        await self.svc.ports.restore(c.id, atts[0].network.bridge_name, ep.ipv4.split("/")[0], bindings,
                                     ep.ipv6.split("/")[0])


HOST_RESOLV = Path("/etc/resolv.conf")


def _port_key(spec: str) -> tuple[int, str]:
    port, _, proto = spec.partition("/")
    return (int(port) if port.isdigit() else 0, proto or "tcp")


def link_env(alias: str, own_name: str, ip: str, exposed: tuple[str, ...], env: tuple[str, ...]) -> list[str]:
    """The variables dockerd gives a container for each legacy link."""
    prefix = alias.upper().replace("-", "_")
    out = [f"{prefix}_NAME=/{own_name}/{alias}"]
    ports = sorted((_port_key(p) for p in exposed), key=lambda x: (x[0], x[1]))
    if ports:
        port, proto = ports[0]
        out.append(f"{prefix}_PORT={proto}://{ip}:{port}")
    for port, proto in ports:
        key = f"{prefix}_PORT_{port}_{proto.upper()}"
        out += [f"{key}={proto}://{ip}:{port}", f"{key}_ADDR={ip}", f"{key}_PORT={port}", f"{key}_PROTO={proto}"]
    for entry in env:
        var, sep, value = entry.partition("=")
        if sep and var not in ("HOME", "HOSTNAME", "PATH"):
            out.append(f"{prefix}_ENV_{var}={value}")
    return out


def host_nameservers(path: Path) -> list[str]:
    """The host's nameservers a container can reach (loopback ones cannot be)."""
    text = files.resolv_conf_content(path)
    return [line.split()[1] for line in text.splitlines() if line.startswith("nameserver ")]


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
