"""The OCI spec as small options over dockerd's default (engine/oci/spec.py)."""
from __future__ import annotations

from engine.oci import spec as S
from engine.oci.caps import DEFAULT_CAPABILITIES


def test_the_default_is_what_an_empty_input_builds() -> None:
    assert S.apply(S.default_spec("/r"), []) == S.build_spec(S.SpecInput(container_id="c", rootfs="/r", args=[]))


def test_options_apply_in_order_and_extra_options_come_last() -> None:
    seen: list[str] = []

    def note(spec: S.Spec) -> None:
        seen.append(spec["process"]["args"][0])       # the input's own options already applied
        spec["linux"]["sysctl"]["kernel.msgmax"] = "1"
        spec["annotations"] = {"org.example/by": "a contributor"}

    inp = S.SpecInput(container_id="c", rootfs="/r", args=["sh"], extra_sysctls={"kernel.msgmax": "9"},
                      extra_options=(note,))
    spec = S.build_spec(inp)
    assert seen == ["sh"]
    assert spec["linux"]["sysctl"]["kernel.msgmax"] == "1"
    assert spec["annotations"] == {"org.example/by": "a contributor"}
    assert list(spec)[-1] == "annotations"            # dockerd's keys keep their order before it


def test_user_and_capabilities() -> None:
    spec = S.apply(S.default_spec("/r"), [S.with_user(1000, 1000, [1000, 27])])
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 27]}
    assert set(spec["process"]["capabilities"]) == {"bounding"}      # a non-root process: bounding only
    root = S.apply(S.default_spec("/r"), [S.with_capabilities(["CAP_KILL"])])
    assert root["process"]["capabilities"] == {k: ["CAP_KILL"] for k in ("bounding", "effective", "permitted")}
    assert sorted(S.default_spec("/r")["process"]["capabilities"]["bounding"]) == sorted(DEFAULT_CAPABILITIES)


def test_mounts_replace_a_standard_destination_and_append_the_rest() -> None:
    spec = S.apply(S.default_spec("/r"), [S.with_mounts([("/dev/shm/", "bind", "/host/shm", ("rbind",)),
                                                          ("/data", "bind", "/srv", ("rbind", "ro"))])])
    shm = [m for m in spec["mounts"] if m["destination"].rstrip("/") == "/dev/shm"]
    assert shm == [{"destination": "/dev/shm/", "type": "bind", "source": "/host/shm", "options": ["rbind"]}]
    assert spec["mounts"][-1] == {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]}


def test_namespaces_host_uts_and_no_private_network() -> None:
    spec = S.apply(S.default_spec("/r"), [S.with_hostname("box"),
                                          S.with_namespaces(S.DEFAULT_NAMESPACES, [("uts", ""), ("network", "")])])
    assert spec["hostname"] == ""
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["mount", "pid", "ipc"]
    assert "sysctl" not in spec["linux"]         # dockerd's net sysctls need a network namespace
    joined = S.apply(S.default_spec("/r"), [S.with_namespaces(S.DEFAULT_NAMESPACES, [("network", "/run/n")])])
    assert {"type": "network", "path": "/run/n"} in joined["linux"]["namespaces"]
    assert joined["linux"]["sysctl"] == S.DEFAULT_NET_SYSCTLS


def test_privileged() -> None:
    dev = {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    spec = S.apply(S.default_spec("/r"), [S.with_privileged([dev])])
    lx = spec["linux"]
    assert lx["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "seccomp" not in lx and "maskedPaths" not in lx and "readonlyPaths" not in lx
    assert lx["devices"] == [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}]
    assert "CAP_SYS_ADMIN" in spec["process"]["capabilities"]["bounding"]


def test_resources_merge_and_device_rules() -> None:
    spec = S.apply(S.default_spec("/r"), [S.with_device_rules([{"allow": True, "type": "c", "access": "r"}]),
                                          S.with_resources({"memory": {"limit": 5}, "pids": {"limit": 3}})])
    res = spec["linux"]["resources"]
    assert res["memory"] == {"disableOOMKiller": False, "limit": 5} and res["pids"] == {"limit": 3}
    assert res["devices"][-1] == {"allow": True, "type": "c", "access": "r"}
