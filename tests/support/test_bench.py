"""bench/run.py: its process/memory helpers, and a short real run when a daemon is given."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _load_bench()


def test_pid_owning_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)
        s.listen(1)
        assert bench.pid_owning_socket(path) == os.getpid()
    assert bench.pid_owning_socket(str(tmp_path / "none.sock")) is None


def test_memory_of_this_process() -> None:
    mem = bench.memory_kb(os.getpid())
    assert mem["rss_kb"] > 1000 and 0 < mem["pss_kb"] <= mem["rss_kb"]
    assert bench.memory_kb(2**22 + 12345) == {"rss_kb": 0, "pss_kb": 0}


def test_find_shim_by_container_id(tmp_path: Path) -> None:
    # A stand-in "shim": a process whose command line has the marker and a container id.
    cid = "f" * 64
    code = "import time; time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code, bench.PYDOCKERD_SHIM_MARKER, cid])
    try:
        # Until the child has exec'd, /proc/<pid>/cmdline is still the parent's (pytest's).
        deadline = time.monotonic() + 10
        while cid not in bench._cmdline(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        t = bench.Target("pydockerd", "unix:///nonexistent", "pydockerd", config_dir=tmp_path / "cli")
        assert bench.find_shim(t, cid) == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_busybox_rootfs_tar() -> None:
    if not Path("/bin/busybox").is_file():
        pytest.skip("busybox-static is not installed")
    with tarfile.open(fileobj=io.BytesIO(bench.busybox_rootfs_tar())) as tar:
        names = set(tar.getnames())
        assert {"bin/busybox", "bin/sh", "bin/true", "bin/sleep", "etc/passwd", "tmp"} <= names
        assert tar.getmember("bin/sh").issym() and tar.getmember("bin/sh").linkname == "busybox"


def test_table_and_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    def entry(ms: float) -> dict:
        return {"bench": {"run": {"what": "docker run --rm busybox true", "median_ms": ms}},
                "memory": {"daemon": {"rss_kb": 51200, "pss_kb": 40960}, "shim": {"error": "none"}}}

    results = {"targets": {"pydockerd": entry(100.0), "reference": entry(250.0)},
               "ratio_pydockerd_over_reference": {"run": 0.4}}
    bench.print_table(results, ["run"])
    out = capsys.readouterr().out
    assert "100.0 ms" in out and "250.0 ms" in out and "0.40" in out
    assert "50.0 (40.0) MiB" in out and "meets the goal" in out


def test_short_run_against_reference(tmp_path: Path) -> None:
    """bench/run.py end to end: a private pydockerd and a private reference dockerd
    (or REFERENCE_DOCKER_HOST's daemon when set), two measured runs each."""
    env = dict(os.environ)
    target = ["--start-reference"]
    if os.environ.get("REFERENCE_DOCKER_HOST"):
        env["DOCKER_HOST"] = os.environ["REFERENCE_DOCKER_HOST"]
        target = []
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--n", "2", "--warmup", "1",
                           "--bench", "run,ps", "--out", str(tmp_path), *target],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "latest.json").read_text())
    both = data["targets"]
    assert set(both) == {"pydockerd", "reference"}
    assert both["reference"]["bench"]["run"]["median_ms"] > 0
    assert both["reference"]["memory"]["daemon"]["rss_kb"] > 0
    assert both["reference"]["memory"]["shim"]["rss_kb"] > 0
    assert "ratio" in proc.stdout
