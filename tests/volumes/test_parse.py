"""-v strings, --mount entries and --volumes-from specs -> mount points, with dockerd's words."""
from __future__ import annotations

import pytest

from engine.errors import InvalidParameter
from engine.types import MountSpec
from engine.volumes.parse import parse_bind, parse_mount, parse_volumes_from, tmpfs_data


def test_bind_forms() -> None:
    b = parse_bind("/host/dir/:/in//here:ro,rslave")
    assert (b.type, b.source, b.destination, b.rw, b.mode, b.propagation, b.from_binds) == \
        ("bind", "/host/dir", "/in/here", False, "ro,rslave", "rslave", True)
    v = parse_bind("data:/d")
    assert (v.type, v.name, v.mode, v.rw, v.copy_data) == ("volume", "data", "z", True, True)
    assert parse_bind("data:/d:nocopy").copy_data is False
    anon = parse_bind("/only-dest")
    assert (anon.type, anon.name, anon.destination) == ("volume", "", "/only-dest")


@pytest.mark.parametrize("raw, message", [
    ("/a:/b:ro,rw", "invalid mode: ro,rw"),
    ("/a:/b:c:d", "invalid volume specification: '/a:/b:c:d'"),
    ("/x:rw", "invalid volume specification: '/x:rw'"),
    (":/b", "invalid volume specification: ':/b'"),
    ("/a:/", "invalid volume specification: '/a:/': invalid mount config for type \"bind\": "
             "invalid specification: destination can't be '/'"),
])
def test_bind_errors(raw: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_bind(raw)
    assert err.value.message == message


def test_mount_entries(tmp_path: object) -> None:
    t = parse_mount(MountSpec(type="tmpfs", target="/t", has_tmpfs_options=True, tmpfs_size=3 << 20,
                              tmpfs_mode=0o1777, tmpfs_options=(("exec",),)))
    assert t.tmpfs_data == "mode=1777,size=3m,exec"
    v = parse_mount(MountSpec(type="volume", source="n", target="/v", read_only=True, has_volume_options=True,
                              volume_nocopy=True))
    assert (v.name, v.rw, v.copy_data, v.mode) == ("n", False, False, "z")
    b = parse_mount(MountSpec(type="bind", source="/", target="/host", bind_propagation="rslave",
                              has_bind_options=True))
    assert (b.source, b.propagation, b.from_binds) == ("/", "rslave", False)


@pytest.mark.parametrize("spec, message", [
    (MountSpec(type="bind", source="/nonexistent-src-xyz", target="/x"),
     'invalid mount config for type "bind": bind source path does not exist: /nonexistent-src-xyz'),
    (MountSpec(type="bind", source="/", target="/x", has_volume_options=True),
     'invalid mount config for type "bind": field VolumeOptions must not be specified'),
    (MountSpec(type="volume", target=""), 'invalid mount config for type "volume": field Target must not be empty'),
    (MountSpec(type="tmpfs", target="/x", has_tmpfs_options=True, tmpfs_options=(("size", "1"),)),
     'invalid mount config for type "tmpfs": invalid option: size'),
    (MountSpec(type="npipe", target="/x"), 'invalid mount config for type "npipe": mount type unknown'),
    (MountSpec(type="bind", source="/", target="/x", has_bind_options=True, bind_propagation="weird"),
     'invalid mount config for type "bind": invalid propagation mode: weird'),
])
def test_mount_errors(spec: MountSpec, message: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_mount(spec)
    assert err.value.message == message


def test_volumes_from() -> None:
    assert parse_volumes_from("c1") == ("c1", "rw")
    assert parse_volumes_from("c1:ro") == ("c1", "ro")
    for bad in ("c1:rshared", "c1:nocopy", "c1:bogus"):
        with pytest.raises(InvalidParameter, match="invalid mode"):
            parse_volumes_from(bad)
    with pytest.raises(InvalidParameter, match="cannot be an empty string"):
        parse_volumes_from("")


def test_tmpfs_size_suffixes() -> None:
    assert tmpfs_data(1 << 30, 0, (), False) == "size=1g"
    assert tmpfs_data(1536, 0, (), True) == "ro,size=1536"
