"""System endpoints: version, info, _ping, API version negotiation, unknown routes."""
from __future__ import annotations

import json

import pytest

from conformance_tests.harness import Daemon, RawResponse
from conformance_tests.util import ok


def test_cli_version_prints_client_and_server(daemon: Daemon) -> None:
    proc = daemon.cli("version")
    out = ok(proc)
    assert "Client:" in out and "Server:" in out
    assert proc.stderr.strip() == ""
    fmt = json.loads(ok(daemon.cli("version", "--format", "{{json .}}")))
    assert fmt["Server"]["ApiVersion"]
    assert fmt["Server"]["Os"] == "linux"


def test_cli_info_prints_without_errors(daemon: Daemon) -> None:
    proc = daemon.cli("info")
    out = ok(proc)
    assert "Server Version:" in out
    assert "ERROR" not in proc.stderr and "WARNING: error" not in proc.stderr
    info = json.loads(ok(daemon.cli("info", "--format", "{{json .}}")))
    assert not info.get("ServerErrors")


INFO_FIELDS = [
    "ID", "Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped", "Images",
    "Driver", "DriverStatus", "DockerRootDir", "CgroupDriver", "CgroupVersion", "KernelVersion",
    "OperatingSystem", "OSType", "Architecture", "NCPU", "MemTotal", "Runtimes", "DefaultRuntime",
    "Name", "ServerVersion", "LoggingDriver", "SecurityOptions", "IndexServerAddress", "RegistryConfig",
]


def test_info_fields(daemon: Daemon, client) -> None:
    info = client.info()
    missing = [f for f in INFO_FIELDS if f not in info]
    assert not missing, f"/info lacks {missing}"
    assert isinstance(info["NCPU"], int) and info["NCPU"] >= 1
    assert isinstance(info["MemTotal"], int) and info["MemTotal"] > 0
    assert info["OSType"] == "linux"
    assert info["CgroupVersion"] in ("1", "2")
    assert info["CgroupDriver"] in ("cgroupfs", "systemd", "none")
    assert info["DefaultRuntime"] in info["Runtimes"]
    if daemon.private:
        assert info["DockerRootDir"] == str(daemon.data_root)


def test_version_docker_py(client) -> None:
    v = client.version()
    for key in ("Version", "ApiVersion", "MinAPIVersion", "Os", "Arch", "KernelVersion", "GoVersion", "GitCommit"):
        assert key in v, key
    assert any(c["Name"] == "Engine" for c in v["Components"])
    assert client.ping() is True


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_ping_headers(daemon: Daemon, method: str) -> None:
    resp = daemon.raw(method, "/_ping")
    assert resp.status == 200
    if method == "GET":
        assert resp.body == b"OK"
    h = resp.headers
    assert h["API-Version"] == daemon.api_version
    assert h["OSType"] == "linux"
    assert h["Docker-Experimental"] in ("false", "true")
    assert h["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert h["Pragma"] == "no-cache"
    assert h["Server"].startswith("Docker/")


def test_versioned_ping(daemon: Daemon) -> None:
    assert daemon.raw("GET", f"/v{daemon.api_version}/_ping").status == 200


def test_api_version_too_new(daemon: Daemon) -> None:
    resp = daemon.raw("GET", "/v9.99/version")
    assert resp.status == 400
    assert resp.message.startswith(
        f"client version 9.99 is too new. Maximum supported API version is {daemon.api_version}"
    )


@pytest.mark.reference_differs("20.10's minimum API version is 1.12, current Docker's is 1.24")
def test_api_version_too_old(daemon: Daemon) -> None:
    resp = daemon.raw("GET", "/v1.23/version")
    assert resp.status == 400
    assert "client version 1.23 is too old. Minimum supported API version is 1.24" in resp.message


def test_api_version_too_old_below_every_minimum(daemon: Daemon) -> None:
    resp = daemon.raw("GET", "/v1.11/version")
    assert resp.status == 400
    assert "client version 1.11 is too old. Minimum supported API version is" in resp.message


@pytest.mark.parametrize("path", ["/nope", "/v1.41/nope", "/containers/json/extra/segments"])
def test_unknown_route_is_404_page_not_found(daemon: Daemon, path: str) -> None:
    resp = daemon.raw("GET", path)
    assert resp.status == 404
    assert resp.json() == {"message": "page not found"}


def test_supported_version_prefix_is_accepted(daemon: Daemon) -> None:
    resp = daemon.raw("GET", "/v1.41/version")
    assert resp.status == 200
    assert resp.json()["ApiVersion"] == daemon.api_version


JSON_HEADERS = {"Content-Type": "application/json"}


def _create(daemon: Daemon, host_config: dict[str, object]) -> RawResponse:
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config}
    return daemon.raw("POST", "/containers/create", json.dumps(body), JSON_HEADERS)


def test_every_runtime_info_lists_is_accepted_at_create(daemon: Daemon, busybox: str) -> None:
    runtimes = daemon.client.info()["Runtimes"]
    assert runtimes
    for runtime in runtimes:
        resp = _create(daemon, {"Runtime": runtime})
        assert resp.status == 201, (runtime, resp.body)


def test_unknown_runtime_is_refused_at_create(daemon: Daemon, busybox: str, name: str) -> None:
    resp = _create(daemon, {"Runtime": "no-such-runtime"})
    assert resp.status == 400, resp.body
    proc = daemon.cli("create", "--name", name, "--runtime", "no-such-runtime", "busybox", "true")
    assert proc.returncode == 1 and proc.stderr.startswith("Error response from daemon: ")
    assert ok(daemon.cli("ps", "-a", "-q", "--filter", f"name={name}")).strip() == "", "nothing was created"


@pytest.mark.reference_differs("20.10 words it 'Unknown runtime specified no-such-runtime'")
def test_unknown_runtime_words(daemon: Daemon, busybox: str) -> None:
    # Checked before the image: a missing image does not hide the runtime error (as dockerd).
    body = {"Image": "no-such-image-here", "HostConfig": {"Runtime": "no-such-runtime"}}
    resp = daemon.raw("POST", "/containers/create", json.dumps(body), JSON_HEADERS)
    assert resp.status == 400
    assert resp.message == "unknown or invalid runtime name: no-such-runtime"
