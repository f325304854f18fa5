"""The whole daemon in-process, on the fake runtime: Engine (real image store, vfs snapshots,
SQLite, event bus) with FakeRuntime instead of shims, driven through the HTTP app with
httpx's ASGI transport.  Root only for the vfs bind mount of the rootfs; no processes."""
from __future__ import annotations

import asyncio
import io
import os
import struct
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest

from compat_server.app import build_app
from engine.config import Config
from engine.engine import Engine
from engine.network.firewall import chain_prefix
from engine.testing.runtime import FakeRuntime


def _rootfs_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", "root:x:0:\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        kind, size = struct.unpack(">BxxxI", data[:8])
        out.append((kind, data[8:8 + size]))
        data = data[8 + size:]
    return out


def test_create_start_wait_logs_list_remove(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root for the vfs snapshotter's bind mount")
    # No default bridge and no iptables: this engine must not touch the host's networking.
    config = Config(data_root=tmp_path / "data", exec_root=tmp_path / "exec", storage_driver="vfs",
                    cgroup_parent="pydockerd-fake", bridge="none", iptables=False)
    runtime = FakeRuntime()

    async def go() -> None:
        engine = await Engine.open(config, runtime=runtime)
        try:
            await asyncio.to_thread(engine.images.import_tar, io.BytesIO(_rootfs_tar()), repo_tag="app:latest")
            transport = httpx.ASGITransport(app=build_app(engine))
            async with httpx.AsyncClient(transport=transport, base_url="http://docker/v1.50") as api:
                r = await api.post("/containers/create", params={"name": "web"},
                                   json={"Image": "app", "Cmd": ["sh", "-c", "echo hi; echo oops >&2; exit 2"],
                                         "HostConfig": {"NetworkMode": "none"}})
                assert r.status_code == 201, r.text
                cid = r.json()["Id"]
                assert (await api.post(f"/containers/{cid}/start")).status_code == 204
                r = await api.post(f"/containers/{cid}/wait")
                assert r.json() == {"Error": None, "StatusCode": 2}
                r = await api.get(f"/containers/{cid}/logs", params={"stdout": 1, "stderr": 1})
                assert sorted(_frames(r.content)) == [(1, b"hi\n"), (2, b"oops\n")]
                r = await api.get("/containers/json", params={"all": 1})
                [row] = r.json()
                assert row["Names"] == ["/web"] and row["State"] == "exited"
                assert row["Status"].startswith("Exited (2)")
                r = await api.get(f"/containers/{cid}/json")
                state = r.json()["State"]
                assert state["ExitCode"] == 2 and state["Running"] is False and state["Pid"] == 0
                assert (await api.post(f"/containers/{cid}/start")).status_code == 204   # a second run
                assert (await api.post(f"/containers/{cid}/wait")).json()["StatusCode"] == 2
                assert (await api.delete(f"/containers/{cid}")).status_code == 204
                assert (await api.get(f"/containers/{cid}/json")).status_code == 404
            assert runtime.created == [cid, cid]
        finally:
            # a failed assertion must not leave a rootfs mounted: remove what is left first
            for c in engine.containers.list():
                await engine.containers.remove(c.id, force=True)
            await engine.aclose()
    asyncio.run(asyncio.wait_for(go(), 30))
    with open("/proc/self/mountinfo") as f:
        assert [ln.split()[4] for ln in f if ln.split()[4].startswith(str(tmp_path))] == []
    prefix = chain_prefix(str(config.data_root))
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout
        assert prefix not in rules, f"this engine left iptables rules in {table}"
