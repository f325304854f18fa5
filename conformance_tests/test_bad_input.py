"""Hostile and mistyped input: Go's decoder words and a 4xx, never a crash (issue 9 items 7-9)."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from conformance_tests.harness import Daemon, RawResponse, socket_path_of
from conformance_tests.util import ok

BUSYBOX = "busybox"
V = "/v1.41"  # the reference's API version: the type names below are the ones it prints
DEEP = "[" * 10001 + "]" * 10001  # one level past Go's limit of 10,000
DEPTH_ERROR = "invalid character '[' exceeded max depth"


@pytest.fixture(scope="module")
def sleeper(daemon: Daemon, busybox: str) -> Iterator[str]:
    cid = ok(daemon.cli("run", "-d", BUSYBOX, "sleep", "1000")).strip()
    yield cid
    daemon.cli("rm", "-f", cid)


def deep_requests(cid: str) -> dict[str, tuple[str, str, bytes | None, dict[str, str]]]:
    def body(field):
        return (f'{{"Image":"busybox","{field}":{DEEP}}}').encode()
    return {
        "create": ("POST", f"{V}/containers/create", body("Cmd"), {}),
        "create-labels": (
            "POST",
            f"{V}/containers/create",
            b'{"Image":"busybox","Labels":{"a":' + DEEP.encode() + b"}}",
            {},
        ),
        "update": ("POST", f"{V}/containers/{cid}/update", b'{"Memory":' + DEEP.encode() + b"}", {}),
        "exec": ("POST", f"{V}/containers/{cid}/exec", b'{"Cmd":' + DEEP.encode() + b"}", {}),
        "commit": ("POST", f"{V}/commit?container={cid}", body("Cmd"), {}),
        "auth": ("POST", f"{V}/auth", b'{"username":' + DEEP.encode() + b"}", {}),
        "ps-filters": ("GET", f"{V}/containers/json?filters={quote(DEEP)}", None, {}),
        "images-filters": ("GET", f"{V}/images/json?filters={quote(DEEP)}", None, {}),
        "events-filters": ("GET", f"{V}/events?since=1&until=2&filters={quote(DEEP)}", None, {}),
    }


DEEP_CASES = [
    "create",
    "create-labels",
    "update",
    "exec",
    "commit",
    "auth",
    "ps-filters",
    "images-filters",
    "events-filters",
]


def send(daemon: Daemon, case: tuple[str, str, bytes | None, dict[str, str]]) -> RawResponse:
    method, path, body, headers = case
    return daemon.raw(
        method,
        path,
        body=body,
        headers={"Content-Type": "application/json", **headers} if body is not None else headers,
    )


@pytest.mark.parametrize("case", DEEP_CASES)
def test_too_deep_json_gets_gos_words(daemon: Daemon, sleeper: str, case: str) -> None:
    before = set(daemon.list_container_ids())
    resp = send(daemon, deep_requests(sleeper)[case])
    assert resp.message == DEPTH_ERROR, (resp.status, resp.message)
    assert resp.status == 400 if case == "exec" else resp.status in (400, 500)
    assert set(daemon.list_container_ids()) == before
    assert daemon.raw("GET", "/_ping").status == 200


@pytest.mark.reference_differs("20.10 answers 500 for an undecodable body or filter; current Docker answers 400")
@pytest.mark.parametrize("case", [c for c in DEEP_CASES if c != "exec"])  # exec create is 400 on 20.10 too
def test_too_deep_json_is_400(daemon: Daemon, sleeper: str, case: str) -> None:
    assert send(daemon, deep_requests(sleeper)[case]).status == 400


def test_nesting_up_to_the_limit_is_json(daemon: Daemon, sleeper: str) -> None:
    """5,000 levels are valid JSON for Go: the body decodes, and only the field's type is wrong."""
    body = '{"Image":"busybox","Labels":{"a":' + "[" * 5000 + "]" * 5000 + "}}"
    resp = daemon.raw("POST", f"{V}/containers/create", body=body)
    assert (
        resp.message == "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.Labels of type string"
    )


