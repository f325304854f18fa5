"""dockerode (npm) with the machine's Node.js: a user's session from list and pull to remove
(conformance_tests/node/dockerode_session.js), against the daemon under test."""
from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

from conformance_tests.harness import Daemon
from conformance_tests.registry import start_registry
from conformance_tests.util import ok

NODE_DIR = Path(__file__).resolve().parent / "node"


def test_dockerode_session(daemon: Daemon, busybox: str) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed (scripts/test.sh installs it)"
    assert (NODE_DIR / "node_modules" / "dockerode").is_dir(), "run `npm install` in conformance_tests/node"
    reg = start_registry(daemon.root / f"registry-node-{uuid.uuid4().hex[:6]}")
    try:
        ref = f"{reg.address}/dockerode/busybox:latest"
        ok(daemon.cli("tag", "busybox:latest", ref))
        ok(daemon.cli("push", ref, timeout=120))
        ok(daemon.cli("rmi", ref))
        proc = subprocess.run([node, str(NODE_DIR / "dockerode_session.js"), ref], cwd=NODE_DIR,
                              env=daemon.cli_env(), capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        seen = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        daemon.cli("rmi", "-f", f"{reg.address}/dockerode/busybox:latest")
        reg.stop()
    assert f"Status: Downloaded newer image for {reg.address}/dockerode/busybox:latest" in seen["pullStatus"]
    assert seen["attachStdout"] == "to-stdout\n" and seen["attachStderr"] == "to-stderr\n"
    assert seen["hostIp"] == "127.0.0.1" and seen["http"] == "served-to-dockerode\n"
    assert seen["logsBytes"] > 0
    assert seen["exec"] == "got:hello-exec\n" and seen["execExit"] == 0
    assert [a for a in seen["events"] if a in ("create", "attach", "start", "die", "stop", "destroy")] == [
        "create", "attach", "start", "die", "stop", "destroy"], seen["events"]
    assert seen["listedAfter"] == seen["listedBefore"]
