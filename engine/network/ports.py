"""Published ports: parsing/validation of port specs, host port allocation, DNAT rules + userland proxy.

dockerd's two paths: a DNAT rule per binding (traffic from outside and from
other containers to a host address) and the userland proxy, listening on the
host address itself, for traffic the kernel never routes to a bridge (to
127.0.0.1).  The proxy's listening socket is bound first: it is also what
tells us a host port is taken by something else.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
from pathlib import Path

from ..errors import EngineError, InvalidParameter
from .firewall import Firewall, PortRule
from .proxy import Proxy, bind_socket
from .types import PortBinding

log = logging.getLogger(__name__)

PROTOCOLS = ("tcp", "udp", "sctp")


def split_proto_port(spec: str) -> tuple[str, str]:
    """"80/tcp" -> ("tcp", "80"); "80" -> ("tcp", "80") (Go's nat.SplitProtoPort)."""
    port, _, proto = spec.partition("/")
    return (proto or "tcp").lower(), port


def parse_port_range(value: str) -> tuple[int, int]:
    """"8000" or "8000-8010" (nat.ParsePortRange): ValueError when invalid."""
    if not value:
        raise ValueError("empty string specified for ports")
    start_s, sep, end_s = value.partition("-")
    start = _uint16(start_s)
    end = _uint16(end_s) if sep else start
    if end < start:
        raise ValueError("invalid range specified for the Port")
    return start, end


def _uint16(s: str) -> int:
    if not s.isdigit():
        raise ValueError(f"invalid port {s!r}")
    v = int(s)
    if v > 65535:
        raise ValueError(f"invalid port {s!r}")
    return v


def validate_port_bindings(bindings: dict[str, list[tuple[str, str]]]) -> None:
    """dockerd's create-time checks of HostConfig.PortBindings (keys, then host ports)."""
    for key, items in bindings.items():
        _, port = split_proto_port(key)
        try:
            _uint16(port)       # a single port: a range is no key (nat.ParsePort)
        except ValueError:
            raise InvalidParameter(f'invalid port specification: "{port}"') from None
        for _, host_port in items:
            _, hp = split_proto_port(host_port)
            if hp == "":
                continue
            try:
                parse_port_range(hp)
            except ValueError:
                raise InvalidParameter(f'invalid port specification: "{host_port}"') from None


def local_port_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in path.read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


class PortPublisher:
    def __init__(self, firewall: Firewall, *, userland_proxy: bool = True) -> None:
        self.firewall = firewall
        self.userland_proxy = userland_proxy
        self._proxies: dict[str, list[Proxy]] = {}
        self._rules: dict[str, list[PortRule]] = {}
        self._allocated: dict[tuple[str, str, int], str] = {}   # (proto, host ip, port) -> container id
        self._next_ephemeral = 0

    def _family_ips(self, host_ip: str) -> list[str]:
        if host_ip in ("", "0.0.0.0"):
            return ["0.0.0.0", "::"] if socket.has_ipv6 and _ipv6_enabled() else ["0.0.0.0"]
        return [host_ip]

    async def publish(self, cid: str, endpoint_name: str, bridge: str, container_ip: str,
                      wanted: list[tuple[int, str, str, str]], container_ip6: str = "") -> list[PortBinding]:
        """``wanted``: (container port, proto, host ip, host port spec); "" host port = ephemeral.
        IPv6 host addresses are DNATed to ``container_ip6`` when the container has one (the proxy
        serves them otherwise, and always serves ::1).

        Either every binding is made, or none is left behind (EngineError)."""
        made: list[PortBinding] = []
        try:
            for cport, proto, host_ip, spec in wanted:
                ips = self._family_ips(host_ip)
                port = await self._bind(cid, proto, ips, spec, cport, container_ip, endpoint_name)
                for ip in ips:
                    made.append(PortBinding(container_port=cport, proto=proto, host_ip=ip, host_port=port))
                    await self._add_rule(cid, bridge, proto, ip, port, container_ip, container_ip6, cport)
        except BaseException:
            await self.unpublish(cid)
            raise
        return made

    async def _add_rule(self, cid: str, bridge: str, proto: str, host_ip: str, host_port: int, cip: str,
                        cip6: str, cport: int) -> None:
        target = cip6 if ":" in host_ip else cip
        if not target:
            return
        rule = PortRule(bridge=bridge, proto=proto, host_ip=host_ip, host_port=host_port, container_ip=target,
                        container_port=cport)
        await asyncio.to_thread(self.firewall.add_port, rule)
        self._rules.setdefault(cid, []).append(rule)

    async def _bind(self, cid: str, proto: str, ips: list[str], spec: str, cport: int, cip: str,
                    endpoint_name: str) -> int:
        if spec:
            start, end = parse_port_range(spec)
            candidates = list(range(start, end + 1))
        else:
            lo, hi = local_port_range()
            if not self._next_ephemeral:
                self._next_ephemeral = lo
            n = hi - lo + 1
            first = self._next_ephemeral
            candidates = [lo + (first - lo + i) % n for i in range(n)]
        last_err: EngineError | None = None
        for port in candidates:
            if any((proto, ip, port) in self._allocated for ip in ips + ["0.0.0.0"]):
                last_err = EngineError(f"driver failed programming external connectivity on endpoint "
                                       f"{endpoint_name}: Bind for {ips[0]}:{port} failed: port is already "
                                       "allocated")
                continue
            try:
                proxies = await self._open(proto, ips, port, cip, cport)
            except OSError as e:
                if e.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise EngineError(f"failed to bind port {ips[0]}:{port}/{proto}: {e.strerror}") from None
                last_err = EngineError(
                    f"driver failed programming external connectivity on endpoint {endpoint_name}: "
                    f"Error starting userland proxy: listen {proto}{6 if ':' in ips[0] else 4} "
                    f"{ips[0]}:{port}: bind: address already in use")
                continue
            for ip in ips:
                self._allocated[(proto, ip, port)] = cid
            self._proxies.setdefault(cid, []).extend(proxies)
            if not spec:
                self._next_ephemeral = port + 1
            return port
        assert last_err is not None
        raise last_err

    async def _open(self, proto: str, ips: list[str], port: int, cip: str, cport: int) -> list[Proxy]:
        socks: list[socket.socket] = []
        try:
            for ip in ips:
                socks.append(bind_socket(proto if proto != "sctp" else "tcp", ip, port))
        except BaseException:
            for s in socks:
                s.close()
            raise
        proxies = [Proxy(proto, s, (cip, cport)) for s in socks]
        if self.userland_proxy:
            for p in proxies:
                await p.start()
        return proxies

    async def unpublish(self, cid: str) -> None:
        for p in self._proxies.pop(cid, []):
            try:
                await p.close()
            except Exception:
                log.exception("closing a proxy of %s", cid[:12])
        for rule in self._rules.pop(cid, []):
            await asyncio.to_thread(self.firewall.remove_port, rule)
        for key in [k for k, v in self._allocated.items() if v == cid]:
            del self._allocated[key]

    async def restore(self, cid: str, bridge: str, container_ip: str, bindings: list[PortBinding],
                      container_ip6: str = "") -> None:
        """Daemon restart: the proxies and rules of a container that kept running."""
        for b in bindings:
            if (b.proto, b.host_ip, b.host_port) in self._allocated:
                continue
            try:
                proxies = await self._open(b.proto, [b.host_ip], b.host_port, container_ip, b.container_port)
            except OSError as e:
                log.warning("re-publishing %s:%d for %s: %s", b.host_ip, b.host_port, cid[:12], e)
                proxies = []
            self._proxies.setdefault(cid, []).extend(proxies)
            self._allocated[(b.proto, b.host_ip, b.host_port)] = cid
            await self._add_rule(cid, bridge, b.proto, b.host_ip, b.host_port, container_ip, container_ip6,
                                 b.container_port)

    async def close(self) -> None:
        """Daemon shutdown: proxies stop (their sockets are the daemon's); rules stay for live containers."""
        for cid in list(self._proxies):
            for p in self._proxies.pop(cid, []):
                await p.close()


def _ipv6_enabled() -> bool:
    try:
        return Path("/proc/sys/net/ipv6/conf/all/disable_ipv6").read_text().strip() == "0"
    except OSError:
        return False
