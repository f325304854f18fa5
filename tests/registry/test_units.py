"""Pure logic of the registry client: credentials, insecure rules, challenges, errors, platforms."""
from __future__ import annotations

import base64
import json

import httpx
import pytest

from engine.errors import InvalidParameter
from engine.registry import auth
from engine.registry.client import RegistryConfig, _error_text, parse_challenge
from engine.registry.pull import Platform, parse_platform, select_platform
from engine.registry.service import _server_domain, parse_pull_reference


def test_decode_header_forms() -> None:
    payload = {"username": "u", "password": "p>?~", "serveraddress": "r:5000"}
    raw = json.dumps(payload).encode()
    for encoded in (base64.urlsafe_b64encode(raw).decode(), base64.b64encode(raw).decode(),
                    base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        a = auth.decode_header(encoded)
        assert (a.username, a.password, a.server_address) == ("u", "p>?~", "r:5000")
    assert auth.decode_header(base64.b64encode(b"{}").decode()).empty
    assert auth.decode_header("").empty and auth.decode_header(None).empty
    assert auth.decode_header("!!not base64!!").empty
    a = auth.decode_header(base64.b64encode(b'{"Username":"x","IdentityToken":"t"}').decode())
    assert (a.username, a.identity_token) == ("x", "t")


def test_decode_body() -> None:
    assert auth.decode_body(b'{"username":"a","password":"b"}').password == "b"
    assert auth.decode_body(b"").empty
    with pytest.raises(InvalidParameter):
        auth.decode_body(b"{nope")


@pytest.mark.parametrize("host,insecure", [
    ("localhost:5000", True), ("127.0.0.1:5000", True), ("127.9.9.9", True), ("[::1]:5000", True),
    ("10.1.2.3:5000", True), ("myreg:5000", True), ("10.2.0.1:443", False), ("example.com", False),
    ("registry-1.docker.io", False),
])
def test_insecure_rule(host: str, insecure: bool) -> None:
    cfg = RegistryConfig(insecure=("10.1.0.0/16", "myreg:5000"))
    assert cfg.is_insecure(host) is insecure


def test_parse_challenge() -> None:
    scheme, params = parse_challenge('Bearer realm="https://auth.example/token",service="reg",'
                                     'scope="repository:a/b:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_error_text() -> None:
    resp = httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
    assert _error_text(resp) == ("manifest unknown: manifest unknown", "MANIFEST_UNKNOWN")
    assert _error_text(httpx.Response(401))[0] == "unauthorized: authentication required"
    assert _error_text(httpx.Response(502))[0] == "received unexpected HTTP status: 502 Bad Gateway"


def test_platforms() -> None:
    assert parse_platform("") is None
    assert parse_platform("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert parse_platform("linux/x86_64") == Platform("linux", "amd64")
    with pytest.raises(InvalidParameter):
        parse_platform("linux//")
    entries = [
        {"digest": "a", "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
        {"digest": "b", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": "c", "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "d", "platform": {"os": "windows", "architecture": "amd64"}},
    ]
    assert select_platform(entries, Platform("linux", "amd64"))["digest"] == "c"  # type: ignore[index]
    assert select_platform(entries, Platform("linux", "arm", "v7"))["digest"] == "b"  # type: ignore[index]
    assert select_platform(entries, Platform("linux", "s390x")) is None


def test_pull_reference_and_server_address() -> None:
    r = parse_pull_reference("127.0.0.1:5000/a/b", "sha256:" + "a" * 64)
    assert (r.tag, r.digest) == (None, "sha256:" + "a" * 64)
    assert parse_pull_reference("busybox", "1.36").familiar() == "busybox:1.36"
    assert parse_pull_reference("busybox", "").tag is None  # all tags
    with pytest.raises(InvalidParameter, match="invalid tag format"):
        parse_pull_reference("busybox", "bad tag")
    with pytest.raises(InvalidParameter):
        parse_pull_reference("busybox", "sha256:abc")
    assert _server_domain("https://index.docker.io/v1/") == "docker.io"
    assert _server_domain("127.0.0.1:5000") == "127.0.0.1:5000"
    assert _server_domain("http://reg.example:5000/") == "reg.example:5000"


def test_daemon_registry_options(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from compat_server.daemon import DaemonError, resolve_options
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"registry-mirrors": ["http://mirror:5000"], "registry-certs-dir": "/etc/x/certs.d",
                               "insecure-registries": ["10.0.0.0/8"]}))
    args = resolve_options(["--config-file", str(cfg)])
    assert args.registry_mirrors == ["http://mirror:5000"]
    assert args.registry_certs_dir == "/etc/x/certs.d"
    assert args.insecure_registries == ["10.0.0.0/8"]
    cfg.write_text("{}")
    args = resolve_options(["--config-file", str(cfg), "--registry-certs-dir", "/tmp/c", "--registry-mirror", "http://m"])
    assert (args.registry_certs_dir, args.registry_mirrors) == ("/tmp/c", ["http://m"])
    args = resolve_options(["--config-file", str(cfg)])
    assert args.registry_certs_dir == "/etc/pydockerd/certs.d" and args.registry_mirrors == []
    cfg.write_text(json.dumps({"registry-certs-dir": "/a"}))
    with pytest.raises(DaemonError, match="specified both as a flag and in the configuration file"):
        resolve_options(["--config-file", str(cfg), "--registry-certs-dir", "/b"])