def test_too_deep_registry_auth_is_ignored(daemon: Daemon) -> None:
    """dockerd ignores an X-Registry-Auth it cannot decode: the push goes on and fails for its own reason."""
    header = base64.urlsafe_b64encode(DEEP.encode()).decode()
    resp = daemon.raw("POST", f"{V}/images/no-such-image-x/push", headers={"X-Registry-Auth": header})
    assert resp.status in (200, 404)
    assert "An image does not exist locally with the tag: no-such-image-x" in resp.body.decode()


def test_too_deep_seccomp_profile(daemon: Daemon, busybox: str) -> None:
    """dockerd 20.10 accepts the container and fails its start with the decoder's words; either way no crash."""
    body = json.dumps({"Image": BUSYBOX, "Cmd": ["true"], "HostConfig": {"SecurityOpt": ["seccomp=" + DEEP]}})
    resp = daemon.raw("POST", f"{V}/containers/create", body=body)
    if resp.status == 201:
        cid = resp.json()["Id"]
        try:
            resp = daemon.raw("POST", f"{V}/containers/{cid}/start")
        finally:
            daemon.raw("DELETE", f"/containers/{cid}?force=1")
    assert resp.status >= 400
    assert resp.message == f"Decoding seccomp profile failed: {DEPTH_ERROR}"


def test_mistyped_seccomp_profile_field(daemon: Daemon, busybox: str) -> None:
    profile = json.dumps({"syscalls": [{"names": 5}]})
    body = json.dumps({"Image": BUSYBOX, "Cmd": ["true"], "HostConfig": {"SecurityOpt": ["seccomp=" + profile]}})
    resp = daemon.raw("POST", f"{V}/containers/create", body=body)
    if resp.status == 201:
        cid = resp.json()["Id"]
        try:
            resp = daemon.raw("POST", f"{V}/containers/{cid}/start")
        finally:
            daemon.raw("DELETE", f"/containers/{cid}?force=1")
    assert resp.message == (
        "Decoding seccomp profile failed: json: cannot unmarshal number into Go struct field "
        "Syscall.syscalls.names of type []string"
    )


# body -> Go's UnmarshalTypeError text, as dockerd prints it
CREATE_TYPE_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"Healthcheck": {"Interval": "1s"}}, "HealthConfig.Healthcheck.Interval of type time.Duration"),
    ({"Healthcheck": {"Retries": "1"}}, "HealthConfig.Healthcheck.Retries of type int"),
    ({"Healthcheck": {"Test": "x"}}, "HealthConfig.Healthcheck.Test of type []string"),
    ({"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "a"}]}}, "Ulimit.HostConfig.Ulimits.Soft of type int64"),
    ({"HostConfig": {"Ulimits": [5]}}, "HostConfig.HostConfig.Ulimits of type units.Ulimit"),
    ({"HostConfig": {"Devices": [{"PathOnHost": 5}]}}, "DeviceMapping.HostConfig.Devices.PathOnHost of type string"),
    (
        {"HostConfig": {"Memory": 2**70}},
        f"number {2**70} into Go struct field HostConfig.HostConfig.Memory of type int64",
    ),
    (
        {"HostConfig": {"CpuShares": 2**64}},
        f"number {2**64} into Go struct field HostConfig.HostConfig.CpuShares of type int64",
    ),
    (
        {"HostConfig": {"BlkioWeight": 70000}},
        "number 70000 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16",
    ),
    ({"HostConfig": {"Memory": 1.5}}, "number 1.5 into Go struct field HostConfig.HostConfig.Memory of type int64"),
    ({"StopTimeout": "1"}, "ContainerConfigWrapper.StopTimeout of type int"),
    ({"Cmd": [5]}, "array into Go struct field ContainerConfigWrapper.Cmd of type string"),
    ({"HostConfig": {"CapAdd": 5}}, "number into Go struct field HostConfig.HostConfig.CapAdd of type string"),
    ({"Labels": {"a": 1}}, "ContainerConfigWrapper.Labels of type string"),
    ({"ExposedPorts": []}, "ContainerConfigWrapper.ExposedPorts of type nat.PortSet"),
    ({"HostConfig": {"NetworkMode": 5}}, "HostConfig.HostConfig.NetworkMode of type container.NetworkMode"),
    (
        {"HostConfig": {"LogConfig": {"Config": {"max-size": 1}}}},
        "LogConfig.HostConfig.LogConfig.Config of type string",
    ),
    (
        {"HostConfig": {"RestartPolicy": {"MaximumRetryCount": "a"}}},
        "RestartPolicy.HostConfig.RestartPolicy.MaximumRetryCount of type int",
    ),
    (
        {"HostConfig": {"Mounts": [{"TmpfsOptions": {"SizeBytes": "x"}}]}},
        "TmpfsOptions.HostConfig.Mounts.TmpfsOptions.SizeBytes of type int64",
    ),
    (
        {"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 5}]}}},
        "PortBinding.HostConfig.PortBindings.HostPort of type string",
    ),
    (
        {"HostConfig": {"BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": -1}]}},
        "number -1 into Go struct field ThrottleDevice.HostConfig.BlkioDeviceReadBps.Rate of type uint64",
    ),
    ({"HostConfig": {"DeviceRequests": [{"Count": "x"}]}}, "DeviceRequest.HostConfig.DeviceRequests.Count of type int"),
    (
        {"NetworkingConfig": {"EndpointsConfig": {"a": {"Aliases": 5}}}},
        "EndpointSettings.NetworkingConfig.EndpointsConfig.Aliases of type []string",
    ),
]


