"""compat_server/unsupported.py: every create field is acted on or refused, never ignored.

The field lists are checked against the API spec's schemas (and the Go types the
decoder knows), so a field added to either cannot slip through unclassified; the
README's table is the one rendered from the module.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import api_spec
from compat_server import convert, gotypes, unsupported
from compat_server.errors import BadRequest, status_for

README = Path(__file__).resolve().parents[2] / "README.md"


def _props(defs: dict[str, Any], name: str) -> set[str]:
    schema = defs[name]
    out: set[str] = set()
    for part in schema.get("allOf", [schema]):
        if "$ref" in part:
            out |= _props(defs, part["$ref"].rsplit("/", 1)[-1])
        else:
            out |= set(part.get("properties", {}))
    return out


@pytest.fixture(scope="module")
def defs() -> dict[str, Any]:
    d: dict[str, Any] = api_spec.spec()["definitions"]
    return d


def test_every_config_field_of_the_spec_is_classified(defs: dict[str, Any]) -> None:
    known = set(unsupported.CONFIG)
    assert _props(defs, "ContainerConfig") <= known
    assert set(gotypes.CONFIG_FIELDS) <= known      # MacAddress: older APIs' field
    assert known <= _props(defs, "ContainerConfig") | set(gotypes.CONFIG_FIELDS)


def test_every_host_config_field_of_the_spec_is_classified(defs: dict[str, Any]) -> None:
    known = set(unsupported.HOST_CONFIG)
    assert _props(defs, "HostConfig") <= known
    assert _props(defs, "Resources") <= known
    assert set(gotypes.HOST_CONFIG.fields) <= known  # KernelMemory*: older APIs' fields
    assert known <= _props(defs, "HostConfig") | set(gotypes.HOST_CONFIG.fields)


def test_every_endpoint_settings_field_is_classified(defs: dict[str, Any]) -> None:
    assert set(unsupported.ENDPOINT_SETTINGS) == _props(defs, "EndpointSettings")


def test_every_field_says_what_is_done_or_refused() -> None:
    for table in (unsupported.CONFIG, unsupported.HOST_CONFIG, unsupported.ENDPOINT_SETTINGS):
        for name, f in table.items():
            assert f.acted or f.refused, name


def test_the_refusal_rules_cover_the_fields_marked_refused() -> None:
    """A field marked wholly refused (nothing acted on) is one check_create refuses when set."""
    samples: dict[str, Any] = {
        "CgroupParent": "/mine", "CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 500,
        "DeviceRequests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}],
        "KernelMemoryTCP": 1 << 20, "CpuCount": 1, "CpuPercent": 50, "IOMaximumIOps": 10,
        "IOMaximumBandwidth": 10, "Annotations": {"a": "b"}, "Cgroup": "container:x",
        "StorageOpt": {"size": "1G"},
    }
    for name, f in unsupported.HOST_CONFIG.items():
        if f.acted:
            continue
        body = {"Image": "busybox", "HostConfig": {name: samples[name]}}
        with pytest.raises(BadRequest):
            unsupported.check_create(body)
    with pytest.raises(BadRequest, match="Config.NetworkDisabled is not supported by pydockerd"):
        unsupported.check_create({"Image": "busybox", "NetworkDisabled": True})


# What the docker CLI 28 sends for `docker run busybox true` (recorded), and docker-py's containers.run.
CLI_BODY = json.loads("""{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,
"AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["true"],"Image":"busybox",
"Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,
"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},
"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,
"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],
"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"",
"Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"",
"ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,
"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],
"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"",
"CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,
"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,
"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},
"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"",
"DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,
"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}""")
DOCKER_PY_BODY = {"Tty": False, "OpenStdin": False, "StdinOnce": False, "AttachStdin": False, "AttachStdout": False,
                  "AttachStderr": False, "Cmd": ["true"], "Image": "busybox", "NetworkDisabled": False,
                  "HostConfig": {"NetworkMode": "default"}}


@pytest.mark.parametrize("body", [CLI_BODY, DOCKER_PY_BODY], ids=["docker-cli", "docker-py"])
def test_the_clients_defaults_are_not_refused(body: dict[str, Any]) -> None:
    unsupported.check_create(body)
    convert.decode_create(copy.deepcopy(body), "1.47")


def _with(**hc: Any) -> dict[str, Any]:
    body = copy.deepcopy(CLI_BODY)
    body["HostConfig"].update(hc)
    return body


