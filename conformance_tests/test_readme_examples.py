"""The README's "Using it with..." examples (examples/), run as a user runs them against the daemon
under test, and checked to be in the README word for word so the two cannot drift apart."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conformance_tests.harness import REPO_ROOT, Daemon

EXAMPLES = REPO_ROOT / "examples"
NODE_MODULES = REPO_ROOT / "conformance_tests" / "node" / "node_modules"


def _example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _example_files(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_the_readme_shows_each_example_as_it_is(path: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert path.read_text().strip() in readme, f"README.md does not show {path.relative_to(REPO_ROOT)} as it is"


def _copy(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / f"{name}-{uuid.uuid4().hex[:6]}"
    shutil.copytree(EXAMPLES / name, dest)
    return dest


def _env(daemon: Daemon, **extra: str) -> dict[str, str]:
    return {**daemon.cli_env(), "PYTHONPATH": str(REPO_ROOT), **extra}


def test_compose_example(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    project = _copy("compose", tmp_path)
    env = _env(daemon, COMPOSE_PROJECT_NAME=project.name.replace("-", ""))
    proc = subprocess.run(["sh", "run.sh"], cwd=project, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # (build output comes first when the daemon builds with BuildKit)
        assert proc.stdout.splitlines()[-2:] == ["hello from the example app"] * 2, proc.stdout
    finally:
        subprocess.run(["docker", "compose", "down", "-v", "--rmi", "local"], cwd=project, env=env,
                       capture_output=True, timeout=120, check=False)


@pytest.mark.parametrize("name", ["pytest-docker", "testcontainers"])
def test_pytest_examples(daemon: Daemon, busybox: str, tmp_path: Path, name: str) -> None:
    project = _copy(name, tmp_path)
    env = _env(daemon, TESTCONTAINERS_RYUK_DISABLED="true")   # Ryuk's image is on Docker Hub
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


def test_dockerode_example(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    project = _copy("dockerode", tmp_path)
    env = _env(daemon, NODE_PATH=str(NODE_MODULES))
    proc = subprocess.run(["node", "example.js"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello from dockerode\n"
    assert os.path.isdir(NODE_MODULES)
