"""engine.gojson: Go's nesting limit, syntax and type-error words, without Python's recursion limit."""

from __future__ import annotations

from typing import Any

import pytest

from compat_server import gotypes
from engine import gojson, gojson_parse


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


@pytest.mark.parametrize(
    "doc, depth_error",
    [
        (nested(10000), False),
        (nested(10001), True),
        ('{"a":' + nested(9999) + "}", False),
        ('{"a":' + nested(10000) + "}", True),
        ("[" * 10001, True),  # the limit is reached before the missing closers
    ],
)
def test_depth_limit_is_gos(doc: str, depth_error: bool) -> None:
    if depth_error:
        with pytest.raises(gojson.JSONSyntaxError, match=r"^invalid character '\[' exceeded max depth$"):
            gojson.loads(doc)
    else:
        value: Any = gojson.loads(doc)
        while isinstance(value, dict):
            value = value["a"]
        depth = 0
        while value:
            value, depth = value[0], depth + 1
        assert depth == doc.count("[") - 1


def test_deep_objects_name_the_brace() -> None:
    doc = '{"a":' * 10001 + "1" + "}" * 10001
    with pytest.raises(gojson.JSONSyntaxError, match=r"^invalid character '\{' exceeded max depth$"):
        gojson.loads(doc)


def test_deep_documents_decode_to_the_same_value_as_shallow_ones() -> None:
    doc = '{"k": [1, 2.5, "s\\u00e9", true, false, null, {}, []], "n": ' + "[" * 3000 + '{"x": -1e3}' + "]" * 3000 + "}"
    value = gojson.loads(doc)
    assert value["k"] == [1, 2.5, "s\u00e9", True, False, None, {}, []]
    inner = value["n"]
    for _ in range(3000):
        inner = inner[0]
    assert inner == {"x": -1000.0} and inner["x"].text == "-1e3"


@pytest.mark.parametrize(
    "doc, stream, message",
    [
        ("{bad", False, "invalid character 'b' looking for beginning of object key string"),
        ("[1 2]", False, "invalid character '2' after array element"),
        ('{"a":1 "b":2}', False, "invalid character '\"' after object key:value pair"),
        ('{"a" 1}', False, "invalid character '1' after object key"),
        ("[1]x", False, "invalid character 'x' after top-level value"),
        ("[1]x", True, None),  # a json.Decoder takes the first value and stops
        ("[1,", False, "unexpected end of JSON input"),
        ("[1,", True, "unexpected EOF"),
        ('"a\\x"', False, "invalid character 'x' in string escape code"),
        ('"a\x01"', False, "invalid character '\\x01' in string literal"),
        ("[tx]", False, "invalid character 'x' in literal true (expecting 'r')"),
        ("", False, "unexpected end of JSON input"),
    ],
)
def test_syntax_errors_in_gos_words(doc: str, stream: bool, message: str | None) -> None:
    if message is None:
        gojson.loads(doc, stream=stream)
        return
    with pytest.raises(gojson.JSONSyntaxError) as info:
        gojson.loads(doc, stream=stream)
    assert info.value.message == message
    # the same words from the parser that takes over when Python's decoder would recurse too deep
    with pytest.raises(gojson.JSONSyntaxError) as deep:
        gojson_parse._Iterative(doc, stream).parse()
    assert deep.value.message == message


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {"Healthcheck": {"Interval": "1s"}},
            "json: cannot unmarshal string into Go struct field"
            " HealthConfig.Healthcheck.Interval of type time.Duration",
        ),
        (
            {"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "a"}]}},
            "json: cannot unmarshal string into Go struct field Ulimit.HostConfig.Ulimits.Soft of type int64",
        ),
        (
            {"HostConfig": {"Ulimits": [5]}},
            "json: cannot unmarshal number into Go struct field HostConfig.HostConfig.Ulimits of type units.Ulimit",
        ),
        (
            {"HostConfig": {"Devices": [{"PathOnHost": 5}]}},
            "json: cannot unmarshal number into Go struct field"
            " DeviceMapping.HostConfig.Devices.PathOnHost of type string",
        ),
        (
            {"HostConfig": {"Memory": 2**70}},
            f"json: cannot unmarshal number {2**70} into Go struct field HostConfig.HostConfig.Memory of type int64",
        ),
        (
            {"HostConfig": {"CpuShares": 2**64}},
            f"json: cannot unmarshal number {2**64} into Go struct field HostConfig.HostConfig.CpuShares of type int64",
        ),
        (
            {"HostConfig": {"BlkioWeight": -1}},
            "json: cannot unmarshal number -1 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16",
        ),
        ({"Cmd": [5]}, "json: cannot unmarshal array into Go struct field ContainerConfigWrapper.Cmd of type string"),
        (
            {"Labels": {"a": 1}},
            "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Labels of type string",
        ),
        (
            {"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 5}]}}},
            "json: cannot unmarshal number into Go struct field"
            " PortBinding.HostConfig.PortBindings.HostPort of type string",
        ),
        (
            {"NetworkingConfig": {"EndpointsConfig": {"a": {"IPAMConfig": {"IPv4Address": 5}}}}},
            (
                "json: cannot unmarshal number into Go struct field "
                "EndpointIPAMConfig.NetworkingConfig.EndpointsConfig.IPAMConfig.IPv4Address of type string"
            ),
        ),
        (
            {"HostConfig": {"Mounts": [{"TmpfsOptions": {"Mode": "x"}}]}},
            (
                "json: cannot unmarshal string into Go struct field TmpfsOptions.HostConfig.Mounts.TmpfsOptions.Mode "
                "of type fs.FileMode"
            ),
        ),
    ],
)
def test_type_errors_name_the_innermost_struct_and_the_path(body: dict[str, Any], message: str) -> None:
    with pytest.raises(gojson.GoTypeError) as info:
        gojson.check(body, gotypes.create_request("1.41"))
    assert info.value.message == message