@pytest.mark.parametrize(("hc", "words"), [
    ({"CgroupParent": "/mine"}, "HostConfig.CgroupParent is not supported by pydockerd"),
    ({"Cgroup": "container:abc"}, "HostConfig.Cgroup is not supported by pydockerd"),
    ({"StorageOpt": {"size": "1G"}}, "HostConfig.StorageOpt is not supported by pydockerd"),
    ({"Annotations": {"org.example": "x"}}, "HostConfig.Annotations is not supported by pydockerd"),
    ({"CpuRealtimeRuntime": 950000}, "HostConfig.CpuRealtimeRuntime is not supported by pydockerd"),
    ({"DeviceRequests": [{"Count": -1, "Capabilities": [["gpu"]]}]},
     "HostConfig.DeviceRequests is not supported by pydockerd"),
    ({"CpuCount": 2}, "HostConfig.CpuCount is not supported by pydockerd"),
    ({"IOMaximumIOps": 5}, "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"),
    ({"Isolation": "hyperv"}, "Invalid isolation: \"hyperv\" - linux only supports 'default'"),
    ({"CgroupnsMode": "bogus"}, "invalid cgroup namespace mode: bogus"),
])
def test_refusals_name_the_field(hc: dict[str, Any], words: str) -> None:
    with pytest.raises(BadRequest, match=words) as e:
        convert.decode_create(_with(**hc), "1.47")
    assert status_for(e.value) == 400


@pytest.mark.parametrize("hc", [
    {"CgroupnsMode": "private"}, {"CgroupnsMode": "host"}, {"Isolation": "default"}, {"Links": ["web:db"]},
    {"MemorySwappiness": -1},
])
def test_values_that_are_acted_on_pass(hc: dict[str, Any]) -> None:
    unsupported.check_create(_with(**hc))


def _endpoint(**ep: Any) -> dict[str, Any]:
    body = copy.deepcopy(CLI_BODY)
    body["NetworkingConfig"]["EndpointsConfig"]["default"].update(ep)
    return body


def test_endpoint_refusals() -> None:
    with pytest.raises(BadRequest, match=r"EndpointsConfig\[default\].DriverOpts is not supported"):
        unsupported.check_create(_endpoint(DriverOpts={"com.docker.network.endpoint.sysctls": "x"}))
    with pytest.raises(BadRequest, match=r"EndpointsConfig\[default\].GwPriority is not supported"):
        unsupported.check_create(_endpoint(GwPriority=10))
    with pytest.raises(BadRequest, match=r"EndpointsConfig\[default\].IPAMConfig.LinkLocalIPs is not supported"):
        unsupported.check_create(_endpoint(IPAMConfig={"LinkLocalIPs": ["169.254.0.9"]}))
    with pytest.raises(BadRequest, match=r"EndpointsConfig\[default\].Links is not supported"):
        unsupported.check_create(_endpoint(Links=["a:b"]))
    # the CLI copies --link into the first network's endpoint: that is HostConfig.Links, acted on
    body = _endpoint(Links=["a:b"])
    body["HostConfig"]["Links"] = ["a:b"]
    unsupported.check_create(body)


def test_update_refuses_fields_it_would_not_apply() -> None:
    cli_update = {"CpuShares": 0, "Memory": 10 << 20, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": None,
                  "Devices": None, "Ulimits": None, "MemorySwappiness": None, "OomKillDisable": None,
                  "PidsLimit": None, "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}
    unsupported.check_update(cli_update)
    for key, value in (("Ulimits", [{"Name": "nofile", "Soft": 1, "Hard": 2}]), ("OomKillDisable", True),
                       ("MemorySwappiness", 10), ("CgroupParent", "/x"), ("Devices", [{"PathOnHost": "/dev/null"}])):
        with pytest.raises(BadRequest, match=f"UpdateConfig.{key} is not supported by pydockerd"):
            unsupported.check_update({**cli_update, key: value})


def test_update_applied_fields_are_the_ones_the_codec_decodes() -> None:
    from compat_server import resources_codec

    assert unsupported.UPDATE_APPLIED == {*resources_codec.FIELDS, "RestartPolicy"}


def test_readme_has_the_table() -> None:
    assert unsupported.readme_table() in README.read_text(encoding="utf-8")


def test_network_connect_refuses_endpoint_settings_it_cannot_honour() -> None:
    cli_connect = {"Container": "c1", "EndpointConfig": {"IPAMConfig": {}, "Links": None, "Aliases": None,
                                                         "DriverOpts": None, "GwPriority": 0, "MacAddress": ""}}
    unsupported.check_connect(cli_connect)
    unsupported.check_connect({"Container": "c1"})
    for key, value in (("Links", ["a:b"]), ("DriverOpts", {"x": "y"}), ("GwPriority", 5)):
        body = copy.deepcopy(cli_connect)
        body["EndpointConfig"][key] = value
        with pytest.raises(BadRequest, match=f"EndpointConfig.{key} is not supported by pydockerd"):
            unsupported.check_connect(body)
