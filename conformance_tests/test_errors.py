"""Bad input: status and message in dockerd's words, and nothing half-created afterwards."""
from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import container_ids, image_rows, ok

BUSYBOX = "busybox"


@pytest.fixture
def unchanged(daemon: Daemon, busybox: str) -> Iterator[None]:
    """Asserts the test left `docker ps -a` and `docker images -a` as it found them."""
    before = (container_ids(daemon), image_rows(daemon))
    yield
    after = (container_ids(daemon), image_rows(daemon))
    assert after[0] == before[0], f"containers changed: {after[0] ^ before[0]}"
    assert after[1] == before[1], f"images changed: {after[1] ^ before[1]}"


def create(daemon: Daemon, body: str, query: str = ""):
    return daemon.raw("POST", f"/containers/create{query}", body=body)


def test_create_malformed_json_message(daemon: Daemon, unchanged: None) -> None:
    resp = create(daemon, "{bad")
    assert resp.status in (400, 500)
    assert "invalid character 'b' looking for beginning of object key string" in resp.message


@pytest.mark.reference_differs("20.10 answers 500 for an undecodable body; current Docker answers 400")
def test_create_malformed_json_is_400(daemon: Daemon, unchanged: None) -> None:
    resp = create(daemon, "{bad")
    assert resp.status == 400


def test_create_wrong_type_message(daemon: Daemon, unchanged: None) -> None:
    resp = create(daemon, '{"Image": 5}')
    assert resp.status in (400, 500)
    assert "cannot unmarshal number into Go struct field" in resp.message
    assert "Image of type string" in resp.message


@pytest.mark.reference_differs("20.10 answers 500 for a body of the wrong type; current Docker answers 400")
def test_create_wrong_type_is_400(daemon: Daemon, unchanged: None) -> None:
    assert create(daemon, '{"Image": 5}').status == 400


def test_create_wrong_content_type(daemon: Daemon, unchanged: None) -> None:
    resp = daemon.raw("POST", "/containers/create", body='{"Image":"busybox"}', headers={"Content-Type": "text/plain"})
    assert resp.status == 400
    assert resp.message == "Content-Type specified (text/plain) must be 'application/json'"


def test_create_unknown_image(daemon: Daemon, unchanged: None) -> None:
    resp = create(daemon, '{"Image": "no-such-image-x"}')
    assert resp.status == 404
    assert resp.message == "No such image: no-such-image-x:latest"


def test_create_uppercase_image_reference(daemon: Daemon, unchanged: None) -> None:
    resp = create(daemon, '{"Image": "UPPER"}')
    assert resp.status == 400
    # dockerd 20.10 omits the name; newer Docker says "repository name (library/UPPER) must be lowercase"
    assert re.fullmatch(r"invalid reference format: repository name (\(\S+\) )?must be lowercase", resp.message)


def test_run_unknown_image_cli(daemon: Daemon, unchanged: None) -> None:
    proc = daemon.cli("run", "--rm", "--pull", "never", "no-such-image-x")
    assert proc.returncode == 125
    assert "No such image: no-such-image-x:latest" in proc.stderr


def test_unknown_container(daemon: Daemon, unchanged: None) -> None:
    for method, path in [("GET", "/containers/x/json"), ("POST", "/containers/x/start"),
                         ("POST", "/containers/x/stop"), ("DELETE", "/containers/x"),
                         ("GET", "/containers/x/logs?stdout=1"), ("POST", "/containers/x/wait")]:
        resp = daemon.raw(method, path)
        assert resp.status == 404, (method, path)
        assert "No such container: x" in resp.message, (method, path)
    resp = daemon.raw("GET", "/containers/x/json")
    assert resp.message == "No such container: x"


