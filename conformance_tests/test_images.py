"""Images: import, save/load, list, inspect, tag, rmi, reference normalisation."""
from __future__ import annotations

import json
import re
import tarfile
import uuid
from pathlib import Path

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.images import build_tiny_rootfs
from conformance_tests.util import inspect, ok


@pytest.fixture
def repo() -> str:
    return f"conf-img-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tiny_tar(daemon: Daemon, repo: str) -> Path:
    return build_tiny_rootfs(daemon.root / f"{repo}.tar", marker=repo)


def _cleanup_images(daemon: Daemon, *refs: str) -> None:
    for ref in refs:
        daemon.cli("rmi", "-f", ref)


def test_import_with_change_and_message(daemon: Daemon, busybox: str, repo: str, tiny_tar: Path) -> None:
    ref = f"{repo}:v1"
    try:
        out = ok(daemon.cli("import", "-m", "imported for a test", "--change", "ENV A=b",
                            "--change", 'CMD ["/bin/x"]', "--change", "WORKDIR /w", str(tiny_tar), ref))
        image_id = out.strip()
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
        img = inspect(daemon, ref, "image")
        assert img["Id"] == image_id
        assert img["RepoTags"] == [ref]
        assert img["Comment"] == "imported for a test"
        assert img["Config"]["Env"] == ["A=b"]
        assert img["Config"]["Cmd"] == ["/bin/x"]
        assert img["Config"]["WorkingDir"] == "/w"
        assert img["Os"] == "linux" and img["Architecture"]
        assert img["RootFS"]["Type"] == "layers" and len(img["RootFS"]["Layers"]) == 1
        assert img["Size"] > 0
    finally:
        _cleanup_images(daemon, ref)


def test_import_from_stdin_untagged(daemon: Daemon, repo: str, tiny_tar: Path) -> None:
    image_id = ok(daemon.cli("import", "-", input=tiny_tar.read_bytes())).strip()
    try:
        img = inspect(daemon, image_id, "image")
        assert img["RepoTags"] == []
        rows = ok(daemon.cli("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")).splitlines()
        assert f"<none>:<none> {image_id[7:19]}" in rows
    finally:
        _cleanup_images(daemon, image_id)


def test_save_rmi_load(daemon: Daemon, busybox: str, repo: str, tiny_tar: Path) -> None:
    ref = f"{repo}:saved"
    saved = daemon.root / f"{repo}-save.tar"
    try:
        image_id = ok(daemon.cli("import", str(tiny_tar), ref)).strip()
        ok(daemon.cli("save", "-o", str(saved), ref))
        with tarfile.open(saved) as tar:
            names = tar.getnames()
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert "manifest.json" in names
        assert manifest[0]["RepoTags"] == [ref]
        out = ok(daemon.cli("rmi", ref))
        assert f"Untagged: {ref}" in out and f"Deleted: {image_id}" in out
        assert daemon.cli("image", "inspect", ref).returncode == 1
        out = ok(daemon.cli("load", "-i", str(saved)))
        assert out.strip() == f"Loaded image: {ref}"
        assert inspect(daemon, ref, "image")["Id"] == image_id
    finally:
        _cleanup_images(daemon, ref)


def test_load_docker_py(client, daemon: Daemon, busybox: str, repo: str, tiny_tar: Path) -> None:
    ref = f"{repo}:py"
    try:
        ok(daemon.cli("import", str(tiny_tar), ref))
        data = b"".join(client.images.get(ref).save(named=True))
        client.images.remove(ref)
        loaded = client.images.load(data)
        assert [t for img in loaded for t in img.tags] == [ref]
    finally:
        _cleanup_images(daemon, ref)


def test_save_stdout_load_stdin_busybox(daemon: Daemon, busybox: str) -> None:
    import subprocess

    from conformance_tests.harness import DOCKER_CLI
    data = subprocess.run([DOCKER_CLI, "save", "busybox"], capture_output=True, env=daemon.cli_env(), timeout=60)
    assert data.returncode == 0, data.stderr
    out = ok(daemon.cli("load", input=data.stdout))
    assert "Loaded image: busybox:latest" in out
    assert inspect(daemon, "busybox", "image")["Id"] == busybox


def test_images_list_and_filters(daemon: Daemon, client, busybox: str) -> None:
    rows = ok(daemon.cli("images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}")).splitlines()
    assert f"busybox latest {busybox[7:19]}" in rows
    assert busybox in ok(daemon.cli("images", "-q", "--no-trunc")).split()
    assert ok(daemon.cli("images", "-q", "busybox")).split() == [busybox[7:19]]
    assert ok(daemon.cli("images", "-q", "--filter", "reference=busy*")).split() == [busybox[7:19]]
    imgs = client.images.list(name="busybox")
    assert [i.id for i in imgs] == [busybox]
    summary = client.api.images(name="busybox")[0]
    for key in ("Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "SharedSize", "Labels", "Containers"):
        assert key in summary, key
    assert isinstance(summary["Created"], int)


def test_image_inspect_normalises_references(daemon: Daemon, busybox: str) -> None:
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox", "docker.io/library/busybox:latest",
                "library/busybox", busybox, busybox[7:19]):
        assert inspect(daemon, ref, "image")["Id"] == busybox, ref


