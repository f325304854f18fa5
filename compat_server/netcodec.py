"""Docker JSON of networks and of containers' network settings, from the engine's network service."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from engine.errors import InvalidParameter
from engine.network.service import BRIDGE_OPT, NetworkService
from engine.network.types import Endpoint, EndpointSettings, Network, PortBinding
from engine.types import Container

from . import versions


def _visible_options(n: Network) -> dict[str, str]:
    if n.predefined:
        return dict(n.options)
    return {k: v for k, v in n.options.items() if not (k == BRIDGE_OPT and v == "br-" + n.id[:12])}


def encode_network(n: Network, svc: NetworkService, version: str,
                   container_name: Callable[[str], str] | None = None) -> dict[str, Any]:
    """``container_name`` given: with the ``Containers`` of its live endpoints (inspect)."""
    ipam_cfg = []
    for c in n.ipam:
        item: dict[str, Any] = {"Subnet": c.subnet}
        if c.ip_range:
            item["IPRange"] = c.ip_range
        if c.gateway:
            item["Gateway"] = c.gateway
        if c.aux_addresses:
            item["AuxiliaryAddresses"] = dict(c.aux_addresses)
        ipam_cfg.append(item)
    out: dict[str, Any] = {
        "Name": n.name, "Id": n.id, "Created": n.created, "Scope": n.scope, "Driver": n.driver,
    }
    if versions.at_least(version, "1.47"):
        out["EnableIPv4"] = n.enable_ipv4
    out.update({
        "EnableIPv6": n.enable_ipv6,
        "IPAM": {"Driver": n.ipam_driver, "Options": dict(n.ipam_options) if n.ipam_options or not n.predefined
                 else None, "Config": ipam_cfg},
        "Internal": n.internal, "Attachable": n.attachable, "Ingress": n.ingress,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": {},
        "Options": _visible_options(n), "Labels": dict(n.labels),
    })
    if container_name is not None:
        for cid, _, ep in svc.containers_on(n.id):
            if ep is None:
                continue
            out["Containers"][cid] = {"Name": container_name(cid), "EndpointID": ep.id, "MacAddress": ep.mac,
                                      "IPv4Address": ep.ipv4, "IPv6Address": ep.ipv6}
    return out


# ------------------------------------------------------------------ list filters
_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")


def filter_networks(nets: list[Network], svc: NetworkService, flt: dict[str, list[str]]) -> list[Network]:
    for key in flt:
        if key not in _FILTERS:
            raise InvalidParameter(f"invalid filter '{key}'")
    for value in flt.get("type", []):
        if value not in ("custom", "builtin"):
            raise InvalidParameter(f"invalid filter: 'type'='{value}'")
    for value in flt.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidParameter(f'invalid filter \'dangling={value}\'')
    out = []
    for n in nets:
        if flt.get("driver") and not any(_match(v, n.driver) for v in flt["driver"]):
            continue
        if flt.get("name") and not any(_match(v, n.name) for v in flt["name"]):
            continue
        if flt.get("id") and not any(_match(v, n.id) for v in flt["id"]):
            continue
        if flt.get("scope") and n.scope not in flt["scope"]:
            continue
        if flt.get("type"):
            kind = "builtin" if n.predefined else "custom"
            if kind not in flt["type"]:
                continue
        if flt.get("label") and not all(label_match(n.labels, e) for e in flt["label"]):
            continue
        if flt.get("dangling"):
            want = flt["dangling"][-1].lower() in ("true", "1")
            dangling = not n.predefined and not svc.in_use(n)
            if dangling != want:
                continue
        out.append(n)
    return out


def _match(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return False


def label_match(labels: dict[str, str], expr: str) -> bool:
    key, sep, value = expr.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value


# ------------------------------------------------------- container network settings
def _entry(n: Network, s: EndpointSettings, ep: Endpoint | None, c: Container, version: str) -> dict[str, Any]:
    ipam_cfg: dict[str, Any] | None = None
    if s.ipv4_address or s.ipv6_address or s.link_local_ips:
        ipam_cfg = {}
        if s.ipv4_address:
            ipam_cfg["IPv4Address"] = s.ipv4_address
        if s.ipv6_address:
            ipam_cfg["IPv6Address"] = s.ipv6_address
        if s.link_local_ips:
            ipam_cfg["LinkLocalIPs"] = list(s.link_local_ips)
    user_net = not n.predefined
    aliases = list(s.aliases) or None
    dns_names = None
    if user_net and ep is not None:
        dns_names = [c.name, c.id[:12], *s.aliases]
        if not versions.at_least(version, "1.45"):
            # older API versions list the short id among the aliases
            aliases = [*(s.aliases), c.id[:12]]
    v4, _, plen = (ep.ipv4 if ep else "").partition("/")
    v6, _, plen6 = (ep.ipv6 if ep else "").partition("/")
    out: dict[str, Any] = {
        "IPAMConfig": ipam_cfg, "Links": list(s.links) or None, "Aliases": aliases,
        "MacAddress": ep.mac if ep else "", "DriverOpts": dict(s.driver_opts) or None,
        "GwPriority": s.gw_priority,
        "NetworkID": n.id, "EndpointID": ep.id if ep else "", "Gateway": ep.gateway if ep else "",
        "IPAddress": v4, "IPPrefixLen": int(plen or 0), "IPv6Gateway": ep.gateway6 if ep else "",
        "GlobalIPv6Address": v6, "GlobalIPv6PrefixLen": int(plen6 or 0), "DNSNames": dns_names,
    }
    if not versions.at_least(version, "1.48"):
        out.pop("GwPriority")
    if not versions.at_least(version, "1.44"):
        out.pop("DNSNames")
    return out


def networks_of(c: Container, svc: NetworkService, version: str) -> dict[str, Any]:
    mode = svc.resolve_mode(c)
    if mode.startswith("container:"):
        return {}
    if mode in ("host", "none"):
        try:
            n = svc.get(mode)
        except Exception:  # noqa: BLE001
            return {}
        return {n.name: _entry(n, EndpointSettings(), None, c, version)}
    return {a.network.name: _entry(a.network, a.settings, a.endpoint if c.state.running else None, c, version)
            for a in svc.attachments(c.id)}


def _ports_map(c: Container, bindings: list[PortBinding]) -> dict[str, Any]:
    ports: dict[str, Any] = {}
    for p in c.config.exposed_ports:
        ports.setdefault(p if "/" in p else p + "/tcp", None)
    for b in bindings:
        key = f"{b.container_port}/{b.proto}"
        if ports.get(key) is None:
            ports[key] = []
        ports[key].append({"HostIp": b.host_ip, "HostPort": str(b.host_port)})
    return ports


def fill_inspect(out: dict[str, Any], c: Container, svc: NetworkService, version: str) -> None:
    if isinstance(out.get("HostConfig"), dict):
        out["HostConfig"]["Links"] = svc.links_shown(c) or None
    ns = out.setdefault("NetworkSettings", {})
    ns["Networks"] = networks_of(c, svc, version)
    running = c.state.running
    mode = svc.resolve_mode(c)
    own_ns = running and not mode.startswith("container:") and mode not in ("host",)
    ns["SandboxID"] = hashlib.sha256(("sandbox:" + c.id).encode()).hexdigest() if running else ""
    ns["SandboxKey"] = str(svc.ns_path(c)) if own_ns and mode != "none" else ""
    ns["Ports"] = _ports_map(c, svc.published(c.id)) if running and mode not in ("host", "none") \
        and not mode.startswith("container:") else {}
    default = ns["Networks"].get("bridge") if mode == "bridge" else None
    if default is not None:
        for key in ("EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress", "IPPrefixLen",
                    "IPv6Gateway", "MacAddress"):
            if key in ns:
                ns[key] = default[key]


def summary_ports(c: Container, svc: NetworkService) -> list[dict[str, Any]]:
    """`Ports` of GET /containers/json: every binding, then exposed ports without one."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    if c.state.running:
        for b in svc.published(c.id):
            out.append({"IP": b.host_ip, "PrivatePort": b.container_port, "PublicPort": b.host_port,
                        "Type": b.proto})
            seen.add(f"{b.container_port}/{b.proto}")
    for p in c.config.exposed_ports:
        port, _, proto = p.partition("/")
        proto = proto or "tcp"
        if f"{port}/{proto}" not in seen and port.isdigit():
            out.append({"PrivatePort": int(port), "Type": proto})
    return out


def fill_summary(s: dict[str, Any], c: Container, svc: NetworkService, version: str) -> None:
    s["Ports"] = summary_ports(c, svc)
    s.setdefault("NetworkSettings", {})["Networks"] = networks_of(c, svc, version)
