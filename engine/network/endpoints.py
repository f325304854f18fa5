"""Containers' endpoints: attachments recorded at create, the netns and veths made at start
(``setup_sandbox``) and undone at stop (``teardown_sandbox``, its mirror, safe to repeat),
addresses handed out per network, and connect/disconnect of running or stopped containers.
"""
from __future__ import annotations

import asyncio
import ipaddress
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EngineError, Forbidden, InvalidParameter, NotFound
from ..types import Container
from . import ipam, netlink, netns
from .types import Endpoint, EndpointSettings, IPAMConfig, Network

if TYPE_CHECKING:
    from .service import NetworkService


@dataclass
class Attachment:
    network: Network
    settings: EndpointSettings
    endpoint: Endpoint | None
    seq: int


class Endpoints:
    def __init__(self, svc: NetworkService) -> None:
        self.svc = svc

    def record_create(self, c: Container) -> None:
        """At container create: check the networks exist and remember the container's attachments."""
        mode = self.svc.resolve_mode(c)
        if mode in ("host", "none") or mode.startswith("container:"):
            return
        try:
            primary = self.svc.get(mode)
        except NotFound:
            return      # like dockerd: refused when the container starts ("network X not found")
        settings_by_net: dict[str, EndpointSettings] = {}
        for ref, s in c.host_config.endpoints:
            # the CLI names the mode it was given ("default" included) as the endpoint's key
            net = primary if ref in ("default", c.host_config.network_mode) else self.svc.get(ref)
            settings_by_net[net.id] = s
        s0 = settings_by_net.pop(primary.id, EndpointSettings())
        self._check_settings(primary, s0)
        todo = [(primary, s0)] + [(self.svc.get(nid), s) for nid, s in settings_by_net.items()]
        for seq, (net, s) in enumerate(todo):
            self.svc.store.put_attachment(c.id, net.id, seq, s, None)

    def _check_settings(self, n: Network, s: EndpointSettings) -> None:
        if (s.ipv4_address or s.ipv6_address) and (n.is_default_bridge or n.predefined):
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
        if s.aliases and (n.is_default_bridge or n.predefined):
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined "
                                   "networks")
        if s.ipv4_address and n.auto_subnet:
            raise InvalidParameter("user specified IP address is supported only when connecting to networks with "
                                   "user configured subnets")
        if s.ipv4_address:
            cfg = next((c for c in n.ipam if ":" not in c.subnet), None)
            ip = ipam.parse_ip(s.ipv4_address)
            if cfg is None or ip not in ipam.parse_subnet(cfg.subnet):
                raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {s.ipv4_address}")

    def forget(self, c: Container) -> None:
        self.svc.store.delete_attachment(c.id)

    # ---------------------------------------------------- running containers
    def setup_sandbox(self, c: Container, name: str) -> list[Endpoint]:
        """Blocking: the netns and one endpoint per attached network (in attach order)."""
        mode = self.svc.resolve_mode(c)
        self.svc.get(mode)               # network X not found (removed since, or never there)
        if not self.svc.attachments(c.id):
            self.record_create(c)
        path = self.svc.ns_path(c)
        netns.remove(path)           # a stale one of a run that was never settled
        netns.create(path)
        endpoints = []
        atts = self.svc.attachments(c.id)
        if not atts:
            netlink.loopback_up(path)      # (attach brings it up with the first interface)
        for i, att in enumerate(atts):
            endpoints.append(self._join(c, path, att, f"eth{i}", first=i == 0))
        return endpoints

    def _join(self, c: Container, path: Path, att: Attachment, ifname: str, *, first: bool) -> Endpoint:
        n = att.network
        s = att.settings
        ep = Endpoint(id=secrets.token_hex(32), network_id=n.id, container_id=c.id, ifname=ifname,
                      host_ifname=netlink.veth_name(),
                      mac=s.mac_address or (c.config.mac_address if first else "") or netlink.random_mac())
        addrs: list[str] = []
        gws: list[str] = []
        for cfg in n.ipam:
            net = ipam.parse_subnet(cfg.subnet)
            if net.version == 6 and not n.enable_ipv6:
                continue
            static = s.ipv4_address if net.version == 4 else s.ipv6_address
            ip = self._allocate(n, cfg, c.id, static)
            addrs.append(f"{ip}/{net.prefixlen}")
            if net.version == 4:
                ep = replace(ep, ipv4=f"{ip}/{net.prefixlen}", gateway=cfg.gateway)
            else:
                ep = replace(ep, ipv6=f"{ip}/{net.prefixlen}", gateway6=cfg.gateway)
            if cfg.gateway and not n.internal:
                gws.append(cfg.gateway)
            # the addresses are recorded now, so a failure below still releases them
            self.svc.store.put_attachment(c.id, n.id, att.seq, s, ep)
        self.svc.store.put_attachment(c.id, n.id, att.seq, s, ep)
        netlink.attach(path, netlink.Attachment(
            bridge=n.bridge_name, host_ifname=ep.host_ifname, ifname=ifname, mac=ep.mac,
            addresses=tuple(addrs), gateways=tuple(gws) if first else (), mtu=n.mtu))
        return ep

    def _allocate(self, n: Network, cfg: IPAMConfig, cid: str, static: str) -> ipam.IPAddress:
        taken = {ipaddress.ip_address(a) for a in self.svc.store.addresses(n.id)}
        if static:
            ip = ipam.check_static(cfg, static, taken)
            if not self.svc.store.take_address(n.id, str(ip), cid):
                raise InvalidParameter("Address already in use")
            return ip
        for _ in range(64):
            ip = ipam.pick_address(cfg, taken)
            if self.svc.store.take_address(n.id, str(ip), cid):
                return ip
            taken.add(ip)
        raise EngineError(f"could not allocate an address on network {n.name}")

    def teardown_sandbox(self, c: Container) -> None:
        """Blocking, idempotent: veths, addresses, the netns file.

        While the namespace exists, unmounting it is enough: with its last user gone the kernel
        destroys it, and the veth pairs in it, in the background (deleting each veth here would
        add ~20 ms to every stop).  Without it (a half-done state), veths are deleted one by one."""
        path = self.svc.ns_path(c)
        had_ns = netns.is_mounted(path)
        netns.remove(path)
        for att in self.svc.attachments(c.id):
            if att.endpoint is not None:
                if not had_ns:
                    netlink.detach(att.endpoint.host_ifname)
                self.svc.store.put_attachment(c.id, att.network.id, att.seq, att.settings, None)
        self.svc.store.release_addresses(c.id)

    # ---------------------------------------------------- connect/disconnect
    async def connect(self, c: Container, ref: str, s: EndpointSettings, *, running: bool) -> Network:
        async with self.svc.lock:
            n = self.svc.get(ref)
            mode = self.svc.resolve_mode(c)
            if mode == "host" or n.name == "host" or n.driver == "host":
                raise Forbidden("container cannot be disconnected from host network or connected to host "
                                "network")
            if mode.startswith("container:"):
                raise Forbidden("container sharing network namespace with another container or host cannot be "
                                "connected to any other network")
            if mode == "none" or n.driver == "null":
                raise Forbidden("container cannot be connected to multiple networks with one of the networks "
                                "in private (none) mode")
            atts = self.svc.attachments(c.id)
            if any(a.network.id == n.id for a in atts):
                raise Forbidden(f"endpoint with name {c.name} already exists in network {n.name}")
            self._check_settings(n, s)
            seq = max((a.seq for a in atts), default=-1) + 1
            self.svc.store.put_attachment(c.id, n.id, seq, s, None)
            if running:
                att = Attachment(n, s, None, seq)
                try:
                    await asyncio.to_thread(self._join, c, self.svc.ns_path(c), att, _next_ifname(atts), first=False)
                    if not n.predefined and self.svc.dns is not None:
                        await self.svc.dns.serve(c.id, self.svc.ns_path(c))
                        # dockerd's rebuildDNS: a container that had the host's resolvers (it started
                        # on the default bridge) now asks the embedded server
                        await asyncio.to_thread(self._use_embedded_resolver, c)
                except BaseException:
                    await asyncio.to_thread(self._leave, c, n.id)
                    self.svc.store.delete_attachment(c.id, n.id)
                    raise
        self.svc.publish_container_event("connect", n, c.id)
        return n

    def _use_embedded_resolver(self, c: Container) -> None:
        from .contributor import HOST_RESOLV, resolv_for_user_network

        path = Path(c.resolv_conf_path)
        try:
            current = path.read_text()
        except OSError:
            return
        if "nameserver 127.0.0.11" in current.splitlines():
            return
        hc, cfg = c.host_config, self.svc.config
        text = resolv_for_user_network(HOST_RESOLV, hc.dns or cfg.dns, hc.dns_search or cfg.dns_search,
                                       hc.dns_options or cfg.dns_options)
        # in place: the container sees the file through a bind mount of this inode
        with open(path, "r+") as f:
            f.write(text)
            f.truncate()

    def _leave(self, c: Container, nid: str) -> None:
        for att in self.svc.attachments(c.id):
            if att.network.id == nid and att.endpoint is not None:
                netlink.detach(att.endpoint.host_ifname)
        self.svc.store.release_addresses(c.id, nid)

    async def disconnect(self, c: Container, ref: str, *, force: bool) -> Network:
        async with self.svc.lock:
            n = self.svc.get(ref)
            if n.driver == "host" and self.svc.resolve_mode(c) == "host":
                raise Forbidden("container cannot be disconnected from host network or connected to host "
                                "network")
            atts = self.svc.attachments(c.id)
            if not any(a.network.id == n.id for a in atts):
                raise Forbidden(f"container {c.id} is not connected to network {n.name}")
            await asyncio.to_thread(self._leave, c, n.id)
            self.svc.store.delete_attachment(c.id, n.id)
        self.svc.publish_container_event("disconnect", n, c.id)
        return n



def _next_ifname(atts: list[Attachment]) -> str:
    used = {a.endpoint.ifname for a in atts if a.endpoint is not None}
    i = 0
    while f"eth{i}" in used:
        i += 1
    return f"eth{i}"
