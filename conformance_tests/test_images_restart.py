"""The daemon is killed (-9) in the middle of a `docker load`; after a restart the store works and
the same load completes."""
from __future__ import annotations

import hashlib
import os
import socket
import uuid
from pathlib import Path

from conformance_tests.harness import Daemon, socket_path_of, wait_until
from conformance_tests.image_archives import ImageSpec, layer_tar, write_archive
from conformance_tests.util import inspect, ok


def _big(seed: str, mb: int) -> bytes:
    block = hashlib.sha256(seed.encode()).digest() * 32768  # 1 MiB
    return layer_tar({f"big/{seed}": block * mb})


def _big_files_under(root: Path, minimum: int) -> list[Path]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                if os.lstat(os.path.join(dirpath, f)).st_size >= minimum:
                    found.append(Path(dirpath, f))
            except FileNotFoundError:
                continue
    return found


def test_kill9_during_load_then_load_again(daemon: Daemon, busybox: str) -> None:
    daemon.require_private()
    key = f"conf-kill-{uuid.uuid4().hex[:8]}"
    ref = f"{key}:1"
    base = (daemon.root / "busybox-rootfs.tar").read_bytes()
    spec = ImageSpec([base, _big(key + "a", 3), _big(key + "b", 3)], tags=[ref], cmd=["sh"])
    data = write_archive(daemon.root / f"{key}.tar", [spec]).read_bytes()
    tmp = daemon.data_root / "tmp"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(socket_path_of(daemon.host))
        sock.sendall((f"POST /images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\n"
                      f"Content-Type: application/x-tar\r\nContent-Length: {len(data)}\r\n\r\n").encode())
        # Everything up to the middle of the last layer: the daemon is busy storing the upload.
        sock.sendall(data[: len(data) - (2 << 20)])
        wait_until(lambda: len(_big_files_under(tmp, 3 << 20)) >= 1, 30, "the upload to reach the daemon's disk")
        daemon.restart(kill9=True)
    finally:
        sock.close()
    assert daemon.raw("GET", f"/images/{ref}/json").status == 404
    out = ok(daemon.cli("load", "-i", str(daemon.root / f"{key}.tar"), timeout=120))
    try:
        assert out.strip() == f"Loaded image: {ref}"
        assert inspect(daemon, ref, "image")["Id"] == spec.image_id
        sizes = ok(daemon.cli("run", "--rm", "--network", "none", ref, "sh", "-c",
                              f"wc -c /big/{key}a /big/{key}b", timeout=120)).split()
        assert sizes[:4] == [str(3 << 20), f"/big/{key}a", str(3 << 20), f"/big/{key}b"]
        assert _big_files_under(tmp, 1 << 20) == [], "scratch files of the killed load are gone"
        assert ok(daemon.cli("run", "--rm", "--network", "none", "busybox", "true")) == ""
    finally:
        daemon.cli("rmi", "-f", ref)