def test_tag_and_untag(daemon: Daemon, busybox: str, repo: str) -> None:
    ref = f"localhost:5000/{repo}/sub:t1"
    ok(daemon.cli("tag", "busybox", ref))
    try:
        tags = inspect(daemon, "busybox", "image")["RepoTags"]
        assert sorted(tags) == sorted(["busybox:latest", ref])
        out = ok(daemon.cli("rmi", ref))
        assert out.strip() == f"Untagged: {ref}", "the image still has another tag: untag only"
        assert inspect(daemon, "busybox", "image")["RepoTags"] == ["busybox:latest"]
    finally:
        _cleanup_images(daemon, ref)


def test_tag_docker_py(client, busybox: str, repo: str) -> None:
    img = client.images.get("busybox")
    assert img.tag(repo, "x") is True
    try:
        assert f"{repo}:x" in client.images.get(busybox).tags
    finally:
        client.images.remove(f"{repo}:x")


def test_tag_default_is_latest(daemon: Daemon, busybox: str, repo: str) -> None:
    ok(daemon.cli("tag", busybox, repo))
    try:
        assert f"{repo}:latest" in inspect(daemon, repo, "image")["RepoTags"]
    finally:
        _cleanup_images(daemon, f"{repo}:latest")


def test_tag_uppercase_is_invalid_cli(daemon: Daemon, busybox: str) -> None:
    proc = daemon.cli("tag", "busybox", "UPPER")
    assert proc.returncode != 0
    assert "invalid reference format" in proc.stderr
    assert "must be lowercase" in proc.stderr


@pytest.mark.reference_differs("20.10 answers 500 for an invalid tag reference; current Docker answers 400")
def test_tag_uppercase_is_400_api(daemon: Daemon, busybox: str) -> None:
    resp = daemon.raw("POST", "/images/busybox/tag?repo=UPPER")
    assert resp.status == 400
    # dockerd 20.10 omits the name; newer Docker says "repository name (library/UPPER) must be lowercase"
    assert re.fullmatch(r"invalid reference format: repository name (\(\S+\) )?must be lowercase", resp.message)


def test_tag_uppercase_message_api(daemon: Daemon, busybox: str) -> None:
    resp = daemon.raw("POST", "/images/busybox/tag?repo=UPPER")
    assert resp.status in (400, 500)
    # dockerd 20.10 omits the name; newer Docker says "repository name (library/UPPER) must be lowercase"
    assert re.fullmatch(r"invalid reference format: repository name (\(\S+\) )?must be lowercase", resp.message)
    assert "UPPER:latest" not in inspect(daemon, "busybox", "image")["RepoTags"]


def test_tag_unknown_image(daemon: Daemon) -> None:
    resp = daemon.raw("POST", "/images/nosuch-img/tag?repo=a")
    assert resp.status == 404
    assert resp.message == "No such image: nosuch-img:latest"


def test_rmi_unknown(daemon: Daemon) -> None:
    proc = daemon.cli("rmi", "nosuch-img")
    assert proc.returncode == 1
    assert "No such image: nosuch-img:latest" in proc.stderr
    resp = daemon.raw("DELETE", "/images/nosuch-img")
    assert resp.status == 404


def test_image_inspect_unknown(daemon: Daemon) -> None:
    resp = daemon.raw("GET", "/images/nosuch-img/json")
    assert resp.status == 404
    assert "No such image: nosuch-img:latest" in resp.message


def test_rmi_image_used_by_container_conflicts(daemon: Daemon, repo: str, tiny_tar: Path, name: str) -> None:
    ref = f"{repo}:used"
    image_id = ok(daemon.cli("import", "--change", 'CMD ["/x"]', str(tiny_tar), ref)).strip()
    try:
        cid = ok(daemon.cli("create", "--name", name, ref)).strip()
        proc = daemon.cli("rmi", ref)
        assert proc.returncode == 1
        assert (
            f'conflict: unable to remove repository reference "{ref}" (must force) - container {cid[:12]} '
            f"is using its referenced image {image_id[7:19]}"
        ) in proc.stderr
        resp = daemon.raw("DELETE", f"/images/{image_id}")
        assert resp.status == 409
        assert (
            f"conflict: unable to delete {image_id[7:19]} (must be forced)"
            f" - image is being used by stopped container {cid[:12]}"
            in resp.message
        )
        assert inspect(daemon, ref, "image")["Id"] == image_id
        out = ok(daemon.cli("rmi", "-f", ref))
        assert f"Untagged: {ref}" in out
    finally:
        daemon.cli("rm", "-f", name)
        _cleanup_images(daemon, ref, image_id)


def test_rmi_docker_py_reports_untagged_and_deleted(client, daemon: Daemon, repo: str, tiny_tar: Path) -> None:
    ref = f"{repo}:py"
    image_id = ok(daemon.cli("import", str(tiny_tar), ref)).strip()
    result = client.api.remove_image(ref)
    assert {"Untagged": ref} in result
    assert {"Deleted": image_id} in result
