"""The test tools people point at a Docker daemon, used as their users use them: pytest-docker's
`docker_services` fixture and testcontainers-python, each in a pytest session of its own (a
user's test suite) whose DOCKER_HOST is the daemon under test.

testcontainers' Ryuk reaper is an image from Docker Hub, which is not reachable here: the sessions
run with TESTCONTAINERS_RYUK_DISABLED=true and clean up by themselves.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conformance_tests import netenv
from conformance_tests.harness import REPO_ROOT, Daemon

HTTPD_DOCKERFILE = """\
FROM busybox
COPY index.html /www/index.html
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


def _subnet(i: int) -> str:
    return netenv.compose_subnet(8 + i)


def _run_user_suite(daemon: Daemon, project: Path, *extra_env: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**daemon.cli_env(), "DOCKER_BUILDKIT": "0", "PYTHONPATH": str(REPO_ROOT),
           "TESTCONTAINERS_RYUK_DISABLED": "true", **dict(extra_env)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           str(project)], cwd=project, env=env, capture_output=True, text=True, timeout=400,
                          check=False)


def test_pytest_docker_services_port_for_and_wait_until_responsive(daemon: Daemon, busybox: str,
                                                                   tmp_path: Path) -> None:
    project = tmp_path / "user-project"
    (project / "web").mkdir(parents=True)
    (project / "web" / "Dockerfile").write_text(HTTPD_DOCKERFILE)
    (project / "web" / "index.html").write_text("served to pytest-docker\n")
    (project / "docker-compose.yml").write_text(textwrap.dedent(f"""\
        services:
          web:
            build: ./web
            ports:
              - "127.0.0.1::8080"
        networks:
          default:
            ipam:
              config:
                - subnet: "{_subnet(0)}"
        """))
    (project / "conftest.py").write_text(textwrap.dedent("""\
        import os
        import pytest

        @pytest.fixture(scope="session")
        def docker_compose_file(pytestconfig):
            return os.path.join(str(pytestconfig.rootdir), "docker-compose.yml")
        """))
    (project / "test_web.py").write_text(textwrap.dedent("""\
        import urllib.request

        def _responds(url):
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        def test_web_service(docker_ip, docker_services):
            port = docker_services.port_for("web", 8080)
            url = f"http://{docker_ip}:{port}/"
            docker_services.wait_until_responsive(timeout=60.0, pause=0.2, check=lambda: _responds(url))
            with urllib.request.urlopen(url, timeout=5) as resp:
                assert resp.read() == b"served to pytest-docker\\n"
        """))
    proc = _run_user_suite(daemon, project)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout
    # pytest-docker's `down -v` at the end of the session left nothing of its project
    leftover = daemon.cli("ps", "-aq", "--filter", f"label=com.docker.compose.project.working_dir={project}")
    assert leftover.returncode == 0 and leftover.stdout == ""


def test_testcontainers_container_ports_logs_exec_env_volumes_and_compose(daemon: Daemon, busybox: str,
                                                                          tmp_path: Path) -> None:
    project = tmp_path / "tc-project"
    (project / "stack").mkdir(parents=True)
    (project / "stack" / "docker-compose.yml").write_text(textwrap.dedent(f"""\
        services:
          web:
            image: busybox
            command: ["sh", "-c",
                      "mkdir -p /www && echo from-compose > /www/index.html && exec httpd -f -p 8080 -h /www"]
            ports:
              - "127.0.0.1::8080"
        networks:
          default:
            ipam:
              config:
                - subnet: "{_subnet(1)}"
        """))
    (project / "shared").mkdir()
    (project / "shared" / "note.txt").write_text("from the host\n")
    (project / "test_tc.py").write_text(textwrap.dedent("""\
        import os
        import urllib.request

        from testcontainers.compose import DockerCompose
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs

        HERE = os.path.dirname(os.path.abspath(__file__))

        def test_container():
            web = (DockerContainer("busybox")
                   # httpd without -f binds its port, then goes to the background: the log line
                   # comes after the server listens
                   .with_command(["sh", "-c", "mkdir -p /www && echo hello-tc > /www/index.html && "
                                              "httpd -p 8080 -h /www && echo server-ready && exec sleep 600"])
                   .with_exposed_ports(8080)
                   .with_env("MODE", "test")
                   .with_volume_mapping(os.path.join(HERE, "shared"), "/shared", "ro"))
            with web:
                wait_for_logs(web, "server-ready", timeout=30)
                host = web.get_container_host_ip()
                port = web.get_exposed_port(8080)
                with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as resp:
                    assert resp.read() == b"hello-tc\\n"
                code, out = web.exec(["sh", "-c", "echo $MODE; cat /shared/note.txt"])
                assert code == 0 and out == b"test\\nfrom the host\\n"

        def test_compose():
            with DockerCompose(os.path.join(HERE, "stack")) as stack:
                host = stack.get_service_host("web", 8080)
                port = stack.get_service_port("web", 8080)
                stack.wait_for(f"http://{host}:{port}/")
                with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as resp:
                    assert resp.read() == b"from-compose\\n"
        """))
    proc = _run_user_suite(daemon, project)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout
