import urllib.request

from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import wait_for_logs


def test_httpd_in_a_container():
    web = (DockerContainer("busybox")
           .with_command(["sh", "-c", "mkdir -p /www && echo hi > /www/index.html && "
                                      "httpd -p 8080 -h /www && echo ready && exec sleep 3600"])
           .with_exposed_ports(8080))
    with web:
        wait_for_logs(web, "ready", timeout=30)
        url = f"http://{web.get_container_host_ip()}:{web.get_exposed_port(8080)}/"
        with urllib.request.urlopen(url) as resp:
            assert resp.read() == b"hi\n"
        assert web.exec(["echo", "inside"]).output == b"inside\n"