def test_duplicate_name(daemon: Daemon, busybox: str, name: str) -> None:
    first = create(daemon, '{"Image": "busybox"}', f"?name={name}")
    assert first.status == 201
    cid = first.json()["Id"]
    before = (container_ids(daemon), image_rows(daemon))
    resp = create(daemon, '{"Image": "busybox"}', f"?name={name}")
    assert resp.status == 409
    assert resp.message == (
        f'Conflict. The container name "/{name}" is already in use by container "{cid}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    assert (container_ids(daemon), image_rows(daemon)) == before
    proc = daemon.cli("create", "--name", name, BUSYBOX)
    assert proc.returncode == 1
    assert f'The container name "/{name}" is already in use by container "{cid}"' in proc.stderr


@pytest.mark.parametrize("bad", ["a/b", "-lead", "sp ace", "ä"])
def test_invalid_name(daemon: Daemon, unchanged: None, bad: str) -> None:
    from urllib.parse import quote
    resp = create(daemon, '{"Image": "busybox"}', f"?name={quote(bad)}")
    assert resp.status == 400
    assert resp.message == f"Invalid container name ({bad}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"


def test_kill_invalid_signal(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sh", "-c", "while :; do sleep 0.05; done"))
    resp = daemon.raw("POST", f"/containers/{name}/kill?signal=FOO")
    assert resp.status == 400
    assert resp.message == "Invalid signal: FOO"
    proc = daemon.cli("kill", "-s", "FOO", name)
    assert proc.returncode == 1
    assert "Invalid signal: FOO" in proc.stderr
    assert daemon.raw("GET", f"/containers/{name}/json").json()["State"]["Running"] is True


def test_kill_unknown_container(daemon: Daemon, unchanged: None) -> None:
    resp = daemon.raw("POST", "/containers/x/kill")
    assert resp.status == 404
    assert "No such container: x" in resp.message


# ---- docker load with hostile or broken archives -------------------------------------------


def _tar(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return buf.getvalue()


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def _load(daemon: Daemon, data: bytes) -> list[dict]:
    import json
    resp = daemon.raw("POST", "/images/load?quiet=1", body=data, headers={"Content-Type": "application/x-tar"})
    assert resp.status == 200, resp.body
    return [json.loads(line) for line in resp.body.splitlines() if line.strip()]


@pytest.fixture
def canary(daemon: Daemon) -> Iterator[Path]:
    """A directory outside the daemon's data root that a hostile archive tries to write into."""
    import tempfile
    path = Path(tempfile.mkdtemp(prefix="outside-", dir=daemon.root))
    yield path
    assert list(path.iterdir()) == [], "a load archive wrote outside the daemon's data root"


def test_load_with_dotdot_entry(daemon: Daemon, unchanged: None, canary: Path) -> None:
    depth = "../" * 30
    data = _tar([(f"{depth}{str(canary).lstrip('/')}/evil", b"evil"), ("manifest.json", b"[]")])
    messages = _load(daemon, data)
    loaded = [m for m in messages if "Loaded image" in m.get("stream", "")]
    assert loaded == []


def test_load_with_symlink_pointing_outside(daemon: Daemon, unchanged: None, canary: Path) -> None:
    data = _tar([_symlink("link", str(canary)), ("link/evil", b"evil"), ("manifest.json", b"[]")])
    messages = _load(daemon, data)
    assert any("error" in m for m in messages), messages


def test_load_manifest_symlink_to_host_file(daemon: Daemon, unchanged: None) -> None:
    messages = _load(daemon, _tar([_symlink("manifest.json", "/etc/passwd")]))
    assert any("error" in m for m in messages), messages


def test_load_truncated_tar(daemon: Daemon, busybox: str, unchanged: None) -> None:
    import subprocess

    from conformance_tests.harness import DOCKER_CLI
    saved = subprocess.run([DOCKER_CLI, "save", "busybox"], capture_output=True, env=daemon.cli_env(), timeout=60)
    assert saved.returncode == 0
    messages = _load(daemon, saved.stdout[: len(saved.stdout) // 2])
    errors = [m for m in messages if "error" in m]
    assert errors and "unexpected EOF" in errors[0]["error"]
    assert errors[0]["errorDetail"]["message"] == errors[0]["error"]
    proc = daemon.cli("load", input=saved.stdout[: len(saved.stdout) // 2])
    assert proc.returncode == 1 and "unexpected EOF" in proc.stderr


def test_load_not_a_tar(daemon: Daemon, unchanged: None) -> None:
    messages = _load(daemon, b"not a tar at all" * 100)
    errors = [m for m in messages if "error" in m]
    assert errors and "invalid tar header" in errors[0]["error"]


def test_import_not_a_tar(daemon: Daemon, unchanged: None) -> None:
    proc = daemon.cli("import", "-", "junk-import:1", input=b"definitely not a tar" * 50)
    assert proc.returncode == 1
    assert "invalid tar header" in proc.stderr or "unexpected EOF" in proc.stderr
