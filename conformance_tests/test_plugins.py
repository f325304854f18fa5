"""The plugins API of a daemon with no plugins installed (issue 9 item 18), and link removal (item 17)."""
from __future__ import annotations

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import ok

BUSYBOX = "busybox"


def test_plugin_ls_is_empty(daemon: Daemon) -> None:
    out = ok(daemon.cli("plugin", "ls"))
    assert out.split() == ["ID", "NAME", "DESCRIPTION", "ENABLED"]
    assert ok(daemon.cli("plugin", "ls", "-q")) == ""
    assert daemon.raw("GET", "/plugins").json() == []
    assert daemon.raw("GET", '/plugins?filters={"capability":["volumedriver"]}').json() == []
    assert daemon.raw("GET", '/plugins?filters={"enabled":["true"]}').json() == []


@pytest.mark.parametrize("filters, message", [
    ('{"foo":["x"]}', "Invalid filter 'foo'"),
    ('{"enabled":["maybe"]}', "Invalid filter 'enabled=[maybe]'"),
])
def test_plugin_ls_bad_filters(daemon: Daemon, filters: str, message: str) -> None:
    resp = daemon.raw("GET", f"/plugins?filters={filters}")
    assert (resp.status, resp.message) == (400, message)


@pytest.mark.parametrize("args", [
    ("plugin", "inspect", "foo"), ("plugin", "rm", "foo"), ("plugin", "enable", "foo"),
    ("plugin", "disable", "foo"), ("plugin", "set", "foo", "a=b"),
], ids=lambda a: a[1])
def test_plugin_commands_on_a_missing_plugin(daemon: Daemon, args: tuple[str, ...]) -> None:
    proc = daemon.cli(*args)
    assert proc.returncode == 1
    assert 'Error response from daemon: plugin "foo" not found' in proc.stderr


@pytest.mark.parametrize("method, path, body, status, message", [
    ("GET", "/plugins/foo/json", None, 404, 'plugin "foo" not found'),
    ("GET", "/plugins/example.com/a/b:1/json", None, 404, 'plugin "example.com/a/b:1" not found'),
    ("DELETE", "/plugins/foo?force=1", None, 404, 'plugin "foo" not found'),
    ("POST", "/plugins/foo/enable?timeout=0", None, 404, 'plugin "foo" not found'),
    ("POST", "/plugins/foo/enable", None, 500, 'strconv.Atoi: parsing "": invalid syntax'),
    ("POST", "/plugins/foo/disable", None, 404, 'plugin "foo" not found'),
    ("POST", "/plugins/foo/push", None, 404, 'plugin "foo" not found'),
    ("POST", "/plugins/foo/set", '["a=b"]', 404, 'plugin "foo" not found'),
    ("POST", "/plugins/foo/set", "{bad", 400, "invalid character 'b' looking for beginning of object key string"),
    ("POST", "/plugins/foo/upgrade?remote=foo", "[]", 404, 'plugin "foo:latest" not found'),
    ("POST", "/plugins/foo/upgrade?remote=foo", None, 500, "failed to parse privileges: EOF"),
    ("POST", "/plugins/pull", None, 500, "failed to parse privileges: EOF"),
])
def test_plugin_endpoints_for_a_missing_plugin(daemon: Daemon, method: str, path: str, body: str | None,
                                               status: int, message: str) -> None:
    resp = daemon.raw(method, path, body=body)
    assert (resp.status, resp.message) == (status, message)


def test_plugin_privileges_and_create_need_a_reference(daemon: Daemon) -> None:
    resp = daemon.raw("GET", "/plugins/privileges")
    assert resp.status in (400, 500) and resp.message == "invalid reference format"
    resp = daemon.raw("POST", "/plugins/create")
    assert resp.status in (400, 500) and resp.message == "failed to parse reference : invalid reference format"


def test_rm_link_of_a_link_that_does_not_exist(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    proc = daemon.cli("rm", "--link", f"{name}/alias")
    assert proc.returncode == 1
    assert f"Error response from daemon: No such container: {name}/alias" in proc.stderr
    resp = daemon.raw("DELETE", "/containers/no-such-x/alias?link=1")
    assert (resp.status, resp.message) == (404, "No such container: no-such-x/alias")
    # without link=1 the slash is part of the name all the same
    resp = daemon.raw("DELETE", f"/containers/{name}/alias")
    assert (resp.status, resp.message) == (404, f"No such container: {name}/alias")
    assert ok(daemon.cli("inspect", "-f", "{{.Name}}", name)).strip() == f"/{name}"


def test_rm_link_without_a_parent_is_refused(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    proc = daemon.cli("rm", "--link", name)
    assert proc.returncode == 1
    assert "Conflict, cannot remove the default link name of the container" in proc.stderr
    assert ok(daemon.cli("inspect", "-f", "{{.Name}}", name)).strip() == f"/{name}"
