import os
import urllib.request

import pytest


@pytest.fixture(scope="session")
def docker_compose_file(pytestconfig):
    return os.path.join(str(pytestconfig.rootdir), "docker-compose.yml")


def responds(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_web(docker_ip, docker_services):
    url = f"http://{docker_ip}:{docker_services.port_for('web', 8080)}/"
    docker_services.wait_until_responsive(timeout=30.0, pause=0.1, check=lambda: responds(url))
    with urllib.request.urlopen(url) as resp:
        assert resp.read() == b"ok\n"
