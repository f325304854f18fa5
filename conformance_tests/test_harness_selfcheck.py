"""Self-checks of the harness pieces that need no daemon: the CLI proxy and the docker-py hook."""
from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance_tests.contract import ResponseRecorder, api_path
from conformance_tests.harness import raw_request
from conformance_tests.proxy import ValidatingProxy


class FakeDaemon:
    """A unix-socket HTTP server answering canned responses keyed by request path."""

    def __init__(self, path: Path, responses: dict[str, bytes]) -> None:
        self.path = path
        self.responses = responses
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                target = line.split()[1].decode()
                length = 0
                while (h := f.readline()) not in (b"\r\n", b""):
                    if h.lower().startswith(b"content-length:"):
                        length = int(h.split(b":")[1])
                f.read(length)
                resp = self.responses[target.split("?")[0]]
                conn.sendall(resp)
                if b"101 UPGRADED" in resp:
                    data = f.read1(100)  # echo one message, then close
                    conn.sendall(b"echo:" + data)
                    conn.shutdown(socket.SHUT_WR)
                    return
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def _json(body: bytes, status: str = "200 OK") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _chunked(body: bytes) -> bytes:
    half = len(body) // 2
    parts = [body[:half], body[half:]]
    out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    for p in parts:
        out += f"{len(p):x}\r\n".encode() + p + b"\r\n"
    return out + b"0\r\n\r\n"


@pytest.fixture
def setup() -> Iterator[tuple[FakeDaemon, ValidatingProxy, list]]:
    tmp = Path(tempfile.mkdtemp(prefix="pydc-self-"))
    fake = FakeDaemon(tmp / "fake.sock", {
        "/v1.41/containers/json": _json(b'[{"Id": "abc"}]'),
        "/version": _chunked(b'{"ApiVersion": "1.41", "Version": "x"}'),
        "/broken": _json(b'{"not json'),
        "/containers/x/logs": _chunked(b'{"a":1}\n{"b":2}\n'),
        "/containers/x/attach": b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                                b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
    })
    seen: list = []

    def validate(method: str, path: str, status: int, body: object) -> None:
        seen.append((method, path, status, body))
        if path == "/version" and isinstance(body, dict) and body.get("Version") == "x":
            raise ValueError("Version must not be x")

    proxy = ValidatingProxy(tmp / "proxy.sock", str(fake.path), validate)
    try:
        yield fake, proxy, seen
    finally:
        proxy.close()
        fake.close()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def test_proxy_relays_and_validates(setup) -> None:
    _, proxy, seen = setup
    resp = raw_request(proxy.host, "GET", "/v1.41/containers/json?all=1")
    assert resp.status == 200 and resp.json() == [{"Id": "abc"}]
    assert seen == [("GET", "/containers/json", 200, [{"Id": "abc"}])]
    assert proxy.take_failures() == []


def test_proxy_reports_schema_failure_on_chunked_body(setup) -> None:
    _, proxy, _ = setup
    resp = raw_request(proxy.host, "GET", "/version")
    assert resp.json()["Version"] == "x"
    failures = proxy.take_failures()
    assert len(failures) == 1 and "Version must not be x" in failures[0]


def test_proxy_reports_invalid_json(setup) -> None:
    _, proxy, seen = setup
    raw_request(proxy.host, "GET", "/broken")
    failures = proxy.take_failures()
    assert len(failures) == 1 and "body is not" in failures[0]
    assert seen == []


def test_proxy_checks_finished_json_streams_as_a_whole(setup) -> None:
    _, proxy, seen = setup
    resp = raw_request(proxy.host, "GET", "/containers/x/logs")
    assert resp.body == b'{"a":1}\n{"b":2}\n'
    assert proxy.take_failures() == []
    assert seen == [("GET", "/containers/x/logs", 200, b'{"a":1}\n{"b":2}\n')]


def test_proxy_splices_hijacked_connection(setup) -> None:
    _, proxy, _ = setup
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(proxy.listen_path))
    s.sendall(b"POST /containers/x/attach HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    f = s.makefile("rb")
    assert f.readline().startswith(b"HTTP/1.1 101")
    while f.readline() != b"\r\n":
        pass
    s.sendall(b"ping")
    assert f.read() == b"echo:ping"  # then EOF: the daemon's half-close reached us
    s.close()


def test_api_path_strips_version_and_query() -> None:
    assert api_path("http+docker://localhost/v1.50/containers/x/json?size=1") == "/containers/x/json"
    assert api_path("/version") == "/version"


def test_recorder_hook_validates_and_skips_streams() -> None:
    calls: list = []

    def validate(method, path, status, body):
        calls.append(path)
        if path == "/bad":
            raise ValueError("nope")

    rec = ResponseRecorder(validate)

    class Req:
        def __init__(self, url: str) -> None:
            self.method, self.url = "GET", url

    class Resp:
        def __init__(self, url: str, content: bytes) -> None:
            self.request, self.content, self.status_code = Req(url), content, 200
            self.headers = {"Content-Type": "application/json"}

    rec.hook(Resp("http://x/v1.44/ok", b"{}"))
    rec.hook(Resp("http://x/v1.44/bad", b"{}"))
    rec.hook(Resp("http://x/v1.44/stream", b"{}"), stream=True)
    assert calls == ["/ok", "/bad"]
    assert len(rec.failures) == 1 and "nope" in rec.failures[0]


def test_leftovers_finds_what_a_daemon_left(tmp_path: Path) -> None:
    """The teardown's leak check sees a cgroup under the daemon's own parent and a container
    dir in its exec root (no daemon needed: a PrivateDaemon over a scratch dir, never started)."""
    from conformance_tests import harness
    from pydockerd.private import PrivateDaemon

    cid = "f" * 64
    d = PrivateDaemon(tmp_path, bridge="none", address_pool="", cgroup_parent=f"pydc-selfcheck-{tmp_path.name}")
    assert d.leftovers() == {}
    (d.exec_root / "containers" / cid).mkdir(parents=True)
    hierarchies = harness.cgroup_hierarchies()
    made: list[Path] = []
    try:
        for h in hierarchies[:1]:
            try:
                (h / d.cgroup_parent / cid).mkdir(parents=True)
                made.append(h / d.cgroup_parent / cid)
            except OSError:
                pass
        found = d.leftovers()
        assert found["exec-root dirs"] == [cid]
        if made:
            assert found["cgroups"] == [str(made[0])]
            assert d.leftovers({cid})["cgroups"] == [str(made[0])]
        assert d.leftovers({"e" * 64}) == {}
    finally:
        for p in made:
            p.rmdir()
            p.parent.rmdir()
