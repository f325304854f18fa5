"""The network service: networks (bridge/host/null), their bridges and rules, lookup, create/remove.

Networks and the containers' attachments to them live in the SQLite store
(store.py); a container's side of it (netns, veths, addresses, connect and
disconnect) is endpoints.py's, reached as ``NetworkService.endpoints``.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import timeutil
from ..config import Config
from ..errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    NotImplementedYet,
    Unavailable,
)
from ..state import Database
from ..types import Container
from . import ipam, netlink
from .endpoints import Attachment, Endpoints
from .firewall import Firewall, NetworkRules
from .ports import PortPublisher
from .store import NetworkStore
from .types import Endpoint, EndpointSettings, IPAMConfig, Link, Network, PortBinding

log = logging.getLogger(__name__)

BRIDGE_OPT = "com.docker.network.bridge.name"
PREDEFINED = ("bridge", "host", "none")
# drivers dockerd knows but this daemon does not run (yet): dockerd's words for a missing plugin
_UNAVAILABLE_DRIVERS = ("overlay", "macvlan", "ipvlan")


def split_link(link: str) -> tuple[str, str]:
    """"name:alias" (or "/name:/parent/alias", or "name") -> (name, alias)."""
    name, _, alias = link.partition(":")
    name = name.lstrip("/")
    alias = alias.rsplit("/", 1)[-1] if alias else name
    return name, alias


def _new_id() -> str:
    return secrets.token_hex(32)


class NetworkService:
    def __init__(self, config: Config, db: Database, publish: Callable[[str, str, dict[str, str]], None],
                 firewall: Firewall) -> None:
        self.config = config
        self.store = NetworkStore(db)
        self._publish = publish
        self.firewall = firewall
        self.ports = PortPublisher(firewall, userland_proxy=config.userland_proxy)
        self._networks: dict[str, Network] = {n.id: n for n in self.store.load_networks()}
        self.lock = asyncio.Lock()
        self.netns_root = config.exec_root / "netns"
        self.dns: Any = None    # the embedded DNS server (contributor.py sets it)
        self.endpoints = Endpoints(self)
        # a container's current name by id, None when it is gone (contributor.py sets it)
        self.container_name: Callable[[str], str | None] = lambda cid: None
        self._made_bridges: set[str] = set()   # bridges this run created (a given -b bridge is the admin's)
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
        configs = [cfg]
        if self.config.ipv6 and self.config.fixed_cidr_v6:     # --ipv6 --fixed-cidr-v6
            configs.append(ipam.make_config(str(ipam.parse_subnet(self.config.fixed_cidr_v6))))
        n = Network(id=old.id if old else _new_id(), name="bridge", driver="bridge",
                    created=old.created if old else timeutil.now(), ipam=tuple(configs), options=options,
                    predefined=True, enable_ipv6=self.config.ipv6)
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
            bridge=n.bridge_name, subnets=tuple(c.subnet for c in n.ipam if ":" not in c.subnet or n.enable_ipv6),
            internal=n.internal,
            masquerade=n.opt_bool("com.docker.network.bridge.enable_ip_masquerade", True) and self.config.ip_masq,
            icc=n.opt_bool("com.docker.network.bridge.enable_icc", True))

    def _bring_up(self, n: Network) -> None:
        gateways = [f"{c.gateway}/{ipam.parse_subnet(c.subnet).prefixlen}" for c in n.ipam if c.gateway]
        if not netlink.link_exists(n.bridge_name):
            self._made_bridges.add(n.bridge_name)
        netlink.ensure_bridge(n.bridge_name, gateways, n.mtu)
        if self.config.iptables and not n.internal:
            # DNAT of host-originated traffic to 127.0.0.1 (see firewall.py)
            netlink.set_sysctl(f"net/ipv4/conf/{n.bridge_name}/route_localnet", "1")
        rules = self._rules(n)
        if self.config.iptables and not rules.icc:
            # icc=false drops bridged frames in FORWARD: only seen by iptables through br_netfilter
            netlink.bridge_netfilter(ipv6=n.enable_ipv6)
        self.firewall.add_network(rules)

    def _tear_down(self, n: Network) -> None:
        self.firewall.remove_network(self._rules(n))
        if not n.is_default_bridge:
            netlink.delete_bridge(n.bridge_name)

    def shutdown_sync(self, *, anything_running: bool) -> None:
        """Graceful daemon stop.  With no container left running nothing needs the rules or the
        bridges: they are removed (and made again at the next start), so a stopped daemon leaves
        nothing behind.  With live containers (live restore) everything stays for them."""
        if anything_running:
            return
        for n in self._networks.values():
            if n.driver != "bridge":
                continue
            self.firewall.remove_network(self._rules(n))
            if not n.is_default_bridge or n.bridge_name in self._made_bridges:
                netlink.delete_bridge(n.bridge_name)
        self.firewall.teardown()

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

    def links(self, c: Container) -> list[Link]:
        """The container's legacy links (recorded at create; a container of an older store: by name)."""
        recorded = self.store.links(c.id)
        if recorded is not None:
            return recorded
        return [Link(alias=alias, child_id="", child_name=name) for name, alias in map(split_link, c.host_config.links)]

    def remove_link(self, parent: Container, alias: str) -> bool:
        """``docker rm --link /parent/alias``: False when the parent has no such link, or its child is
        gone (dockerd finds a link by its name, which goes with the child)."""
        links = self.links(parent)
        if not any(link.alias == alias and self.container_name(link.child_id) for link in links):
            return False
        self.store.set_links(parent.id, [link for link in links if link.alias != alias])
        return True

    def links_shown(self, c: Container) -> list[str]:
        """HostConfig.Links as dockerd shows them: "/<child>:/<parent>/<alias>", the child by its current name."""
        return [f"/{self.container_name(link.child_id) or link.child_name}:/{c.name}/{link.alias}"
                for link in self.links(c)]

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
        async with self.lock:
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
        async with self.lock:
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
        if c.config.network_disabled:
            return "none"
        if mode == "default":
            return self.default_network_name()
        return mode

    def ns_path(self, c: Container) -> Path:
        return self.netns_root / c.id[:12]

    # -------------------------------------------------------------- events
    def publish_container_event(self, action: str, n: Network, cid: str) -> None:
        self._publish(action, n.id, {"container": cid, "name": n.name, "type": n.driver})