def test_float_literals_are_quoted_as_written() -> None:
    body = gojson.loads('{"HostConfig": {"Memory": 1e3}}')
    with pytest.raises(gojson.GoTypeError, match="number 1e3 into Go struct field HostConfig.HostConfig.Memory"):
        gojson.check(body, gotypes.create_request("1.41"))


def test_valid_bodies_and_nulls_pass() -> None:
    gojson.check(
        {
            "Image": "x",
            "Cmd": "sh",
            "Entrypoint": None,
            "HostConfig": {
                "Memory": 2**63 - 1,
                "Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}],
                "ConsoleSize": [0, 0],
                "PortBindings": {"80/tcp": [{"HostPort": "8080"}]},
                "Init": None,
            },
            "hostname": "h",
        },
        gotypes.create_request("1.41"),
    )


def test_keys_match_case_insensitively_like_go() -> None:
    with pytest.raises(gojson.GoTypeError, match="HostConfig.hostconfig.memory of type int64"):
        gojson.check({"hostconfig": {"memory": "x"}}, gotypes.create_request("1.41"))


def test_keys_are_matched_regardless_of_case_as_go_does() -> None:
    from compat_server import gotypes
    t = gotypes.create_request("1.50")
    body = {"image": "busybox", "cmd": ["true"], "hostconfig": {"memory": 1 << 20, "Memory": 2 << 20,
                                                                "cpushares": 3, "unknownKey": 1}}
    out = gojson.canonical(body, t)
    assert out["Image"] == "busybox" and out["Cmd"] == ["true"]
    hc = out["HostConfig"]
    assert hc["Memory"] == 2 << 20            # the last spelling wins, as in Go
    assert hc["CpuShares"] == 3 and hc["unknownKey"] == 1
    assert "memory" not in hc


def test_a_lowercase_field_is_acted_on_not_ignored() -> None:
    from compat_server.convert import decode_create
    cfg, hc = decode_create({"image": "busybox", "hostconfig": {"memory": 8 << 20, "readonlyrootfs": True}}, "1.50")
    assert cfg.image == "busybox"
    assert hc.resources.memory == 8 << 20 and hc.readonly_rootfs is True
