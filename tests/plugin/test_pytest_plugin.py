"""The pytest plugin: a session against a private pydockerd, and nothing of it left afterwards."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance_tests.images import build_busybox_rootfs

REPO = Path(__file__).resolve().parents[2]

INNER = '''
import json, os
import docker
import pytest

def test_session_daemon(pydockerd, pydockerd_host, tmp_path):
    assert os.environ["DOCKER_HOST"] == pydockerd_host == pydockerd.host
    client = docker.from_env()
    assert client.ping()
    with open(os.environ["BUSYBOX_TAR"], "rb") as f:
        client.api.import_image_from_data(f.read(), repository="busybox", tag="latest")
    out = client.containers.run("busybox", ["echo", "hello from the plugin"], remove=True)
    assert out == b"hello from the plugin\\n"
    client.containers.run("busybox", ["sleep", "300"], detach=True, name="left-running")
    with open(os.environ["REPORT"], "w") as f:
        json.dump({"root": str(pydockerd.root), "bridge": pydockerd.bridge}, f)

def test_a_failing_test_still_cleans_up():
    assert os.environ.get("MAKE_IT_FAIL") != "1"
'''


def _mounts_under(prefix: str) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(prefix.rstrip("/") + "/")]


def _pids_mentioning(needle: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle.encode() in (entry / "cmdline").read_bytes():
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


@pytest.mark.parametrize("fail", [False, True], ids=["passing", "failing"])
def test_plugin_runs_a_session_on_a_private_daemon_and_leaves_nothing(tmp_path: Path, fail: bool) -> None:
    if os.geteuid() != 0:
        pytest.skip("a daemon needs root")
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER))
    tar = build_busybox_rootfs(tmp_path / "busybox.tar")
    report = tmp_path / "report.json"
    env = {**os.environ, "BUSYBOX_TAR": str(tar), "REPORT": str(report), "MAKE_IT_FAIL": "1" if fail else "0",
           "PYTHONPATH": str(REPO)}
    env.pop("DOCKER_HOST", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "pydockerd.pytest_plugin",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == (1 if fail else 0), proc.stdout + proc.stderr
    assert ("1 failed, 1 passed" if fail else "2 passed") in proc.stdout
    assert "left behind" not in proc.stderr, proc.stderr   # the daemon itself cleaned up after its containers
    seen = json.loads(report.read_text())
    root = seen["root"]
    assert not Path(root).exists(), "the private daemon's directory is removed"
    assert _mounts_under(root) == []
    assert _pids_mentioning(root) == [], "no daemon or shim process of the session is left"
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=False).stdout.split()
    assert seen["bridge"] not in links
