"""Networking through the docker CLI and docker-py: published ports, user networks with DNS,
host/none/container modes, connect, internal networks, DNS forwarding, and dockerd's errors.

Every subnet is this test run's own (conformance_tests/netenv.py); traffic stays between the host
and the namespaces the tests create; the DNS upstream is a resolver the test starts itself.
"""
from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import shutil
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from conformance_tests import harness, netenv
from conformance_tests.harness import Daemon, wait_until
from conformance_tests.images import build_busybox_rootfs
from conformance_tests.util import inspect, ok, state

BUSYBOX = "busybox"
WWW = "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && "
_SUBNETS = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def http_get(port: int, host: str = "127.0.0.1", timeout: float = 2) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/index.html", timeout=timeout) as r:
        return str(r.read().decode())


def wait_http(port: int, host: str = "127.0.0.1", deadline: float = 20) -> str:
    got: list[str] = []

    def up() -> bool:
        try:
            got.append(http_get(port, host))
            return True
        except OSError:
            return False

    wait_until(up, deadline, f"http://{host}:{port} to answer")
    return got[-1]


def host_address() -> str:
    """An address of this host that is not loopback (traffic to it still stays on the machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))       # no packet is sent: picks the source address
            return str(s.getsockname()[0])
        except OSError:
            pytest.skip("this host has no non-loopback IPv4 address")
    raise AssertionError


class HostListener:
    """A TCP listener on the host's address that accepts and closes at once (a client that got
    through ends at once); ``with HostListener() as port``."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind((host_address(), 0))
        self.server.listen(4)
        self.server.settimeout(0.2)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                self.server.accept()[0].close()
            except OSError:
                continue

    def __enter__(self) -> int:
        self.thread.start()
        return int(self.server.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(5)
        self.server.close()


class Networks:
    """Creates networks with this run's subnets; removes them (and their containers) afterwards."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.names: list[str] = []

    def create(self, name: str, *opts: str, subnet: bool = True) -> str:
        args = ["network", "create"]
        sub = ""
        if subnet:
            sub = netenv.subnet(next(_SUBNETS) % 16)
            args += ["--subnet", sub]
        ok(self.daemon.cli(*args, *opts, name))
        self.names.append(name)
        return sub

    def cleanup(self) -> None:
        for n in self.names:
            info = self.daemon.cli("network", "inspect", n, "-f", "{{range $k, $v := .Containers}}{{$k}} {{end}}")
            ids = info.stdout.split()
            if ids:
                self.daemon.cli("rm", "-f", *ids)
            self.daemon.cli("network", "rm", n)


@pytest.fixture
def nets(daemon: Daemon) -> Iterator[Networks]:
    n = Networks(daemon)
    yield n
    n.cleanup()


def run_d(daemon: Daemon, name: str, *args: str) -> str:
    return ok(daemon.cli("run", "-d", "--name", name, *args)).strip()


# ------------------------------------------------------------------ published ports
def test_published_port_serves_http_to_the_host(daemon: Daemon, busybox: str, name: str) -> None:
    port = free_port()
    run_d(daemon, name, "--publish", f"{port}:3000", BUSYBOX, "sh", "-c", WWW + "exec httpd -f -p 3000 -h /www")
    cid12 = inspect(daemon, name)["Id"][:12]
    assert wait_http(port) == f"hello-{cid12}\n"
    assert wait_http(port, host_address()) == f"hello-{cid12}\n"
    mapping = ok(daemon.cli("port", name, "3000/tcp")).splitlines()
    assert f"0.0.0.0:{port}" in mapping
    ports = inspect(daemon, name)["NetworkSettings"]["Ports"]
    assert {"HostIp": "0.0.0.0", "HostPort": str(port)} in ports["3000/tcp"]
    row = ok(daemon.cli("ps", "--filter", f"name={name}", "--format", "{{.Ports}}"))
    assert f"0.0.0.0:{port}->3000/tcp" in row
    # from another container, to the host's address and the published port
    out = ok(daemon.cli("run", "--rm", BUSYBOX, "wget", "-q", "-O-", f"http://{host_address()}:{port}/index.html"))
    assert out == f"hello-{cid12}\n"
    ok(daemon.cli("stop", "-t", "1", name))

    def closed() -> bool:
        try:
            http_get(port, timeout=1)
            return False
        except OSError:
            return True

    wait_until(closed, 20, f"port {port} to close after stop")
    assert inspect(daemon, name)["NetworkSettings"]["Ports"] == {}


def test_publish_all_uses_ephemeral_ports(daemon: Daemon, busybox: str, name: str) -> None:
    run_d(daemon, name, "-P", "--expose", "3000", "--expose", "3001", BUSYBOX,
          "sh", "-c", WWW + "httpd -p 3001 -h /www; exec httpd -f -p 3000 -h /www")
    ports = inspect(daemon, name)["NetworkSettings"]["Ports"]
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        lo, hi = (int(x) for x in f.read().split())
    chosen = {int(b["HostPort"]) for key in ("3000/tcp", "3001/tcp") for b in ports[key] if b["HostIp"] == "0.0.0.0"}
    assert len(chosen) == 2 and all(lo <= p <= hi for p in chosen)
    for p in chosen:
        assert wait_http(p).startswith("hello-")


def test_port_in_use_is_refused_and_nothing_is_left(daemon: Daemon, busybox: str, name: str) -> None:
    port = free_port()
    run_d(daemon, name, "-p", f"{port}:80", BUSYBOX, "sleep", "300")
    proc = daemon.cli("run", "-d", "--name", name + "-2", "-p", f"{port}:80", BUSYBOX, "sleep", "300")
    assert proc.returncode != 0
    assert f"0.0.0.0:{port}" in proc.stderr
    assert "port is already allocated" in proc.stderr or "address already in use" in proc.stderr
    st = state(daemon, name + "-2")
    assert st["Running"] is False
    assert inspect(daemon, name + "-2")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""


def test_network_host_discards_published_ports(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("create", "--name", name, "--network", "host", "-p", "8080:80", BUSYBOX)
    assert proc.returncode == 0, proc.stderr
    assert "Published ports are discarded when using host network mode" in proc.stderr
    ok(daemon.cli("start", name))
    assert inspect(daemon, name)["NetworkSettings"]["Ports"] == {}


# busybox has no UDP server: the host's own Python (read-only mounts of /usr, /lib, /lib64) serves UDP
HOST_PYTHON = ("-v", "/usr:/usr:ro", "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro")
UDP_ECHO = ("import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.bind(('0.0.0.0', 5353))\n"
            "while True:\n"
            "    data, peer = s.recvfrom(2048)\n"
            "    s.sendto(b'echo:' + data, peer)\n")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def udp_echo(host: str, port: int, deadline: float = 20) -> bytes:
    """Send datagrams until the echo comes back (the server needs a moment to bind)."""
    got: list[bytes] = []
    payload = f"ping-{time.monotonic_ns()}".encode()

    def answered() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            s.sendto(payload, (host, port))
            try:
                data, peer = s.recvfrom(2048)
            except OSError:
                return False
            got.append(data)
            return peer == (host, port)

    wait_until(answered, deadline, f"an echo from udp {host}:{port}")
    assert got[-1] == b"echo:" + payload
    return got[-1]


def test_published_udp_port_carries_datagrams_both_ways(daemon: Daemon, busybox: str, name: str) -> None:
    port = free_udp_port()
    run_d(daemon, name, "-p", f"{port}:5353/udp", *HOST_PYTHON, BUSYBOX, "/usr/bin/python3", "-c", UDP_ECHO)
    udp_echo("127.0.0.1", port)
    udp_echo(host_address(), port)
    assert ok(daemon.cli("port", name, "5353/udp")).splitlines()[0] == f"0.0.0.0:{port}"
    assert inspect(daemon, name)["NetworkSettings"]["Ports"]["5353/udp"][0] == {"HostIp": "0.0.0.0",
                                                                                "HostPort": str(port)}
    row = ok(daemon.cli("ps", "--filter", f"name={name}", "--format", "{{.Ports}}"))
    assert f"0.0.0.0:{port}->5353/udp" in row
    ok(daemon.cli("rm", "-f", name))

    def released() -> bool:     # the host port is free again once the container is gone
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("0.0.0.0", port))
                return True
            except OSError:
                return False

    wait_until(released, 20, f"udp port {port} to be released")


# ---------------------------------------------------------------- user-defined networks
def test_user_network_names_and_aliases(daemon: Daemon, busybox: str, name: str, nets: Networks) -> None:
    sub = nets.create(name + "-net")
    a = run_d(daemon, name + "-a", "--network", name + "-net", "--network-alias", "web", BUSYBOX, "sleep", "300")
    b = run_d(daemon, name + "-b", "--network", name + "-net", "--network-alias", "web", BUSYBOX, "sleep", "300")
    ips = {c: inspect(daemon, c)["NetworkSettings"]["Networks"][name + "-net"]["IPAddress"] for c in (a, b)}
    assert all(ip.startswith(sub.rsplit(".", 1)[0] + ".") for ip in ips.values())
    resolv = ok(daemon.cli("exec", name + "-b", "cat", "/etc/resolv.conf"))
    assert "nameserver 127.0.0.11" in resolv
    out = ok(daemon.cli("exec", name + "-b", "ping", "-c1", "-W2", name + "-a"))
    assert ips[a] in out
    out = ok(daemon.cli("exec", name + "-a", "nslookup", a[:12]))
    assert ips[a] in out
    # one alias, two containers: both addresses answer
    out = ok(daemon.cli("run", "--rm", "--network", name + "-net", BUSYBOX, "nslookup", "web"))
    assert ips[a] in out and ips[b] in out
    # the network lists both live endpoints
    net = inspect(daemon, name + "-net", "network")
    assert {v["Name"] for v in net["Containers"].values()} == {name + "-a", name + "-b"}
    rows = ok(daemon.cli("ps", "--filter", f"network={name}-net", "--format", "{{.Names}}")).split()
    assert sorted(rows) == [name + "-a", name + "-b"]


def test_connect_running_container_then_reachable(daemon: Daemon, busybox: str, name: str, nets: Networks) -> None:
    nets.create(name + "-n1")
    nets.create(name + "-n2")
    run_d(daemon, name + "-a", "--network", name + "-n1", BUSYBOX, "sleep", "300")
    run_d(daemon, name + "-b", "--network", name + "-n2", BUSYBOX, "sleep", "300")
    assert daemon.cli("exec", name + "-b", "ping", "-c1", "-W1", name + "-a").returncode != 0
    ok(daemon.cli("network", "connect", "--alias", "other", name + "-n1", name + "-b"))
    nets_of_b = inspect(daemon, name + "-b")["NetworkSettings"]["Networks"]
    assert set(nets_of_b) == {name + "-n1", name + "-n2"}
    assert nets_of_b[name + "-n1"]["IPAddress"]
    ok(daemon.cli("exec", name + "-b", "ping", "-c1", "-W2", name + "-a"))
    ok(daemon.cli("exec", name + "-a", "ping", "-c1", "-W2", "other"))
    proc = daemon.cli("network", "connect", name + "-n1", name + "-b")
    assert proc.returncode != 0
    assert f"endpoint with name {name}-b already exists in network {name}-n1" in proc.stderr
    ok(daemon.cli("network", "disconnect", name + "-n1", name + "-b"))
    assert set(inspect(daemon, name + "-b")["NetworkSettings"]["Networks"]) == {name + "-n2"}
    assert daemon.cli("exec", name + "-b", "ping", "-c1", "-W1", name + "-a").returncode != 0


@pytest.mark.reference_differs("the reference dockerd runs with --iptables=false here (its chain names are "
                                "machine-wide), which turns off the isolation of internal networks")
def test_internal_network_has_no_route_out(daemon: Daemon, busybox: str, name: str, nets: Networks) -> None:
    nets.create(name + "-int", "--internal")
    with HostListener() as port:
        # the host's address answers from the default bridge, not from the internal network
        ok(daemon.cli("run", "--rm", BUSYBOX, "nc", "-w", "2", host_address(), str(port)))
        proc = daemon.cli("run", "--rm", "--network", name + "-int", BUSYBOX, "nc", "-w", "2", host_address(),
                          str(port))
        assert proc.returncode != 0


@pytest.mark.reference_differs("the reference dockerd runs with --iptables=false here (its chain names are "
                                "machine-wide), and icc=false is an iptables rule")
def test_network_without_icc(daemon: Daemon, busybox: str, name: str, nets: Networks) -> None:
    """enable_icc=false: containers on the network cannot reach each other; the host still reaches their
    published ports, and they still reach out."""
    nets.create(name, "-o", "com.docker.network.bridge.enable_icc=false")
    assert inspect(daemon, name, "network")["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    port = free_port()
    run_d(daemon, name + "-a", "--network", name, "-p", f"{port}:3000", BUSYBOX,
          "sh", "-c", WWW + "exec httpd -f -p 3000 -h /www")
    run_d(daemon, name + "-b", "--network", name, BUSYBOX, "sleep", "300")
    assert wait_http(port).startswith("hello-")      # the server is up, and published
    ip_a = inspect(daemon, name + "-a")["NetworkSettings"]["Networks"][name]["IPAddress"]
    proc = daemon.cli("exec", name + "-b", "wget", "-q", "-T", "2", "-O-", f"http://{ip_a}:3000/index.html")
    assert proc.returncode != 0, proc.stdout
    assert daemon.cli("exec", name + "-b", "ping", "-c1", "-W1", name + "-a").returncode != 0
    with HostListener() as out_port:
        ok(daemon.cli("exec", name + "-b", "nc", "-w", "2", host_address(), str(out_port)))


def test_static_ip_and_errors(daemon: Daemon, busybox: str, name: str, nets: Networks) -> None:
    sub = nets.create(name + "-net")
    ip = netenv.host_in(sub, 9)
    run_d(daemon, name, "--network", name + "-net", "--ip", ip, BUSYBOX, "sleep", "300")
    assert inspect(daemon, name)["NetworkSettings"]["Networks"][name + "-net"]["IPAddress"] == ip
    assert f"inet {ip}/28" in ok(daemon.cli("exec", name, "ip", "addr", "show", "eth0"))
    proc = daemon.cli("run", "--rm", "--network", name + "-net", "--ip", ip, BUSYBOX, "true")
    assert proc.returncode == 125 and "Address already in use" in proc.stderr
    proc = daemon.cli("run", "--rm", "--ip", "10.215.0.99", BUSYBOX, "true")
    assert proc.returncode == 125
    assert "user specified IP address is supported on user defined networks only" in proc.stderr
    proc = daemon.cli("run", "--rm", "--network", name + "-net", "--ip", "10.9.9.9", BUSYBOX, "true")
    assert proc.returncode == 125 and "10.9.9.9" in proc.stderr


# ------------------------------------------------------------------------- modes
def test_network_none_has_loopback_only(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "--network", "none", BUSYBOX, "ip", "-o", "link"))
    names = [line.split(":")[1].strip() for line in out.splitlines()]
    assert names == ["lo"]


def test_network_host_sees_the_hosts_links(daemon: Daemon, busybox: str) -> None:
    out = ok(daemon.cli("run", "--rm", "--network", "host", BUSYBOX, "ip", "-o", "link"))
    assert f"{netenv.default_bridge(daemon.kind)}:" in out
    assert ok(daemon.cli("run", "--rm", "--network", "host", BUSYBOX, "hostname")).strip() == socket.gethostname()


def test_container_mode_shares_localhost(daemon: Daemon, busybox: str, name: str) -> None:
    run_d(daemon, name, BUSYBOX, "sh", "-c", WWW + "exec httpd -f -p 127.0.0.1:8080 -h /www")
    cid12 = inspect(daemon, name)["Id"][:12]

    def served() -> bool:
        proc = daemon.cli("run", "--rm", "--network", f"container:{name}", BUSYBOX,
                          "wget", "-q", "-O-", "http://127.0.0.1:8080/index.html")
        return proc.returncode == 0 and proc.stdout == f"hello-{cid12}\n"

    wait_until(served, 20, "the shared namespace's localhost server")
    assert inspect(daemon, name)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]


def test_container_mode_errors(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    proc = daemon.cli("run", "--rm", "--network", f"container:{name}", BUSYBOX, "true")
    assert proc.returncode == 125
    assert "cannot join network of a non running container" in proc.stderr
    for opts, text in ((("-h", "x"), "conflicting options: hostname and the network mode"),
                       (("-p", "80:80"), "conflicting options: port publishing and the container type network mode"),
                       (("--dns", "10.0.0.1"), "conflicting options: dns and the network mode"),
                       (("--add-host", "a:10.0.0.1"),
                        "conflicting options: custom host-to-IP mapping and the network mode")):
        proc = daemon.cli("create", "--network", f"container:{name}", *opts, BUSYBOX)
        assert proc.returncode != 0 and text in proc.stderr, (opts, proc.stderr)


def test_unknown_network(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("run", "--rm", "--network", "no-such-net-x", BUSYBOX, "true")
    assert proc.returncode == 125
    assert "network no-such-net-x not found" in proc.stderr


# --------------------------------------------------------------------- network API
def test_network_api_errors(daemon: Daemon, busybox: str, name: str, nets: Networks) -> None:
    sub = nets.create(name)
    body = json.dumps({"Name": name + "-2", "IPAM": {"Config": [{"Subnet": sub}]}})
    r = daemon.raw("POST", "/networks/create", body=body, headers={"Content-Type": "application/json"})
    assert (r.status, r.message) == (403, "Pool overlaps with other one on this address space")
    proc = daemon.cli("network", "create", name)
    assert proc.returncode != 0 and f"network with name {name} already exists" in proc.stderr
    r = daemon.raw("DELETE", "/networks/bridge")
    assert (r.status, r.message) == (403, "bridge is a pre-defined network and cannot be removed")
    r = daemon.raw("GET", "/networks/no-such-net-x")
    assert (r.status, r.message) == (404, "network no-such-net-x not found")
    run_d(daemon, name + "-c", "--network", name, BUSYBOX, "sleep", "300")
    net_id = inspect(daemon, name, "network")["Id"]
    r = daemon.raw("DELETE", f"/networks/{name}")
    assert r.status == 403
    assert r.message == f"error while removing network: network {name} id {net_id} has active endpoints"


def test_network_list_filters_and_prune(daemon: Daemon, busybox: str, name: str, nets: Networks,
                                        client: Any) -> None:
    nets.create(name + "-a", "--label", "team=x")
    nets.create(name + "-b")
    rows = ok(daemon.cli("network", "ls", "--filter", "label=team=x", "--format", "{{.Name}}")).split()
    assert rows == [name + "-a"]
    builtin = ok(daemon.cli("network", "ls", "--filter", "type=builtin", "--format", "{{.Name}}")).split()
    assert set(builtin) >= {"bridge", "host", "none"} and name + "-a" not in builtin
    assert [n.name for n in client.networks.list(names=[name + "-b"])] == [name + "-b"]
    r = daemon.raw("GET", '/networks?filters={"nope":["x"]}')
    assert (r.status, r.message.lower()) == (400, "invalid filter 'nope'")   # 20.10 says "Invalid"
    out = ok(daemon.cli("network", "prune", "-f", "--filter", "label=team=x"))
    assert name + "-a" in out and name + "-b" not in out
    nets.names.remove(name + "-a")


def test_network_events(daemon: Daemon, busybox: str, name: str, nets: Networks) -> None:
    since = str(int(time.time()) - 1)
    nets.create(name)
    run_d(daemon, name + "-c", "--network", name, BUSYBOX, "sleep", "300")
    ok(daemon.cli("rm", "-f", name + "-c"))
    ok(daemon.cli("network", "rm", name))
    nets.names.remove(name)
    until = str(int(time.time()) + 1)
    out = ok(daemon.cli("events", "--since", since, "--until", until, "--filter", "type=network",
                        "--format", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}}"))
    lines = [line for line in out.splitlines() if f" {name} " in line + " "]
    assert [line.split()[0] for line in lines] == ["create", "connect", "disconnect", "destroy"]
    assert all(line.endswith(" bridge") for line in lines)


# --------------------------------------------------------------------- DNS forwarding
class Upstream:
    """A tiny resolver on the user network's gateway address: answers every A question with one address."""

    def __init__(self, address: str, answer: str) -> None:
        from dnslib import RR, DNSRecord

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(0.2)
        self.questions: list[str] = []
        self._stop = threading.Event()

        def serve() -> None:
            while not self._stop.is_set():
                try:
                    data, peer = self.sock.recvfrom(4096)
                except OSError:
                    continue
                req = DNSRecord.parse(data)
                self.questions.append(str(req.q.qname))
                reply = req.reply()
                if req.q.qtype == 1:
                    reply.add_answer(*RR.fromZone(f"{req.q.qname} 60 A {answer}"))
                self.sock.sendto(reply.pack(), peer)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


def test_dns_forwards_to_the_upstream(daemon: Daemon, busybox: str, name: str, nets: Networks) -> None:
    sub = nets.create(name)
    gateway = netenv.host_in(sub, 1)
    upstream = Upstream(gateway, "192.0.2.77")
    try:
        out = ok(daemon.cli("run", "--rm", "--network", name, "--dns", gateway, BUSYBOX,
                            "nslookup", "outside.example.test"))
        assert "192.0.2.77" in out
        assert any(q.startswith("outside.example.test") for q in upstream.questions)
        resolv = ok(daemon.cli("run", "--rm", "--network", name, "--dns", gateway, BUSYBOX, "cat", "/etc/resolv.conf"))
        assert "nameserver 127.0.0.11" in resolv
        if not daemon.reference:
            assert f"# ExtServers: [{gateway}]" in resolv   # newer Docker notes the real servers
    finally:
        upstream.close()


# ------------------------------------------------------------------- invalid port specs
@pytest.mark.parametrize("bindings, bad", [
    ({"abc/tcp": [{"HostPort": "80"}]}, "abc"),
    ({"70000/tcp": [{"HostPort": "80"}]}, "70000"),
    ({"80-81/tcp": [{"HostPort": "80"}]}, "80-81"),
    ({"80/tcp": [{"HostPort": "90-80"}]}, "90-80"),
    ({"80/tcp": [{"HostPort": "abc"}]}, "abc"),
    ({"80/tcp": [{"HostPort": "-5"}]}, "-5"),
])
def test_invalid_port_bindings_are_refused_at_create(daemon: Daemon, busybox: str,
                                                      bindings: dict[str, Any], bad: str) -> None:
    body = json.dumps({"Image": BUSYBOX, "HostConfig": {"PortBindings": bindings}})
    r = daemon.raw("POST", "/containers/create", body=body, headers={"Content-Type": "application/json"})
    assert (r.status, r.message) == (400, f'invalid port specification: "{bad}"')


def test_invalid_publish_flag(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("create", "-p", "80:abc", BUSYBOX)
    assert proc.returncode != 0 and "abc" in proc.stderr


# ------------------------------------------------------------------ across a daemon kill
def test_published_port_and_dns_survive_a_daemon_kill(daemon: Daemon, busybox: str, name: str,
                                                       nets: Networks) -> None:
    daemon.require_private()
    nets.create(name + "-net")
    port = free_port()
    run_d(daemon, name, "--network", name + "-net", "-p", f"{port}:3000", BUSYBOX,
          "sh", "-c", WWW + "exec httpd -f -p 3000 -h /www")
    run_d(daemon, name + "-b", "--network", name + "-net", BUSYBOX, "sleep", "300")
    assert wait_http(port).startswith("hello-")
    daemon.restart(kill9=True)
    assert wait_http(port).startswith("hello-")
    assert wait_http(port, host_address()).startswith("hello-")
    ip = inspect(daemon, name)["NetworkSettings"]["Networks"][name + "-net"]["IPAddress"]
    assert ip in ok(daemon.cli("exec", name + "-b", "nslookup", name))
    ok(daemon.cli("rm", "-f", name))

    def closed() -> bool:
        try:
            http_get(port, timeout=1)
            return False
        except OSError:
            return True

    wait_until(closed, 20, f"port {port} to close after rm -f")


# -------------------------------------------------------------------------- links
def test_legacy_links_on_the_default_bridge(daemon: Daemon, busybox: str, name: str) -> None:
    src = run_d(daemon, name + "-src", "-e", "FOO=bar", "--expose", "80", "--expose", "53/udp", BUSYBOX, "sleep", "300")
    ip = inspect(daemon, name + "-src")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    out = ok(daemon.cli("run", "--rm", "--name", name, "--link", f"{name}-src:db", BUSYBOX,
                        "sh", "-c", "env | grep ^DB_ | sort; cat /etc/hosts"))
    assert f"DB_NAME=/{name}/db" in out.splitlines()
    assert f"DB_PORT=udp://{ip}:53" in out.splitlines()
    for line in (f"DB_PORT_80_TCP=tcp://{ip}:80", f"DB_PORT_80_TCP_ADDR={ip}", "DB_PORT_80_TCP_PORT=80",
                 "DB_PORT_80_TCP_PROTO=tcp", f"DB_PORT_53_UDP=udp://{ip}:53", "DB_ENV_FOO=bar"):
        assert line in out.splitlines()
    assert not [line for line in out.splitlines() if line.startswith(("DB_ENV_HOME=", "DB_ENV_PATH="))]
    assert f"{ip}\tdb {src[:12]} {name}-src" in out.splitlines()
    ok(daemon.cli("stop", "-t", "0", name + "-src"))
    proc = daemon.cli("run", "--rm", "--name", name + "-2", "--link", f"{name}-src:db", BUSYBOX, "true")
    assert proc.returncode == 125
    assert f"Cannot link to a non running container: /{name}-src AS /{name}-2/db" in proc.stderr
    proc = daemon.cli("run", "--rm", "--link", "no-such-ctr-x:db", BUSYBOX, "true")
    assert proc.returncode == 125
    assert "could not get container for no-such-ctr-x" in proc.stderr


def test_links_in_inspect_follow_the_child_and_outlive_it(daemon: Daemon, busybox: str, name: str) -> None:
    """HostConfig.Links shows dockerd's "/child:/parent/alias"; a rename of the child shows through; after
    its removal the parent keeps the link (by its last name) and cannot start."""
    src = name + "-src"
    run_d(daemon, src, BUSYBOX, "sleep", "300")
    ok(daemon.cli("create", "--name", name, "--link", f"{src}:db", "--link", src, BUSYBOX, "true"))

    def links() -> list[str]:
        return sorted(inspect(daemon, name)["HostConfig"]["Links"] or [])    # dockerd's order is a map's

    assert links() == sorted([f"/{src}:/{name}/db", f"/{src}:/{name}/{src}"])
    ok(daemon.cli("rename", src, src + "2"))
    assert links() == sorted([f"/{src}2:/{name}/db", f"/{src}2:/{name}/{src}"])
    ok(daemon.cli("stop", "-t", "0", src + "2"))
    assert links() == sorted([f"/{src}2:/{name}/db", f"/{src}2:/{name}/{src}"])
    ok(daemon.cli("rm", src + "2"))
    assert links() == sorted([f"/{src}2:/{name}/db", f"/{src}2:/{name}/{src}"])
    proc = daemon.cli("start", name)
    assert proc.returncode != 0
    assert f"Cannot link to a non running container: /{src}2 AS /{name}/" in proc.stderr
    # the link's name went with the child: rm --link finds nothing to remove
    proc = daemon.cli("rm", "--link", f"/{name}/db")
    assert proc.returncode != 0 and f"No such container: {name}/db" in proc.stderr


def test_rm_link_removes_the_link_only(daemon: Daemon, busybox: str, name: str) -> None:
    src = name + "-src"
    run_d(daemon, src, BUSYBOX, "sleep", "300")
    ok(daemon.cli("create", "--name", name, "--link", f"{src}:db", "--link", src, BUSYBOX, "true"))
    assert ok(daemon.cli("rm", "--link", f"/{name}/db")).strip() == f"/{name}/db"
    assert inspect(daemon, name)["HostConfig"]["Links"] == [f"/{src}:/{name}/{src}"]
    assert state(daemon, src)["Running"] is True
    proc = daemon.cli("rm", "--link", f"/{name}/db")
    assert proc.returncode != 0 and f"No such container: {name}/db" in proc.stderr
    ok(daemon.cli("rm", "--link", f"{name}/{src}"))
    assert inspect(daemon, name)["HostConfig"]["Links"] is None
    ok(daemon.cli("stop", "-t", "0", src))
    ok(daemon.cli("start", name))      # no link left to a container that is not running


# --------------------------------------------------------------------------- IPv6
def test_ipv6_network_addresses_reachable_between_containers(daemon: Daemon, busybox: str, name: str,
                                                             nets: Networks) -> None:
    v6 = netenv.subnet6(next(_SUBNETS) % 16)
    nets.create(name, "--ipv6", "--subnet", v6)
    run_d(daemon, name + "-a", "--network", name, BUSYBOX, "sleep", "300")
    ep = inspect(daemon, name + "-a")["NetworkSettings"]["Networks"][name]
    assert ipaddress.ip_address(ep["GlobalIPv6Address"]) in ipaddress.ip_network(v6)
    assert ep["GlobalIPv6PrefixLen"] == 64
    assert ep["IPAddress"]     # and an IPv4 address from the pool
    out = ok(daemon.cli("run", "--rm", "--network", name, BUSYBOX, "ping", "-6", "-c1", "-W3",
                        ep["GlobalIPv6Address"]))
    assert "1 packets received" in out
    cfg = inspect(daemon, name, "network")["IPAM"]["Config"]
    assert ipaddress.ip_network(v6) in [ipaddress.ip_network(c["Subnet"]) for c in cfg]


def test_static_ip_needs_a_user_subnet(daemon: Daemon, busybox: str, name: str, nets: Networks) -> None:
    nets.create(name, subnet=False)
    proc = daemon.cli("run", "--rm", "--network", name, "--ip", "10.214.0.200", BUSYBOX, "true")
    assert proc.returncode == 125
    assert ("user specified IP address is supported only when connecting to networks with user configured "
            "subnets") in proc.stderr


def test_exhausted_default_pool(daemon: Daemon, busybox: str, name: str, nets: Networks) -> None:
    """The test daemons' pool has 16 networks (netenv.default_address_pool): create until it runs out."""
    for i in range(17):
        proc = daemon.cli("network", "create", f"{name}-{i}")
        if proc.returncode != 0:
            break
        nets.names.append(f"{name}-{i}")
    assert proc.returncode != 0 and len(nets.names) <= 16
    assert ("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to "
            "the network") in proc.stderr


@pytest.mark.reference_differs("the reference dockerd runs with --iptables=false here (its chain names are "
                                "machine-wide), which turns off the isolation between networks")
def test_networks_are_isolated_from_each_other(daemon: Daemon, busybox: str, name: str, nets: Networks) -> None:
    nets.create(name + "-n1")
    nets.create(name + "-n2")
    run_d(daemon, name + "-a", "--network", name + "-n1", BUSYBOX, "sleep", "300")
    run_d(daemon, name + "-b", "--network", name + "-n2", BUSYBOX, "sleep", "300")
    ip_a = inspect(daemon, name + "-a")["NetworkSettings"]["Networks"][name + "-n1"]["IPAddress"]
    ok(daemon.cli("exec", name + "-a", "ping", "-c1", "-W2", name + "-a"))
    assert daemon.cli("exec", name + "-b", "ping", "-c1", "-W1", ip_a).returncode != 0


def test_restart_keeps_a_static_ip_and_stop_releases_addresses(daemon: Daemon, busybox: str, name: str,
                                                                nets: Networks) -> None:
    sub = nets.create(name + "-net")
    ip = netenv.host_in(sub, 7)
    run_d(daemon, name, "--network", name + "-net", "--ip", ip, BUSYBOX, "sleep", "300")
    ok(daemon.cli("restart", "-t", "0", name))
    assert inspect(daemon, name)["NetworkSettings"]["Networks"][name + "-net"]["IPAddress"] == ip
    ok(daemon.cli("stop", "-t", "0", name))
    ep = inspect(daemon, name)["NetworkSettings"]["Networks"][name + "-net"]
    assert ep["IPAddress"] == "" and ep["IPAMConfig"] == {"IPv4Address": ip}
    # the stopped container's address is free for another one meanwhile
    out = ok(daemon.cli("run", "--rm", "--network", name + "-net", "--ip", ip, BUSYBOX, "ip", "-o", "addr"))
    assert f"inet {ip}/28" in out


# ------------------------------------------------------------- daemons with flags of their own
def flagged_daemon(session: Daemon, *flags: str) -> Daemon:
    """A private daemon (not started) of the session daemon's kind with `flags`, and a bridge, subnets and
    IPv6 prefix of its own (netenv.flagged_*).  The reference one runs with --iptables=false (its chain
    names are machine-wide)."""
    session.require_private()
    root = harness.new_private_root()
    host = f"unix://{root}/docker.sock"
    bridge = netenv.flagged_bridge(session.kind)
    if session.kind == "dockerd":
        d = Daemon(kind="dockerd", host=host, root=root)
        netenv.create_bridge(bridge, netenv.flagged_bip("dockerd"))
        d._argv = [shutil.which("dockerd") or "/usr/sbin/dockerd", "--data-root", str(d.data_root),
                   "--exec-root", str(d.exec_root), "--pidfile", str(d.pidfile), "-H", host, "--bridge", bridge,
                   "--iptables=false", "--default-address-pool", netenv.flagged_address_pool("dockerd"),
                   "--containerd", str(d.containerd_socket), *flags]
    else:
        d = Daemon(kind="pydockerd", host=host, root=root, cgroup_parent=f"pydc-{root.name.removeprefix('pydc-')}")
        d._argv = [sys.executable, "-m", "compat_server.daemon", "-H", host, "--data-root", str(d.data_root),
                   "--exec-root", str(d.exec_root), "--pidfile", str(d.pidfile), "--bridge", bridge,
                   "--cgroup-parent", d.cgroup_parent, "--bip", netenv.flagged_bip("pydockerd"),
                   "--default-address-pool", netenv.flagged_address_pool("pydockerd"), *flags]
    return d


@contextlib.contextmanager
def running_flagged_daemon(session: Daemon, *flags: str) -> Iterator[Daemon]:
    """flagged_daemon, started, with busybox imported; torn down afterwards, and a pydockerd one must
    leave nothing behind (veths, netns files, bridges, chains, mounts, processes)."""
    d = flagged_daemon(session, *flags)
    try:
        d.start()
        d.api_version = str(d.raw("GET", "/version", timeout=20).json().get("ApiVersion", ""))
        d.reference = d.kind == "dockerd"
        tar = build_busybox_rootfs(d.root / "busybox-rootfs.tar")
        ok(d.cli("import", "--change", 'CMD ["sh"]', "-", BUSYBOX, input=tar.read_bytes(), timeout=120))
        yield d
    finally:
        d.teardown()
        netenv.delete_link(netenv.flagged_bridge(session.kind))
    if d.kind == "pydockerd":
        assert (d.network_leftovers, d.leaks, d.mount_leftovers) == ([], {}, [])


def test_daemon_refuses_icc_false_without_iptables(daemon: Daemon) -> None:
    d = flagged_daemon(daemon, "--iptables=false", "--icc=false")
    try:
        with pytest.raises(RuntimeError) as failed:
            d.start()
        assert ("You specified --iptables=false with --icc=false. ICC=false uses iptables to function. "
                "Please set --icc or --iptables to true") in str(failed.value)
        if d.kind == "pydockerd":      # refused before anything was made
            assert not netenv.link_exists(netenv.flagged_bridge(d.kind))
            assert netenv.chains_with(netenv.chain_prefix(d.data_root)) == []
    finally:
        d.teardown()
        netenv.delete_link(netenv.flagged_bridge(daemon.kind))


@pytest.mark.reference_differs("the reference dockerd runs with --iptables=false here (its chain names are "
                                "machine-wide), and refuses --icc=false without iptables")
def test_daemon_icc_false_isolates_the_default_bridge(daemon: Daemon, busybox: str, name: str) -> None:
    with running_flagged_daemon(daemon, "--icc=false") as d:
        assert inspect(d, "bridge", "network")["Options"]["com.docker.network.bridge.enable_icc"] == "false"
        port = free_port()
        run_d(d, name + "-a", "-p", f"{port}:3000", BUSYBOX, "sh", "-c", WWW + "exec httpd -f -p 3000 -h /www")
        run_d(d, name + "-b", BUSYBOX, "sleep", "300")
        assert wait_http(port).startswith("hello-")
        ip_a = inspect(d, name + "-a")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        proc = d.cli("exec", name + "-b", "wget", "-q", "-T", "2", "-O-", f"http://{ip_a}:3000/index.html")
        assert proc.returncode != 0, proc.stdout
        with HostListener() as out_port:
            ok(d.cli("exec", name + "-b", "nc", "-w", "2", host_address(), str(out_port)))
        ok(d.cli("rm", "-f", name + "-a", name + "-b"))


def test_daemon_ipv6_on_the_default_bridge_and_published_ipv6_ports(daemon: Daemon, busybox: str, name: str) -> None:
    """--ipv6 --fixed-cidr-v6: default-bridge containers get an address of the prefix, reach each other
    over IPv6, and published ports answer on the host's IPv6 addresses (::1 and the bridge's own)."""
    cidr = ipaddress.ip_network(netenv.flagged_cidr_v6(daemon.kind))
    with running_flagged_daemon(daemon, "--ipv6", "--fixed-cidr-v6", str(cidr)) as d:
        net = inspect(d, "bridge", "network")
        assert net["EnableIPv6"] is True
        assert cidr in [ipaddress.ip_network(c["Subnet"]) for c in net["IPAM"]["Config"]]
        lo_port, any_port = free_port(), free_port()
        run_d(d, name, "-p", f"[::1]:{lo_port}:3000", "-p", f"{any_port}:3000", BUSYBOX,
              "sh", "-c", WWW + "exec httpd -f -p 3000 -h /www")
        cid12 = inspect(d, name)["Id"][:12]
        ep = inspect(d, name)["NetworkSettings"]["Networks"]["bridge"]
        ip6 = ipaddress.ip_address(ep["GlobalIPv6Address"])
        assert ip6 in cidr and ep["GlobalIPv6PrefixLen"] == 64
        gateway6 = ep["IPv6Gateway"]
        assert ipaddress.ip_address(gateway6) == cidr[1]
        assert wait_http(lo_port, "[::1]") == f"hello-{cid12}\n"
        assert wait_http(any_port, f"[{gateway6}]") == f"hello-{cid12}\n"
        assert f"[::1]:{lo_port}" in ok(d.cli("port", name, "3000/tcp")).splitlines()
        out = ok(d.cli("run", "--rm", BUSYBOX, "wget", "-q", "-O-", f"http://[{ip6}]:3000/index.html"))
        assert out == f"hello-{cid12}\n"
        ok(d.cli("rm", "-f", name))
