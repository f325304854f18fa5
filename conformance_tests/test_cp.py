"""`docker cp` both ways, running and stopped containers, volumes, and the escapes it must refuse."""
from __future__ import annotations

import base64
import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance_tests.harness import Daemon, wait_until
from conformance_tests.util import ok, wait_for_log

BUSYBOX = "busybox"
LOOP = "echo ready; trap 'exit 0' TERM; while true; do sleep 0.1; done"


@pytest.fixture
def running(daemon: Daemon, busybox: str, name: str) -> Iterator[str]:
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sh", "-c", LOOP))
    wait_for_log(daemon, name, "ready")
    yield name
    daemon.cli("rm", "-f", name)


@pytest.fixture
def work(daemon: Daemon) -> Path:
    d = daemon.root / f"cp-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    return d


def _tar(*entries: tuple[str, bytes | None, str]) -> bytes:
    """(name, data or None, kind: file|dir|sym:<target>|lnk:<target>) -> tar bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif kind.startswith("sym:"):
                info.type, info.linkname = tarfile.SYMTYPE, kind[4:]
                tf.addfile(info)
            elif kind.startswith("lnk:"):
                info.type, info.linkname = tarfile.LNKTYPE, kind[4:]
                tf.addfile(info)
            else:
                info.size, info.mode = len(data or b""), 0o644
                tf.addfile(info, io.BytesIO(data or b""))
    return buf.getvalue()


def test_cp_file_and_dir_both_ways_running(daemon: Daemon, running: str, work: Path) -> None:
    (work / "in.txt").write_text("into the container\n")
    (work / "tree" / "sub").mkdir(parents=True)
    (work / "tree" / "sub" / "leaf").write_text("leaf\n")
    ok(daemon.cli("cp", str(work / "in.txt"), f"{running}:/tmp/"))
    ok(daemon.cli("cp", str(work / "tree"), f"{running}:/tmp/tree"))
    out = ok(daemon.cli("exec", running, "sh", "-c", "cat /tmp/in.txt /tmp/tree/sub/leaf"))
    assert out == "into the container\nleaf\n"
    ok(daemon.cli("exec", running, "sh", "-c", "mkdir -p /made/d && echo out > /made/d/f && echo one > /made/one"))
    ok(daemon.cli("cp", f"{running}:/made", str(work / "back")))
    ok(daemon.cli("cp", f"{running}:/made/one", str(work / "one.txt")))
    assert (work / "back" / "d" / "f").read_text() == "out\n"
    assert (work / "one.txt").read_text() == "one\n"


def test_cp_stopped_container_and_volume(daemon: Daemon, busybox: str, name: str, work: Path) -> None:
    vol = f"cpv-{uuid.uuid4().hex[:8]}"
    try:
        ok(daemon.cli("create", "--name", name, "-v", f"{vol}:/vol", BUSYBOX, "sh", "-c",
                      "cat /etc/given /vol/given"))
        (work / "given").write_text("copied while stopped\n")
        ok(daemon.cli("cp", str(work / "given"), f"{name}:/etc/given"))
        ok(daemon.cli("cp", str(work / "given"), f"{name}:/vol/given"))
        ok(daemon.cli("start", "-a", name))
        assert ok(daemon.cli("logs", name)) == "copied while stopped\n" * 2
        # and out of the stopped container, from the volume
        ok(daemon.cli("cp", f"{name}:/vol/given", str(work / "from-vol")))
        assert (work / "from-vol").read_text() == "copied while stopped\n"
    finally:
        daemon.cli("rm", "-f", name)
        daemon.raw("DELETE", f"/volumes/{vol}?force=1")


def test_cp_into_volume_of_running_container(daemon: Daemon, busybox: str, name: str, work: Path) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "-v", "/anon", BUSYBOX, "sh", "-c", LOOP))
    try:
        wait_for_log(daemon, name, "ready")
        (work / "f").write_text("reached the mount\n")
        ok(daemon.cli("cp", str(work / "f"), f"{name}:/anon/f"))
        assert ok(daemon.cli("exec", name, "cat", "/anon/f")) == "reached the mount\n"
    finally:
        daemon.cli("rm", "-f", "-v", name)


@pytest.mark.reference_differs("dockerd 20.10 copies under a tmpfs mount, into the rootfs (newer Docker works "
                               "in the container's mount namespace)")
def test_cp_into_tmpfs_of_running_container(daemon: Daemon, busybox: str, name: str, work: Path) -> None:
    ok(daemon.cli("run", "-d", "--name", name, "--tmpfs", "/scratch", BUSYBOX, "sh", "-c", LOOP))
    try:
        wait_for_log(daemon, name, "ready")
        (work / "f").write_text("reached the mount\n")
        ok(daemon.cli("cp", str(work / "f"), f"{name}:/scratch/f"))
        assert ok(daemon.cli("exec", name, "cat", "/scratch/f")) == "reached the mount\n"
    finally:
        daemon.cli("rm", "-f", name)


def test_head_archive_stat_header(daemon: Daemon, running: str) -> None:
    ok(daemon.cli("exec", running, "sh", "-c", "printf 12345 > /tmp/five && ln -s /tmp/five /tmp/link"))
    resp = daemon.raw("HEAD", f"/containers/{running}/archive?path=/tmp/five")
    assert resp.status == 200
    stat = json.loads(base64.b64decode(resp.headers["X-Docker-Container-Path-Stat"]))
    assert (stat["name"], stat["size"], stat["mode"], stat["linkTarget"]) == ("five", 5, 0o644, "")
    assert stat["mtime"][:4].isdigit()
    link = json.loads(base64.b64decode(daemon.raw("HEAD", f"/containers/{running}/archive?path=/tmp/link")
                                       .headers["X-Docker-Container-Path-Stat"]))
    assert link["linkTarget"] == "/tmp/five" and link["mode"] & (1 << 27)
    tmp = json.loads(base64.b64decode(daemon.raw("HEAD", f"/containers/{running}/archive?path=/tmp")
                                      .headers["X-Docker-Container-Path-Stat"]))
    assert tmp["mode"] == (1 << 31) | (1 << 20) | 0o777, "a directory with the sticky bit, in Go's FileMode"


def test_cp_missing_path_and_container(daemon: Daemon, running: str, work: Path) -> None:
    resp = daemon.raw("GET", f"/containers/{running}/archive?path=/no/such/file")
    assert resp.status == 404 and resp.message == f"Could not find the file /no/such/file in container {running}"
    proc = daemon.cli("cp", f"{running}:/no/such/file", str(work / "x"))
    assert proc.returncode == 1 and "Could not find the file /no/such/file in container" in proc.stderr
    proc = daemon.cli("cp", str(work), f"{running}:/no/such/dir/deeper")
    assert proc.returncode == 1
    assert daemon.raw("GET", "/containers/no-such-ctr-x/archive?path=/").status == 404
    resp = daemon.raw("GET", f"/containers/{running}/archive")
    # (dockerd 20.10 spells it "pathcannot")
    assert resp.status == 400 and resp.message.replace("pathcannot", "path cannot") == \
        "bad parameter: path cannot be empty"


def test_put_refuses_breakouts(daemon: Daemon, running: str, work: Path) -> None:
    canary = work / "canary"
    canary.mkdir()
    hdr = {"Content-Type": "application/x-tar"}
    ok(daemon.cli("exec", running, "mkdir", "-p", "/dst"))
    deep = "../" * 12 + str(canary).lstrip("/") + "/evil"
    resp = daemon.raw("PUT", f"/containers/{running}/archive?path=/dst", _tar((deep, b"x", "file")), hdr)
    assert resp.status >= 400
    resp = daemon.raw("PUT", f"/containers/{running}/archive?path=/dst",
                      _tar(("esc", None, "sym:" + "../" * 12 + str(canary).lstrip("/")), ("esc/evil", b"x", "file")),
                      hdr)
    assert resp.status >= 400 and "invalid symlink" in resp.message
    # absolute names are kept inside the destination
    resp = daemon.raw("PUT", f"/containers/{running}/archive?path=/dst", _tar((str(canary) + "/abs", b"in", "file")),
                      hdr)
    assert resp.status == 200
    assert ok(daemon.cli("exec", running, "cat", f"/dst{canary}/abs")) == "in"
    assert list(canary.iterdir()) == [], "nothing written outside the container"


def test_cp_through_symlinks_stays_in_the_container(daemon: Daemon, running: str, work: Path) -> None:
    secret = work / "secret"
    secret.write_text("host only\n")
    target = work / "target"
    target.mkdir()
    # links in the container that would name host paths if followed on the host
    ok(daemon.cli("exec", running, "sh", "-c",
                  f"ln -s {secret} /tmp/to-secret; ln -s {'../' * 12}{str(target).lstrip('/')} /tmp/to-target; "
                  f"mkdir -p {target}"))
    (work / "payload").write_text("payload\n")
    ok(daemon.cli("cp", str(work / "payload"), f"{running}:/tmp/to-target/"))
    assert list(target.iterdir()) == [], "the host directory is untouched"
    assert ok(daemon.cli("exec", running, "cat", f"{target}/payload")) == "payload\n"
    proc = daemon.cli("cp", f"{running}:/tmp/to-secret/.", str(work / "got"))
    assert proc.returncode != 0 or not (work / "got").exists() or "host only" not in (work / "got").read_text()
    resp = daemon.raw("GET", f"/containers/{running}/archive?path=/tmp/to-secret")
    with tarfile.open(fileobj=io.BytesIO(resp.body)) as tf:
        member = tf.getmembers()[0]
        assert member.issym(), "the link itself is archived, never the host file it names"


def test_no_overwrite_dir_non_dir(daemon: Daemon, running: str) -> None:
    ok(daemon.cli("exec", running, "sh", "-c", "mkdir -p /ow/adir && echo f > /ow/afile"))
    hdr = {"Content-Type": "application/x-tar"}
    q = f"/containers/{running}/archive?path=/ow&noOverwriteDirNonDir=true"
    resp = daemon.raw("PUT", q, _tar(("adir", b"file now", "file")), hdr)
    assert resp.status >= 400 and "cannot overwrite directory" in resp.message
    resp = daemon.raw("PUT", q, _tar(("afile", None, "dir")), hdr)
    assert resp.status >= 400 and "cannot overwrite non-directory" in resp.message
    resp = daemon.raw("PUT", f"/containers/{running}/archive?path=/ow", _tar(("adir", b"file now", "file")), hdr)
    assert resp.status == 200
    assert ok(daemon.cli("exec", running, "cat", "/ow/adir")) == "file now"


@pytest.mark.reference_differs("dockerd 20.10 answers these with 500, newer Docker with 400")
def test_put_onto_a_file_and_read_only(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, "--read-only", "-v", "/rw", BUSYBOX, "true"))
    hdr = {"Content-Type": "application/x-tar"}
    resp = daemon.raw("PUT", f"/containers/{name}/archive?path=/etc/passwd", _tar(("x", b"1", "file")), hdr)
    assert resp.status == 400 and resp.message == "extraction point is not a directory"
    resp = daemon.raw("PUT", f"/containers/{name}/archive?path=/etc", _tar(("x", b"1", "file")), hdr)
    assert resp.status == 400 and resp.message == "container rootfs is marked read-only"
    resp = daemon.raw("PUT", f"/containers/{name}/archive?path=/rw", _tar(("x", b"1", "file")), hdr)
    assert resp.status == 200


def test_cp_docker_py(client, running: str) -> None:
    c = client.containers.get(running)
    assert c.put_archive("/tmp", _tar(("py.txt", b"from docker-py", "file")))
    bits, stat = c.get_archive("/tmp/py.txt")
    data = b"".join(bits)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        f = tf.extractfile("py.txt")
        assert f is not None and f.read() == b"from docker-py"
    assert stat["name"] == "py.txt" and stat["size"] == 14


@pytest.mark.reference_differs("dockerd 20.10 looks the whole 'uid:gid' up in the daemon's passwd database")
def test_copy_uid_gid_gives_files_to_the_container_user(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, "--user", "1234:4321", BUSYBOX, "stat", "-c", "%u:%g", "/tmp/owned",
                  "/tmp/kept"))
    hdr = {"Content-Type": "application/x-tar"}
    assert daemon.raw("PUT", f"/containers/{name}/archive?path=/tmp&copyUIDGID=1", _tar(("owned", b"1", "file")),
                      hdr).status == 200
    assert daemon.raw("PUT", f"/containers/{name}/archive?path=/tmp", _tar(("kept", b"1", "file")), hdr).status == 200
    ok(daemon.cli("start", "-a", name))
    assert ok(daemon.cli("logs", name)).split() == ["1234:4321", "0:0"], "without copyUIDGID the tar's owner stays"


def test_put_accepts_a_gzipped_archive(daemon: Daemon, running: str) -> None:
    import gzip
    body = gzip.compress(_tar(("zipped", b"unzipped\n", "file")))
    resp = daemon.raw("PUT", f"/containers/{running}/archive?path=/tmp", body, {"Content-Type": "application/x-tar"})
    assert resp.status == 200
    assert ok(daemon.cli("exec", running, "cat", "/tmp/zipped")) == "unzipped\n"


def test_cp_stopped_container_reaches_a_volume_with_mount_options(daemon: Daemon, busybox: str, name: str,
                                                                  work: Path) -> None:
    """A `local` volume with type/o/device is mounted for the copy (dockerd mounts the container's
    volumes for the archive operation): the file lands on the device, not under the volume's own
    directory, and copying out reads the device."""
    device = work / "device"
    device.mkdir()
    (device / "there").write_text("on the device\n")
    vol = f"cpo-{uuid.uuid4().hex[:8]}"
    try:
        ok(daemon.cli("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", f"device={device}", vol))
        ok(daemon.cli("create", "--name", name, "-v", f"{vol}:/data", BUSYBOX, "true"))
        (work / "given").write_text("copied while stopped\n")
        ok(daemon.cli("cp", str(work / "given"), f"{name}:/data/given"))
        assert (device / "given").read_text() == "copied while stopped\n"
        mountpoint = json.loads(ok(daemon.cli("volume", "inspect", vol)))[0]["Mountpoint"]
        assert not Path(mountpoint, "given").exists(), "written under the unmounted volume directory"
        ok(daemon.cli("cp", f"{name}:/data/there", str(work / "back")))
        assert (work / "back").read_text() == "on the device\n"
        # (the CLI may exit once it read the tar's end, before the daemon finished the response)
        wait_until(lambda: not any(line.split()[4] == mountpoint
                                   for line in Path("/proc/self/mountinfo").read_text().splitlines()),
                   10, "the volume unmounted after the copy")
    finally:
        daemon.cli("rm", "-f", name)
        daemon.raw("DELETE", f"/volumes/{vol}?force=1")
