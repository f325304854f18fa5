"""The network service: networks (bridge/host/null), their addresses, and containers' endpoints.

Networks and the containers' attachments to them live in the SQLite store
(store.py).  A running container's endpoints (veth, addresses, published
ports) are made by ``setup_sandbox`` before its process starts and undone by
``teardown_sandbox``, its mirror image, which may run any number of times.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import timeutil
from ..config import Config
from ..errors import (
    Conflict,
    EngineError,
    Forbidden,
    InvalidParameter,
    NotFound,
    NotImplementedYet,
    Unavailable,
)
from ..state import Database
from ..types import Container
from . import ipam, netlink, netns
from .firewall import Firewall, NetworkRules
from .ports import PortPublisher
from .store import NetworkStore
from .types import Endpoint, EndpointSettings, IPAMConfig, Network, PortBinding

log = logging.getLogger(__name__)

BRIDGE_OPT = "com.docker.network.bridge.name"
PREDEFINED = ("bridge", "host", "none")
# drivers dockerd knows but this daemon does not run (yet): dockerd's words for a missing plugin
_UNAVAILABLE_DRIVERS = ("overlay", "macvlan", "ipvlan")


def _new_id() -> str:
    return secrets.token_hex(32)


@dataclass
class Attachment:
    network: Network
    settings: EndpointSettings
    endpoint: Endpoint | None
    seq: int


class NetworkService:
    def __init__(self, config: Config, db: Database, publish: Callable[[str, str, dict[str, str]], None],
                 firewall: Firewall) -> None:
        self.config = config
        self.store = NetworkStore(db)
        self._publish = publish
        self.firewall = firewall
        self.ports = PortPublisher(firewall, userland_proxy=config.userland_proxy)
        self._networks: dict[str, Network] = {n.id: n for n in self.store.load_networks()}
        self._lock = asyncio.Lock()
        self.netns_root = config.exec_root / "netns"
        self.dns: Any = None    # the embedded DNS server (contributor.py sets it)
        self.pools: list[ipam.AddressPool] = [p for p in config.default_address_pools
                                            if isinstance(p, ipam.AddressPool)] or list(ipam.DEFAULT_POOLS)

    # ------------------------------------------------------------- lifecycle
    def open_sync(self) -> None:
        """Predefined networks and the bridges of the known networks (blocking: daemon start)."""
        self.netns_root.mkdir(parents=True, exist_ok=True)
        self.firewall.setup()
        have = {n.name: n for n in self._networks.values() if n.predefined}
        for name, driver in (("host", "host"), ("none", "null")):
            if name not in have:
                self._add(Network(id=_new_id(), name=name, driver=driver, created=timeutil.now(), predefined=True))
        if self.config.bridge != "none":
            self._ensure_default_bridge(have.get("bridge"))
        elif "bridge" in have:
            self._networks.pop(have["bridge"].id, None)
            self.store.delete_network(have["bridge"].id)
        for n in self._networks.values():
            if n.driver == "bridge":
                self._bring_up(n)

    def _ensure_default_bridge(self, old: Network | None) -> None:
        bip = self.config.bip
        if bip:
            iface = ipaddress.ip_interface(bip)
            cfg = IPAMConfig(subnet=str(iface.network), gateway=str(iface.ip))
        else:
            addrs = [a for a in netlink.bridge_addresses(self.config.bridge) if ":" not in a]
            if addrs:
                iface = ipaddress.ip_interface(addrs[0])
                cfg = IPAMConfig(subnet=str(iface.network), gateway=str(iface.ip))
            else:
                net = ipam.next_pool(self.pools, self._host_networks())
                cfg = ipam.make_config(str(net))
        if self.config.fixed_cidr:
            cfg = replace(cfg, ip_range=str(ipam.parse_subnet(self.config.fixed_cidr)))
        options = {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "true" if self.config.icc else "false",
            "com.docker.network.bridge.enable_ip_masquerade": "true" if self.config.ip_masq else "false",
            "com.docker.network.bridge.host_binding_ipv4": self.config.default_ip or "0.0.0.0",
            BRIDGE_OPT: self.config.bridge,
            "com.docker.network.driver.mtu": str(self.config.mtu or 1500),
        }
        n = Network(id=old.id if old else _new_id(), name="bridge", driver="bridge",
                    created=old.created if old else timeutil.now(), ipam=(cfg,), options=options,
                    predefined=True)
        self._add(n)

    def _host_networks(self) -> list[ipam.IPNetwork]:
        out: list[ipam.IPNetwork] = []
        for n in self._networks.values():
            out += [ipam.parse_subnet(c.subnet) for c in n.ipam]
        return out

    def _add(self, n: Network) -> None:
        self._networks[n.id] = n
        self.store.save_network(n)

    def _rules(self, n: Network) -> NetworkRules:
        return NetworkRules(
            bridge=n.bridge_name, subnets=tuple(c.subnet for c in n.ipam if ":" not in c.subnet),
            internal=n.internal,
            masquerade=n.opt_bool("com.docker.network.bridge.enable_ip_masquerade", True) and self.config.ip_masq,
            icc=n.opt_bool("com.docker.network.bridge.enable_icc", True))

    def _bring_up(self, n: Network) -> None:
        gateways = [f"{c.gateway}/{ipam.parse_subnet(c.subnet).prefixlen}" for c in n.ipam if c.gateway]
        netlink.ensure_bridge(n.bridge_name, gateways, n.mtu)
        if self.config.iptables and not n.internal:
            # DNAT of host-originated traffic to 127.0.0.1 (see firewall.py)
            netlink.set_sysctl(f"net/ipv4/conf/{n.bridge_name}/route_localnet", "1")
        self.firewall.add_network(self._rules(n))

    def _tear_down(self, n: Network) -> None:
        self.firewall.remove_network(self._rules(n))
        if not n.is_default_bridge:
            netlink.delete_bridge(n.bridge_name)

    # --------------------------------------------------------------- lookup
    def networks(self) -> list[Network]:
        return sorted(self._networks.values(), key=lambda n: n.created)

    def get(self, ref: str) -> Network:
        """dockerd's order: full id, then exact name, then a unique id prefix."""
        if ref in self._networks:
            return self._networks[ref]
        by_name = [n for n in self._networks.values() if n.name == ref]
        if by_name:
            return by_name[0]
        prefixed = [n for n in self._networks.values() if n.id.startswith(ref)] if ref else []
        if len(prefixed) == 1:
            return prefixed[0]
        if len(prefixed) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(prefixed)} matches found on name)")
        raise NotFound(f"network {ref} not found")

    def default_network_name(self) -> str:
        return "bridge" if self.config.bridge != "none" else "none"

    def attachments(self, container_id: str) -> list[Attachment]:
        out = []
        for cid, nid, seq, settings, ep in self.store.attachments():
            if cid == container_id and nid in self._networks:
                out.append(Attachment(self._networks[nid], settings, ep, seq))
        return out

    def containers_on(self, network_id: str) -> list[tuple[str, EndpointSettings, Endpoint | None]]:
        return [(cid, s, ep) for cid, nid, _, s, ep in self.store.attachments() if nid == network_id]

    def published(self, container_id: str) -> list[PortBinding]:
        return self.store.ports(container_id)

    # --------------------------------------------------------------- create
    async def create(self, name: str, driver: str = "bridge", *, internal: bool = False, attachable: bool = False,
                     enable_ipv6: bool = False, ipam_driver: str = "default",
                     ipam_configs: Iterable[dict[str, Any]] = (),
                     ipam_options: dict[str, str] | None = None, options: dict[str, str] | None = None,
                     labels: dict[str, str] | None = None) -> Network:
        driver = driver or "bridge"
        ipam_configs = list(ipam_configs)
        if not name:
            raise InvalidParameter(f"invalid name: {name}")
        async with self._lock:
            if name in PREDEFINED:
                raise Forbidden(f"operation is not permitted on predefined {name} network ")
            if any(n.name == name for n in self._networks.values()):
                raise Conflict(f"network with name {name} already exists")
            if driver in ("host", "null"):
                raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
            if driver == "overlay":
                raise Unavailable('This node is not a swarm manager. Use "docker swarm init" or '
                                  '"docker swarm join" to connect this node to swarm and try again.')
            if driver in _UNAVAILABLE_DRIVERS:
                raise NotImplementedYet(f"network driver {driver!r} is not supported by pydockerd yet")
            if driver != "bridge":
                raise NotFound(f"plugin \"{driver}\" not found")
            if ipam_driver not in ("", "default"):
                raise NotFound(f"plugin \"{ipam_driver}\" not found")
            configs = self._ipam_configs(ipam_configs, enable_ipv6)
            auto = not any(":" not in (item.get("Subnet") or ":") for item in ipam_configs)
            nid = _new_id()
            opts = dict(options or {})
            opts.setdefault(BRIDGE_OPT, "br-" + nid[:12])
            if len(opts[BRIDGE_OPT]) > 15:
                raise InvalidParameter(f"bridge name {opts[BRIDGE_OPT]!r} is too long (15 characters at most)")
            if any(n.bridge_name == opts[BRIDGE_OPT] for n in self._networks.values()):
                raise Conflict(f"bridge name {opts[BRIDGE_OPT]} is already in use")
            n = Network(id=nid, name=name, driver=driver, created=timeutil.now(), internal=internal,
                        attachable=attachable, enable_ipv6=enable_ipv6, ipam_driver="default",
                        ipam_options=dict(ipam_options or {}), ipam=tuple(configs), options=opts,
                        labels=dict(labels or {}), auto_subnet=auto)
            try:
                await asyncio.to_thread(self._bring_up, n)
            except BaseException:
                await asyncio.to_thread(self._tear_down, n)
                raise
            self._add(n)
        self._publish("create", n.id, {"name": n.name, "type": n.driver})
        return n

    def _ipam_configs(self, raw: list[dict[str, Any]], ipv6: bool) -> list[IPAMConfig]:
        used = self._host_networks()
        out: list[IPAMConfig] = []
        for item in raw:
            subnet = item.get("Subnet") or ""
            if not subnet:
                if item.get("Gateway") or item.get("IPRange"):
                    raise InvalidParameter("invalid pool request: pool subnet is required when gateway or "
                                           "ip-range is given")
                continue
            cfg = ipam.make_config(subnet, item.get("Gateway") or "", item.get("IPRange") or "",
                                   dict(item.get("AuxiliaryAddresses") or item.get("AuxAddress") or {}))
            net = ipam.parse_subnet(cfg.subnet)
            if net.version == 6 and not ipv6:
                raise Forbidden("IPv6 subnets require --ipv6")
            if any(ipam.overlaps(net, u) for u in used + [ipam.parse_subnet(c.subnet) for c in out]):
                raise Forbidden("Pool overlaps with other one on this address space")
            out.append(cfg)
        if not any(":" not in c.subnet for c in out):
            out.insert(0, ipam.make_config(str(ipam.next_pool(self.pools, used + [
                ipam.parse_subnet(c.subnet) for c in out]))))
        return out

    # --------------------------------------------------------------- remove
    async def remove(self, ref: str) -> None:
        async with self._lock:
            n = self.get(ref)
            if n.predefined:
                raise Forbidden(f"{n.name} is a pre-defined network and cannot be removed")
            users = [cid for cid, _, ep in self.containers_on(n.id) if ep is not None]
            if users:
                raise Forbidden(f"error while removing network: network {n.name} id {n.id} has active endpoints")
            await asyncio.to_thread(self._tear_down, n)
            for cid, _, _ in self.containers_on(n.id):
                self.store.delete_attachment(cid, n.id)
            self._networks.pop(n.id, None)
            self.store.delete_network(n.id)
        self._publish("destroy", n.id, {"name": n.name, "type": n.driver})

    def in_use(self, n: Network) -> bool:
        return bool(self.containers_on(n.id))

    def in_use_live(self, n: Network) -> bool:
        """Has endpoints of running containers (what blocks rm and prune, as in dockerd)."""
        return any(ep is not None for _, _, ep in self.containers_on(n.id))

    # ----------------------------------------------- container attachments
    def resolve_mode(self, c: Container) -> str:
        """"bridge" / "host" / "none" / "container:<ref>" / a user network's id."""
        mode = c.host_config.network_mode or "default"
        if mode == "default":
            return self.default_network_name()
        return mode

    def record_create(self, c: Container) -> None:
        """At container create: check the networks exist and remember the container's attachments."""
        mode = self.resolve_mode(c)
        if mode in ("host", "none") or mode.startswith("container:"):
            return
        try:
            primary = self.get(mode)
        except NotFound:
            return      # like dockerd: refused when the container starts ("network X not found")
        settings_by_net: dict[str, EndpointSettings] = {}
        for ref, s in c.host_config.endpoints:
            # the CLI names the mode it was given ("default" included) as the endpoint's key
            net = primary if ref in ("default", c.host_config.network_mode) else self.get(ref)
            settings_by_net[net.id] = s
        s0 = settings_by_net.pop(primary.id, EndpointSettings())
        self._check_settings(primary, s0)
        todo = [(primary, s0)] + [(self._networks[nid], s) for nid, s in settings_by_net.items()]
        for seq, (net, s) in enumerate(todo):
            self.store.put_attachment(c.id, net.id, seq, s, None)

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
        self.store.delete_attachment(c.id)

    def ns_path(self, c: Container) -> Path:
        return self.netns_root / c.id[:12]

    # ---------------------------------------------------- running containers
    def setup_sandbox(self, c: Container, name: str) -> list[Endpoint]:
        """Blocking: the netns and one endpoint per attached network (in attach order)."""
        mode = self.resolve_mode(c)
        self.get(mode)               # network X not found (removed since, or never there)
        if not self.attachments(c.id):
            self.record_create(c)
        path = self.ns_path(c)
        netns.remove(path)           # a stale one of a run that was never settled
        netns.create(path)
        endpoints = []
        atts = self.attachments(c.id)
        if not atts:
            netlink.loopback_up(path)      # (attach brings it up with the first interface)
        for i, att in enumerate(atts):
            endpoints.append(self._join(c, path, att, f"eth{i}", first=i == 0))
        return endpoints

    def _join(self, c: Container, path: Path, att: Attachment, ifname: str, *, first: bool) -> Endpoint:
        n = att.network
        s = att.settings
        ep = Endpoint(id=_new_id(), network_id=n.id, container_id=c.id, ifname=ifname,
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
            self.store.put_attachment(c.id, n.id, att.seq, s, ep)
        self.store.put_attachment(c.id, n.id, att.seq, s, ep)
        netlink.attach(path, netlink.Attachment(
            bridge=n.bridge_name, host_ifname=ep.host_ifname, ifname=ifname, mac=ep.mac,
            addresses=tuple(addrs), gateways=tuple(gws) if first else (), mtu=n.mtu))
        return ep

    def _allocate(self, n: Network, cfg: IPAMConfig, cid: str, static: str) -> ipam.IPAddress:
        taken = {ipaddress.ip_address(a) for a in self.store.addresses(n.id)}
        if static:
            ip = ipam.check_static(cfg, static, taken)
            if not self.store.take_address(n.id, str(ip), cid):
                raise InvalidParameter("Address already in use")
            return ip
        for _ in range(64):
            ip = ipam.pick_address(cfg, taken)
            if self.store.take_address(n.id, str(ip), cid):
                return ip
            taken.add(ip)
        raise EngineError(f"could not allocate an address on network {n.name}")

    def teardown_sandbox(self, c: Container) -> None:
        """Blocking, idempotent: veths, addresses, the netns file.

        While the namespace exists, unmounting it is enough: with its last user gone the kernel
        destroys it, and the veth pairs in it, in the background (deleting each veth here would
        add ~20 ms to every stop).  Without it (a half-done state), veths are deleted one by one."""
        path = self.ns_path(c)
        had_ns = netns.is_mounted(path)
        netns.remove(path)
        for att in self.attachments(c.id):
            if att.endpoint is not None:
                if not had_ns:
                    netlink.detach(att.endpoint.host_ifname)
                self.store.put_attachment(c.id, att.network.id, att.seq, att.settings, None)
        self.store.release_addresses(c.id)

    # ---------------------------------------------------- connect/disconnect
    async def connect(self, c: Container, ref: str, s: EndpointSettings, *, running: bool) -> Network:
        async with self._lock:
            n = self.get(ref)
            mode = self.resolve_mode(c)
            if mode == "host" or n.name == "host" or n.driver == "host":
                raise Forbidden("container cannot be disconnected from host network or connected to host "
                                "network")
            if mode.startswith("container:"):
                raise Forbidden("container sharing network namespace with another container or host cannot be "
                                "connected to any other network")
            if mode == "none" or n.driver == "null":
                raise Forbidden("container cannot be connected to multiple networks with one of the networks "
                                "in private (none) mode")
            atts = self.attachments(c.id)
            if any(a.network.id == n.id for a in atts):
                raise Forbidden(f"endpoint with name {c.name} already exists in network {n.name}")
            self._check_settings(n, s)
            seq = max((a.seq for a in atts), default=-1) + 1
            self.store.put_attachment(c.id, n.id, seq, s, None)
            if running:
                att = Attachment(n, s, None, seq)
                try:
                    await asyncio.to_thread(self._join, c, self.ns_path(c), att, _next_ifname(atts), first=False)
                    if not n.predefined and self.dns is not None:
                        await self.dns.serve(c.id, self.ns_path(c))
                except BaseException:
                    await asyncio.to_thread(self._leave, c, n.id)
                    self.store.delete_attachment(c.id, n.id)
                    raise
        self._publish("connect", n.id, {"container": c.id, "name": n.name, "type": n.driver})
        return n

    def _leave(self, c: Container, nid: str) -> None:
        for att in self.attachments(c.id):
            if att.network.id == nid and att.endpoint is not None:
                netlink.detach(att.endpoint.host_ifname)
        self.store.release_addresses(c.id, nid)

    async def disconnect(self, c: Container, ref: str, *, force: bool) -> Network:
        async with self._lock:
            n = self.get(ref)
            if n.driver == "host" and self.resolve_mode(c) == "host":
                raise Forbidden("container cannot be disconnected from host network or connected to host "
                                "network")
            atts = self.attachments(c.id)
            if not any(a.network.id == n.id for a in atts):
                raise Forbidden(f"container {c.id} is not connected to network {n.name}")
            await asyncio.to_thread(self._leave, c, n.id)
            self.store.delete_attachment(c.id, n.id)
        self._publish("disconnect", n.id, {"container": c.id, "name": n.name, "type": n.driver})
        return n

    # -------------------------------------------------------------- events
    def publish_container_event(self, action: str, n: Network, cid: str) -> None:
        self._publish(action, n.id, {"container": cid, "name": n.name, "type": n.driver})


def _next_ifname(atts: list[Attachment]) -> str:
    used = {a.endpoint.ifname for a in atts if a.endpoint is not None}
    i = 0
    while f"eth{i}" in used:
        i += 1
    return f"eth{i}"
