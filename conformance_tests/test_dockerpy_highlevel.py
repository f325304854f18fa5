"""docker-py's high-level API for what networks, volumes, the builder and the archive endpoints
brought: networks.create/connect, volumes.create, containers.run(ports=, volumes=, network=),
images.build, put_archive/get_archive — as a docker-py user writes it."""
from __future__ import annotations

import io
import tarfile
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from conformance_tests import netenv
from conformance_tests.harness import wait_until

HTTPD = ["sh", "-c", "mkdir -p /www && echo from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]


def _cleanup(*objs: Any) -> None:
    for o in objs:
        try:
            if isinstance(o, docker.models.containers.Container):
                o.remove(force=True, v=True)
            else:
                o.remove()
        except docker.errors.APIError:
            pass


def test_networks_create_connect_and_reach_by_name(client: Any, busybox: str) -> None:
    name = f"hl-{uuid.uuid4().hex[:6]}"
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=netenv.compose_subnet(12))])
    net = client.networks.create(name, driver="bridge", ipam=ipam, labels={"t": "hl"})
    web = probe = None
    try:
        web = client.containers.run("busybox", HTTPD, detach=True, name=f"{name}-web", network=name)
        probe = client.containers.run("busybox", ["sleep", "600"], detach=True, name=f"{name}-probe")
        net.reload()
        assert [c.name for c in net.containers] == [web.name]
        net.connect(probe, aliases=["prober"])
        net.reload()
        assert {c.name for c in net.containers} == {web.name, probe.name}

        def fetched() -> bool:
            code, out = probe.exec_run(["wget", "-q", "-O", "-", f"http://{web.name}:8080/"])
            return code == 0 and out.startswith(b"from-")
        wait_until(fetched, 30, "the probe to reach web by its name")
        probe.reload()
        settings = probe.attrs["NetworkSettings"]["Networks"][name]
        assert "prober" in settings["Aliases"] and settings["IPAddress"]
        net.disconnect(probe)
        probe.reload()
        assert name not in probe.attrs["NetworkSettings"]["Networks"]
    finally:
        _cleanup(*(c for c in (web, probe) if c is not None))
        _cleanup(net)
    assert name not in [n.name for n in client.networks.list()]


def test_run_with_published_port_and_a_named_volume(client: Any, busybox: str) -> None:
    vol = client.volumes.create(f"hl-{uuid.uuid4().hex[:6]}", labels={"t": "hl"})
    web = None
    try:
        assert vol.attrs["Driver"] == "local" and vol.attrs["Labels"] == {"t": "hl"}
        client.containers.run("busybox", ["sh", "-c", "echo kept > /data/file"], remove=True,
                              volumes={vol.name: {"bind": "/data", "mode": "rw"}})
        out = client.containers.run("busybox", ["cat", "/data/file"], remove=True,
                                    volumes={vol.name: {"bind": "/data", "mode": "ro"}})
        assert out == b"kept\n"
        web = client.containers.run("busybox", HTTPD, detach=True, ports={"8080/tcp": ("127.0.0.1", None)})
        web.reload()
        binding = web.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]
        assert binding["HostIp"] == "127.0.0.1" and int(binding["HostPort"]) > 0
        assert web.ports == {"8080/tcp": [binding]}

        def served() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{binding['HostPort']}/", timeout=2) as resp:
                    return resp.read().startswith(b"from-")
            except OSError:
                return False
        wait_until(served, 30, "the published port to serve")
    finally:
        _cleanup(*(c for c in (web,) if c is not None))
        _cleanup(vol)


def test_images_build_and_the_archive_endpoints(client: Any, busybox: str, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY hello.txt /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n")
    (tmp_path / "hello.txt").write_text("built by docker-py\n")
    tag = f"hl-build-{uuid.uuid4().hex[:6]}:latest"
    image, logs = client.images.build(path=str(tmp_path), tag=tag, rm=True)
    c = None
    try:
        lines = [entry.get("stream", "") for entry in logs]
        assert any(line.startswith("Step 2/3 : COPY hello.txt /hello.txt") for line in lines), lines
        assert tag in image.tags
        assert client.containers.run(tag, remove=True) == b"built by docker-py\n"

        c = client.containers.create(tag, ["sleep", "600"])
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = b"put by docker-py\n"
            info = tarfile.TarInfo("dir/put.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        assert c.put_archive("/tmp", buf.getvalue()) is True      # into a created (not started) container
        stream, stat = c.get_archive("/tmp/dir/put.txt")
        assert stat["name"] == "put.txt" and stat["size"] == len(data)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("put.txt")
            assert member is not None and member.read() == data
        with pytest.raises(docker.errors.NotFound):
            c.get_archive("/no/such/path")
    finally:
        _cleanup(*(x for x in (c,) if x is not None))
        client.images.remove(tag, force=True)