@pytest.mark.parametrize(
    "fields, message",
    CREATE_TYPE_ERRORS,
    ids=[m.split(" of type")[0].split(".")[-1] + str(i) for i, (_, m) in enumerate(CREATE_TYPE_ERRORS)],
)
def test_create_type_errors_in_gos_words(daemon: Daemon, busybox: str, fields: dict[str, Any], message: str) -> None:
    before = set(daemon.list_container_ids())
    resp = daemon.raw("POST", f"{V}/containers/create", body=json.dumps({"Image": BUSYBOX, **fields}))
    assert resp.message.startswith("json: cannot unmarshal "), resp.message
    assert resp.message.endswith(message), resp.message
    assert set(daemon.list_container_ids()) == before


@pytest.mark.reference_differs("20.10 answers 500 for a body of the wrong type; current Docker answers 400")
def test_create_nested_type_error_is_400(daemon: Daemon, busybox: str) -> None:
    body = json.dumps({"Image": BUSYBOX, "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "a"}]}})
    assert daemon.raw("POST", f"{V}/containers/create", body=body).status == 400


def test_restart_policy_name_type_error(daemon: Daemon, busybox: str) -> None:
    body = json.dumps({"Image": BUSYBOX, "HostConfig": {"RestartPolicy": {"Name": 5}}})
    resp = daemon.raw("POST", f"{V}/containers/create", body=body)
    # 20.10's field is a string; newer Docker's a container.RestartPolicyMode
    assert re.fullmatch(
        r"json: cannot unmarshal number into Go struct field RestartPolicy\.HostConfig\."
        r"RestartPolicy\.Name of type (string|container\.RestartPolicyMode)",
        resp.message,
    )


@pytest.mark.parametrize(
    "path, body, message",
    [
        (
            "update",
            {"Memory": "x"},
            "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64",
        ),
        (
            "update",
            {"RestartPolicy": {"MaximumRetryCount": "x"}},
            "json: cannot unmarshal string into Go struct field"
            " RestartPolicy.RestartPolicy.MaximumRetryCount of type int",
        ),
        ("update", [1], "json: cannot unmarshal array into Go value of type container.UpdateConfig"),
        (
            "commit",
            {"Healthcheck": {"Interval": "x"}},
            "json: cannot unmarshal string into Go struct field"
            " HealthConfig.Healthcheck.Interval of type time.Duration",
        ),
        ("commit", [1], "json: cannot unmarshal array into Go value of type runconfig.ContainerConfigWrapper"),
        (
            "exec",
            {"Cmd": ["true"], "Tty": "x"},
            r"json: cannot unmarshal string into Go struct field Exec(Config|Options)\.Tty of type bool",
        ),
        (
            "exec",
            {"Cmd": ["true"], "Privileged": 1},
            r"json: cannot unmarshal number into Go struct field Exec(Config|Options)\.Privileged of type bool",
        ),
        (
            "exec",
            {"Cmd": ["true"], "DetachKeys": 5},
            r"json: cannot unmarshal number into Go struct field Exec(Config|Options)\.DetachKeys of type string",
        ),
        ("exec", [1], r"json: cannot unmarshal array into Go value of type (types\.ExecConfig|container\.ExecOptions)"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 8 else None,
)
def test_other_bodies_type_errors(daemon: Daemon, sleeper: str, path: str, body: Any, message: str) -> None:
    url = {
        "update": f"{V}/containers/{sleeper}/update",
        "commit": f"{V}/commit?container={sleeper}",
        "exec": f"{V}/containers/{sleeper}/exec",
    }[path]
    resp = daemon.raw("POST", url, body=json.dumps(body))
    assert resp.status in (400, 500)
    if path == "exec":
        assert re.fullmatch(message, resp.message), resp.message
    else:
        assert resp.message == message


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {"Detach": "x"},
            r"json: cannot unmarshal string into Go struct field ExecStart(Check|Options)\.Detach of type bool",
        ),
        ({"Tty": 1}, r"json: cannot unmarshal number into Go struct field ExecStart(Check|Options)\.Tty of type bool"),
        ("{bad", r"invalid character 'b' looking for beginning of object key string"),
    ],
)
def test_exec_start_body_errors(daemon: Daemon, sleeper: str, body: Any, message: str) -> None:
    exec_id = daemon.raw("POST", f"{V}/containers/{sleeper}/exec", body='{"Cmd":["true"]}').json()["Id"]
    resp = daemon.raw("POST", f"{V}/exec/{exec_id}/start", body=body if isinstance(body, str) else json.dumps(body))
    assert resp.status == 400
    assert re.fullmatch(message, resp.message), resp.message


@pytest.mark.parametrize(
    "filters, message",
    [
        ("[1]", "json: cannot unmarshal array into Go value of type map[string]map[string]bool"),
        ('{"a":1}', "json: cannot unmarshal number into Go value of type map[string]bool"),
        ("{bad", "invalid character 'b' looking for beginning of object key string"),
        ('{"a"', "unexpected end of JSON input"),
    ],
)
def test_filters_decode_errors(daemon: Daemon, filters: str, message: str) -> None:
    resp = daemon.raw("GET", f"{V}/containers/json?filters={quote(filters)}")
    assert resp.status in (400, 500)
    assert resp.message == message


# ---------------------------------------------------------------- values that fail at start (item 9)

RUNC = "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: "


def _create_and_start(daemon: Daemon, fields: dict[str, Any]) -> tuple[str, RawResponse]:
    resp = daemon.raw("POST", f"{V}/containers/create", body=json.dumps({"Image": BUSYBOX, **fields}))
    assert resp.status == 201, resp.message
    cid = str(resp.json()["Id"])
    return cid, daemon.raw("POST", f"{V}/containers/{cid}/start")


def _state(daemon: Daemon, cid: str) -> tuple[str, int, str]:
    s = daemon.raw("GET", f"{V}/containers/{cid}/json").json()["State"]
    return s["Status"], s["ExitCode"], s["Error"]


@pytest.mark.parametrize("fields, error", [
    ({"Cmd": ["true"], "Env": ["A=a\x00b"]},
     'error during container init: environment variable value can\'t contain null(\\x00): "A=a\\x00b"'),
    ({"Cmd": ["true"], "Env": ["A\x00=b"]},
     'error during container init: environment variable name can\'t contain null(\\x00): "A\\x00=b"'),
    ({"Cmd": ["true"], "Hostname": "a\x00b"},
     'error during container init: environment variable value can\'t contain null(\\x00): "HOSTNAME=a\\x00b"'),
], ids=["env-value", "env-name", "hostname"])
def test_nul_in_the_environment_fails_the_start(daemon: Daemon, busybox: str, fields: dict[str, Any],
                                                error: str) -> None:
    cid, resp = _create_and_start(daemon, fields)
    try:
        assert (resp.status, resp.message) == (500, f"{RUNC}{error}: unknown")
        assert _state(daemon, cid) == ("created", 128, f"{RUNC}{error}: unknown")
    finally:
        daemon.raw("DELETE", f"/containers/{cid}?force=1")


def test_nul_in_an_argument_fails_the_exec(daemon: Daemon, busybox: str) -> None:
    """runc starts the process; its execve fails with EINVAL and says so on stderr."""
    cid, resp = _create_and_start(daemon, {"Cmd": ["echo", "a\x00b"]})
    try:
        assert resp.status == 204
        wait = daemon.raw("POST", f"{V}/containers/{cid}/wait", timeout=60).json()
        assert wait["StatusCode"] == 1
        assert _state(daemon, cid) == ("exited", 1, "")
        logs = daemon.raw("GET", f"{V}/containers/{cid}/logs?stdout=1&stderr=1").body
        assert logs == b"\x02\x00\x00\x00\x00\x00\x00\x21exec /bin/echo: invalid argument\n"
    finally:
        daemon.raw("DELETE", f"/containers/{cid}?force=1")


def test_nul_in_the_entrypoint_is_not_found(daemon: Daemon, busybox: str) -> None:
    cid, resp = _create_and_start(daemon, {"Entrypoint": ["ec\x00ho"], "Cmd": ["x"]})
    try:
        error = f'{RUNC}exec: "ec\\x00ho": executable file not found in $PATH: unknown'
        assert (resp.status, resp.message) == (400, error)
        assert _state(daemon, cid) == ("created", 127, error)
    finally:
        daemon.raw("DELETE", f"/containers/{cid}?force=1")


def test_nul_in_the_working_dir_is_refused_at_create(daemon: Daemon, busybox: str) -> None:
    before = set(daemon.list_container_ids())
    resp = daemon.raw("POST", f"{V}/containers/create",
                      body=json.dumps({"Image": BUSYBOX, "Cmd": ["true"], "WorkingDir": "/a\x00b"}))
    assert resp.status >= 400
    assert re.fullmatch(r"lstat /\S+/a\x00b: invalid argument", resp.message), resp.message
    assert set(daemon.list_container_ids()) == before


@pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/cpu/cpu.shares"), reason="needs cgroup v1's cpu.shares")
@pytest.mark.parametrize("shares, bound", [(2 ** 63 - 1, "maximum allowed cpu-shares is 262144"),
                                           (1, "minimum allowed cpu-shares is 2")])
def test_cpu_shares_out_of_the_kernels_range_fail_the_start(daemon: Daemon, busybox: str, shares: int,
                                                            bound: str) -> None:
    cid, resp = _create_and_start(daemon, {"Cmd": ["true"], "HostConfig": {"CpuShares": shares}})
    try:
        error = (f"{RUNC}error during container init: error setting cgroup config for procHooks process: "
                 f"the {bound}: unknown")
        assert (resp.status, resp.message) == (500, error)
        assert _state(daemon, cid) == ("created", 128, error)
    finally:
        daemon.raw("DELETE", f"/containers/{cid}?force=1")


def test_missing_device_fails_the_start(daemon: Daemon, busybox: str) -> None:
    cid, resp = _create_and_start(daemon, {"Cmd": ["true"], "HostConfig": {"Devices": [
        {"PathOnHost": "/dev/no-such-device-x", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}]}})
    try:
        error = 'error gathering device information while adding custom device "/dev/no-such-device-x": ' \
                "no such file or directory"
        assert (resp.status, resp.message) == (500, error)
        assert _state(daemon, cid) == ("created", 128, error)
    finally:
        daemon.raw("DELETE", f"/containers/{cid}?force=1")


# ---------------------------------------------------------------- request framing (item 10)

def _raw_exchange(daemon: Daemon, data: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(socket_path_of(daemon.host))
    try:
        s.sendall(data)
        out = b""
        while b"\r\n\r\n" not in out or not out.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


BAD_CHUNK = (b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
             b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")


def test_bad_chunk_size_gets_gos_words(daemon: Daemon) -> None:
    out = _raw_exchange(daemon, BAD_CHUNK)
    assert re.match(rb"HTTP/1.1 (400|500) ", out), out
    assert out.endswith(b'"invalid byte in chunk length"}\n'), out
    assert daemon.raw("GET", "/_ping").status == 200


@pytest.mark.reference_differs("20.10 answers 500 for a body it cannot read; current Docker answers 400")
def test_bad_chunk_size_is_400(daemon: Daemon) -> None:
    assert _raw_exchange(daemon, BAD_CHUNK).startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("path, body, message", [
    ("networks/create", {"Name": "x", "Internal": "y"},
     r"json: cannot unmarshal string into Go struct field (Network)?CreateRequest\.Internal of type bool"),
    ("networks/create", {"Name": 5},
     r"json: cannot unmarshal number into Go struct field (Network)?CreateRequest\.Name of type string"),
    ("networks/create", {"Name": "x", "IPAM": {"Config": [{"Subnet": 5}]}},
     r"json: cannot unmarshal number into Go struct field IPAMConfig\.IPAM\.Config\.Subnet of type string"),
    ("networks/create", {"Name": "x", "Options": {"a": 1}},
     r"json: cannot unmarshal number into Go struct field (Network)?CreateRequest\.Options of type string"),
    ("networks/create", [1], r"json: cannot unmarshal array into Go value of type (types\.NetworkCreateRequest|"
                             r"network\.CreateRequest)"),
    ("networks/bridge/connect", {"Container": 5},
     r"json: cannot unmarshal number into Go struct field (NetworkConnect|ConnectOptions)\.Container of type string"),
    ("networks/bridge/connect", {"Container": "x", "EndpointConfig": {"Aliases": 5}},
     r"json: cannot unmarshal number into Go struct field EndpointSettings\.EndpointConfig\.Aliases "
     r"of type \[\]string"),
    ("networks/bridge/disconnect", {"Container": "x", "Force": "y"},
     r"json: cannot unmarshal string into Go struct field (NetworkDisconnect|DisconnectOptions)\.Force of type bool"),
], ids=lambda v: v.replace("/", "-") if isinstance(v, str) and not v.startswith("json") else None)
def test_network_bodies_type_errors(daemon: Daemon, path: str, body: Any, message: str) -> None:
    resp = daemon.raw("POST", f"{V}/{path}", body=json.dumps(body))
    assert resp.status == 400
    assert re.fullmatch(message, resp.message), resp.message


def _context_tar() -> bytes:
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"FROM busybox\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("query, message", [
    ('ulimits=[{"Name":"nofile","Soft":"a"}]',
     "error reading ulimit settings: json: cannot unmarshal string into Go struct field Ulimit.Soft of type int64"),
    ('buildargs={"a":1}', "error reading build args: json: cannot unmarshal number into Go value of type string"),
    ('labels={"a":1}', "error reading labels: json: cannot unmarshal number into Go value of type string"),
], ids=["ulimits", "buildargs", "labels"])
def test_build_query_json_type_errors(daemon: Daemon, busybox: str, query: str, message: str) -> None:
    name, _, value = query.partition("=")
    resp = daemon.raw("POST", f"{V}/build?{name}={quote(value)}", body=_context_tar(),
                      headers={"Content-Type": "application/x-tar"})
    assert (resp.status, resp.message) == (400, message)
