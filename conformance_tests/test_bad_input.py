"""Hostile and mistyped input: Go's decoder words and a 4xx, never a crash (issue 9 items 7-9)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from conformance_tests.harness import Daemon, RawResponse
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
