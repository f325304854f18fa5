"""Network domain types (frozen; the HTTP layer builds Docker's JSON from them)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..types import EndpointConfig


@dataclass(frozen=True)
class IPAMConfig:
    subnet: str                          # "10.1.0.0/24" (network form)
    gateway: str = ""                    # "10.1.0.1" ("" for the null/host drivers)
    ip_range: str = ""
    aux_addresses: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    driver: str                          # "bridge", "host", "null"
    created: str
    scope: str = "local"
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    enable_ipv4: bool = True
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    ipam_options: dict[str, str] = field(default_factory=dict)
    ipam: tuple[IPAMConfig, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    predefined: bool = False             # bridge/host/none: never deletable
    auto_subnet: bool = False            # the IPv4 subnet came from the default pools (no static --ip)

    @property
    def bridge_name(self) -> str:
        return self.options.get("com.docker.network.bridge.name", "")

    @property
    def is_default_bridge(self) -> bool:
        return self.options.get("com.docker.network.bridge.default_bridge") == "true"

    def opt_bool(self, key: str, default: bool) -> bool:
        v = self.options.get(key)
        if v is None:
            return default
        return v.lower() in ("1", "t", "true")

    @property
    def mtu(self) -> int:
        try:
            return int(self.options.get("com.docker.network.driver.mtu", "0")) or 1500
        except ValueError:
            return 1500


EndpointSettings = EndpointConfig


@dataclass(frozen=True)
class Endpoint:
    """A live connection of a running container to a network."""

    id: str
    network_id: str
    container_id: str
    ifname: str = ""
    host_ifname: str = ""
    mac: str = ""
    ipv4: str = ""                       # "ip/prefix" or ""
    ipv6: str = ""
    gateway: str = ""
    gateway6: str = ""


@dataclass(frozen=True)
class PortBinding:
    """One published port: container_port/proto -> host_ip:host_port."""

    container_port: int
    proto: str
    host_ip: str
    host_port: int


@dataclass(frozen=True)
class Link:
    """A legacy link (--link child:alias) of a parent container, kept by the child's id like dockerd's
    link graph: it follows a rename of the child and outlives its removal (then shown by its last name)."""

    alias: str
    child_id: str
    child_name: str
