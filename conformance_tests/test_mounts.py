"""Every mount form on create/run: named and anonymous volumes, binds, tmpfs, --mount, --volumes-from,
copy-up, the Mounts shapes of inspect and ps, and the bad input dockerd refuses."""
from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest

from conformance_tests.harness import Daemon, mounts_under
from conformance_tests.util import inspect, ok

BUSYBOX = "busybox"


@pytest.fixture
def vol(daemon: Daemon) -> Iterator[str]:
    """A volume name unique to the test, removed afterwards (with whatever used it)."""
    v = f"mv-{uuid.uuid4().hex[:8]}"
    yield v
    for cid in daemon.list_container_ids():
        daemon.raw("DELETE", f"/containers/{cid}?force=1&v=1")
    daemon.raw("DELETE", f"/volumes/{v}?force=1")


@pytest.fixture(autouse=True)
def _no_volume_mounts_left(daemon: Daemon) -> Iterator[None]:
    yield
    if daemon.private:
        for cid in daemon.list_container_ids():
            daemon.raw("DELETE", f"/containers/{cid}?force=1&v=1")
        assert mounts_under(str(daemon.data_root / "volumes")) == [], "volume mounts left behind"


def test_two_containers_share_a_named_volume(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    ok(daemon.cli("volume", "create", vol))
    ok(daemon.cli("run", "-d", "--name", name, "-v", f"{vol}:/data", BUSYBOX, "sh", "-c",
                  "echo from-writer > /data/msg; sleep 30"))
    out = ""
    for _ in range(200):
        proc = daemon.cli("run", "--rm", "-v", f"{vol}:/data", BUSYBOX, "cat", "/data/msg")
        out = proc.stdout
        if out == "from-writer\n":
            break
    assert out == "from-writer\n"
    ok(daemon.cli("rm", "-f", name))
    # the data outlives both containers, and a fresh one sees it
    assert ok(daemon.cli("run", "--rm", "-v", f"{vol}:/data", BUSYBOX, "cat", "/data/msg")) == "from-writer\n"


def test_named_volume_mount_shape_and_mode(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, "-v", f"{vol}:/data:ro", BUSYBOX, "true"))
    vinfo = json.loads(ok(daemon.cli("volume", "inspect", vol)))[0]
    mounts = inspect(daemon, name)["Mounts"]
    assert mounts == [{"Type": "volume", "Name": vol, "Source": vinfo["Mountpoint"], "Destination": "/data",
                       "Driver": "local", "Mode": "ro", "RW": False, "Propagation": ""}]
    assert vinfo["Labels"] is None and vinfo["Options"] is None, "a volume made by -v has no labels or options"


def test_anonymous_volume_and_rm_v(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("run", "--name", name, "-v", "/scratch", BUSYBOX, "sh", "-c", "echo x > /scratch/f"))
    m = inspect(daemon, name)["Mounts"]
    assert len(m) == 1 and m[0]["Mode"] == "" and m[0]["RW"] is True and len(m[0]["Name"]) == 64
    ok(daemon.cli("rm", "-v", name))
    assert m[0]["Name"] not in ok(daemon.cli("volume", "ls", "-q")).split()


@pytest.mark.reference_differs("dockerd 20.10 does not label anonymous volumes")
def test_anonymous_volume_label(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, "-v", "/scratch", BUSYBOX, "true"))
    vname = inspect(daemon, name)["Mounts"][0]["Name"]
    vinfo = json.loads(ok(daemon.cli("volume", "inspect", vname)))[0]
    assert vinfo["Labels"] == {"com.docker.volume.anonymous": ""}


def test_rm_v_keeps_named_volumes(daemon: Daemon, busybox: str, vol: str) -> None:
    ok(daemon.cli("run", "--rm", "-v", f"{vol}:/n", "-v", "/anon", BUSYBOX, "true"))
    names = ok(daemon.cli("volume", "ls", "-q")).split()
    assert vol in names


def test_copy_up_of_image_content(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    out = ok(daemon.cli("run", "--rm", "-v", f"{vol}:/etc", BUSYBOX, "sh", "-c",
                        "test -s /etc/passwd && echo copied; stat -c '%a %u' /etc; grep -c localhost /etc/hosts"))
    mode = ok(daemon.cli("run", "--rm", BUSYBOX, "stat", "-c", "%a %u", "/etc")).strip()
    assert out.splitlines() == ["copied", mode, "2"], "the daemon's /etc/hosts is mounted over the volume"
    # the copy happened once, into the volume: it is there without the image path too
    assert ok(daemon.cli("run", "--rm", "-v", f"{vol}:/v", BUSYBOX, "sh", "-c", "test -s /v/passwd && echo kept")) \
        == "kept\n"


def test_nocopy_leaves_the_volume_empty(daemon: Daemon, busybox: str, vol: str) -> None:
    out = ok(daemon.cli("run", "--rm", "-v", f"{vol}:/etc:nocopy", BUSYBOX, "ls", "-A", "/etc"))
    # only the mount points of the daemon's /etc/hosts, /etc/hostname, /etc/resolv.conf binds
    assert sorted(out.split()) == ["hostname", "hosts", "resolv.conf"]


def test_bind_mount_both_directions_and_created_source(daemon: Daemon, busybox: str, name: str) -> None:
    src = daemon.root / f"bind-{uuid.uuid4().hex[:6]}"
    src.mkdir()
    (src / "in").write_text("host says hi\n")
    out = ok(daemon.cli("run", "--rm", "-v", f"{src}:/b", BUSYBOX, "sh", "-c", "cat /b/in; echo back > /b/out"))
    assert out == "host says hi\n" and (src / "out").read_text() == "back\n"
    missing = daemon.root / f"made-{uuid.uuid4().hex[:6]}" / "deep"
    ok(daemon.cli("run", "--rm", "-v", f"{missing}:/m", BUSYBOX, "true"))
    assert missing.is_dir(), "-v creates a missing host directory"


def test_bind_mount_of_a_file_read_only(daemon: Daemon, busybox: str) -> None:
    f = daemon.root / f"file-{uuid.uuid4().hex[:6]}"
    f.write_text("one file\n")
    out = ok(daemon.cli("run", "--rm", "-v", f"{f}:/etc/f.conf:ro", BUSYBOX, "sh", "-c",
                        "cat /etc/f.conf; echo x >> /etc/f.conf 2>/dev/null || echo refused"))
    assert out == "one file\nrefused\n"


def test_mount_flag_forms(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    src = daemon.root / f"mnt-{uuid.uuid4().hex[:6]}"
    src.mkdir()
    ok(daemon.cli("run", "--name", name,
                  "--mount", f"type=volume,source={vol},target=/v,volume-label=who=test",
                  "--mount", f"type=bind,source={src},target=/b,readonly",
                  "--mount", "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770",
                  BUSYBOX, "sh", "-c", "grep ' /t ' /proc/mounts; touch /b/x 2>/dev/null || echo ro-bind"))
    out = ok(daemon.cli("logs", name))
    lines = out.splitlines()
    assert lines[0].split()[2] == "tmpfs" and "size=1024k" in lines[0] and "mode=1770" in lines[0]
    assert lines[1] == "ro-bind"
    mounts = {m["Destination"]: m for m in inspect(daemon, name)["Mounts"]}
    assert mounts["/b"] == {"Type": "bind", "Source": str(src), "Destination": "/b", "Mode": "", "RW": False,
                            "Propagation": "rprivate"}
    assert mounts["/t"] == {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "", "RW": True,
                            "Propagation": ""}
    assert (mounts["/v"]["Name"], mounts["/v"]["Mode"], mounts["/v"]["Driver"]) == (vol, "z", "local")
    assert json.loads(ok(daemon.cli("volume", "inspect", vol)))[0]["Labels"] == {"who": "test"}


def test_tmpfs_flag_size_limit(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("run", "--name", name, "--tmpfs", "/small:size=1m", BUSYBOX, "sh", "-c",
                      "dd if=/dev/zero of=/small/big bs=1024 count=2048 2>&1; echo rc=$?")
    assert "No space left on device" in proc.stdout and "rc=1" in proc.stdout
    assert inspect(daemon, name)["Mounts"] == [], "--tmpfs mounts are not listed in Mounts"
    assert inspect(daemon, name)["HostConfig"]["Tmpfs"] == {"/small": "size=1m"}


def test_volumes_from(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, "-v", f"{vol}:/shared", "-v", "/anon", BUSYBOX, "true"))
    out = ok(daemon.cli("run", "--rm", "--volumes-from", f"{name}:ro", BUSYBOX, "sh", "-c",
                        "grep -c -e ' /shared ' -e ' /anon ' /proc/mounts; touch /shared/x 2>/dev/null || echo ro"))
    assert out == "2\nro\n"


def test_ps_volume_filter(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, "-v", f"{vol}:/fdata", BUSYBOX, "true"))
    assert ok(daemon.cli("ps", "-a", "-q", "--no-trunc", "--filter", f"volume={vol}")).split() == \
        [inspect(daemon, name)["Id"]]
    assert ok(daemon.cli("ps", "-a", "-q", "--no-trunc", "--filter", "volume=/fdata")).split() == \
        [inspect(daemon, name)["Id"]]
    assert ok(daemon.cli("ps", "-a", "-q", "--filter", "volume=nothing-like-it")) == ""


def test_tmpfs_volume_driver_options(daemon: Daemon, busybox: str, vol: str) -> None:
    ok(daemon.cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m", vol))
    info = json.loads(ok(daemon.cli("volume", "inspect", vol)))[0]
    assert info["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=2m"}
    out = ok(daemon.cli("run", "--rm", "-v", f"{vol}:/t", BUSYBOX, "sh", "-c", "df -k /t | tail -1"))
    assert out.split()[1] == "2048"
    if daemon.private:
        assert mounts_under(str(daemon.data_root / "volumes")) == [], "unmounted after the last user"


def test_volume_mount_failure(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    ok(daemon.cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=bogus", vol))
    proc = daemon.cli("run", "--name", name, "-v", f"{vol}:/t", BUSYBOX, "true")
    assert proc.returncode != 0
    assert "failed to mount local volume" in proc.stderr and "invalid argument" in proc.stderr


def test_volume_events(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    since = str(int(__import__("time").time()) - 1)
    ok(daemon.cli("run", "--name", name, "-v", f"{vol}:/e", BUSYBOX, "true"))
    ok(daemon.cli("rm", name))
    ok(daemon.cli("volume", "rm", vol))
    until = str(int(__import__("time").time()) + 1)
    out = ok(daemon.cli("events", "--since", since, "--until", until, "--filter", "type=volume",
                        "--filter", f"volume={vol}", "--format", "{{.Action}}"))
    assert out.split() == ["create", "mount", "unmount", "destroy"]


@pytest.mark.parametrize("args, needle", [
    (["-v", "/a:/dup", "-v", "/b:/dup"], "Duplicate mount point: /dup"),
    (["-v", "/a:relative"], "invalid volume specification: '/a:relative'"),
    (["-v", "bad&name:/x"], '"bad&name" includes invalid characters for a local volume name'),
    (["--mount", "type=bind,source=/no/such/dir-xyz,target=/x"], "bind source path does not exist: /no/such/dir-xyz"),
    (["--mount", "type=bogus,target=/x"], 'invalid mount config for type "bogus": mount type unknown'),
    (["-v", "/a:/x:bogus"], "invalid mode: bogus"),
    (["--tmpfs", "/x", "-v", "/a:/x"], "Duplicate mount point: /x"),
    (["-v", "rel/dir:/x"], '"rel/dir" includes invalid characters for a local volume name'),
    (["--mount", "type=tmpfs,source=/src,target=/x"], 'invalid mount config for type "tmpfs": field Source must '
                                                       "not be specified"),
    (["--mount", "type=volume,target=relative"], "mount path must be absolute"),
])
def test_bad_mount_input(daemon: Daemon, busybox: str, args: list[str], needle: str) -> None:
    before = set(ok(daemon.cli("volume", "ls", "-q")).split())
    proc = daemon.cli("create", *args, BUSYBOX, "true")
    assert proc.returncode != 0 and needle in proc.stderr, proc.stderr
    assert set(ok(daemon.cli("volume", "ls", "-q")).split()) == before, "nothing created"


def test_tmpfs_option_mount_rejects(daemon: Daemon, busybox: str, name: str) -> None:
    proc = daemon.cli("run", "--name", name, "--tmpfs", "/x:size=bogus", BUSYBOX, "true")
    assert proc.returncode != 0 and "invalid argument" in proc.stderr


def test_docker_py_volumes(client, busybox: str, vol: str, daemon: Daemon) -> None:
    src = daemon.root / f"py-{uuid.uuid4().hex[:6]}"
    src.mkdir()
    out = client.containers.run(BUSYBOX, ["sh", "-c", "echo py > /v/f; ls /h"], remove=True,
                                volumes={vol: {"bind": "/v", "mode": "rw"}, str(src): {"bind": "/h", "mode": "ro"}})
    assert out == b""
    assert client.volumes.get(vol).attrs["Driver"] == "local"
    out = client.containers.run(BUSYBOX, ["cat", "/v/f"], remove=True, volumes=[f"{vol}:/v"])
    assert out == b"py\n"
    assert os.listdir(src) == []


def test_volumes_across_a_daemon_crash(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    """kill -9 of the daemon: in-use rules hold, a running container keeps its volume (and the
    device of a volume with options), which is unmounted once the container stops."""
    daemon.require_private()
    tvol = f"{vol}-t"
    ok(daemon.cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", tvol))
    ok(daemon.cli("create", "--name", f"{name}-idle", "-v", f"{vol}:/d", BUSYBOX, "true"))
    ok(daemon.cli("run", "-d", "--name", name, "-v", f"{tvol}:/t", BUSYBOX, "sh", "-c",
                  "echo alive > /t/f; sleep 300"))
    try:
        daemon.restart(kill9=True)
        assert "volume is in use" in daemon.cli("volume", "rm", vol).stderr
        assert ok(daemon.cli("exec", name, "cat", "/t/f")) == "alive\n"
        if daemon.kind == "pydockerd":   # (dockerd's own mounts are not visible from here)
            assert mounts_under(str(daemon.data_root / "volumes")) != [], "the running container's device stays"
        ok(daemon.cli("rm", "-f", name, f"{name}-idle"))
        assert mounts_under(str(daemon.data_root / "volumes")) == []
        assert ok(daemon.cli("volume", "rm", vol)).split() == [vol]
        if daemon.kind == "pydockerd":   # dockerd 20.10 loses the volume's mount count in a live restore
            assert ok(daemon.cli("volume", "rm", tvol)).split() == [tvol]
    finally:
        daemon.raw("DELETE", f"/volumes/{tvol}?force=1")


def test_shared_propagation_needs_a_shared_source(daemon: Daemon, busybox: str, name: str) -> None:
    src = daemon.root / f"prop-{uuid.uuid4().hex[:6]}"
    src.mkdir()
    proc = daemon.cli("run", "--name", name, "-v", f"{src}:/p:rshared", BUSYBOX, "true")
    assert proc.returncode != 0
    assert f"path {src} is mounted on " in proc.stderr and "but it is not a shared mount" in proc.stderr


def test_volume_list_shape(daemon: Daemon, vol: str) -> None:
    ok(daemon.cli("volume", "create", vol))
    body = daemon.raw("GET", "/volumes").json()
    assert set(body) == {"Volumes", "Warnings"} and body["Warnings"] is None
    assert next(v for v in body["Volumes"] if v["Name"] == vol)["Scope"] == "local"
    resp = daemon.raw("GET", "/volumes?filters=" + '{"bogus":["x"]}')
    # newer Docker: "invalid filter 'bogus'" (dockerd 20.10 capitalises it)
    assert resp.status == 400 and resp.message.lower() == "invalid filter 'bogus'"


def test_legacy_copy_endpoint_is_gone(daemon: Daemon, busybox: str, name: str) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    resp = daemon.raw("POST", f"/containers/{name}/copy", json.dumps({"Resource": "/etc/passwd"}),
                      {"Content-Type": "application/json"})
    assert resp.status == 404, "removed from the API (it answered 404 from API 1.24 on)"


def test_failed_start_releases_volume_mounts(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    ok(daemon.cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", vol))
    proc = daemon.cli("run", "--name", name, "-v", f"{vol}:/t", BUSYBOX, "/no/such/command")
    assert proc.returncode != 0
    if daemon.private:
        assert mounts_under(str(daemon.data_root / "volumes")) == [], "the failed start let go of the device"
    assert "volume is in use" in daemon.cli("volume", "rm", vol).stderr, "the container still references it"


def test_image_volume_becomes_an_anonymous_volume_with_the_image_content(
        daemon: Daemon, busybox: str, name: str) -> None:
    image = f"volimg-{uuid.uuid4().hex[:6]}"
    ok(daemon.cli("run", "--name", f"{name}-src", BUSYBOX, "sh", "-c", "mkdir /seed && echo seeded > /seed/f"))
    try:
        ok(daemon.cli("commit", "--change", 'VOLUME ["/seed"]', f"{name}-src", image))
        out = ok(daemon.cli("run", "--name", name, image, "cat", "/seed/f"))
        assert out == "seeded\n"
        m = inspect(daemon, name)["Mounts"]
        assert len(m) == 1 and m[0]["Type"] == "volume" and m[0]["Destination"] == "/seed" and m[0]["Mode"] == ""
        ok(daemon.cli("rm", "-v", name))
        assert m[0]["Name"] not in ok(daemon.cli("volume", "ls", "-q")).split()
    finally:
        daemon.cli("rm", "-f", "-v", name, f"{name}-src")
        daemon.cli("rmi", "-f", image)


@pytest.mark.reference_differs("volume-subpath came with API 1.45")
def test_volume_subpath(daemon: Daemon, busybox: str, vol: str, name: str) -> None:
    ok(daemon.cli("run", "--rm", "-v", f"{vol}:/v", BUSYBOX, "sh", "-c",
                  "mkdir -p /v/sub/dir && echo deep > /v/sub/dir/f && ln -s / /v/link"))
    out = ok(daemon.cli("run", "--rm", "--mount", f"type=volume,source={vol},target=/s,volume-subpath=sub/dir",
                        BUSYBOX, "cat", "/s/f"))
    assert out == "deep\n"
    proc = daemon.cli("run", "--name", name, "--mount", f"type=volume,source={vol},target=/s,volume-subpath=link",
                      BUSYBOX, "true")
    assert proc.returncode != 0 and "cannot access path" in proc.stderr, "a symlink in the subpath is refused"
    proc = daemon.cli("run", "--rm", "--mount", f"type=volume,source={vol},target=/s,volume-subpath=missing",
                      BUSYBOX, "true")
    assert proc.returncode != 0 and "cannot access path" in proc.stderr and "no such file or directory" in proc.stderr
    proc = daemon.cli("create", "--mount", f"type=volume,source={vol},target=/s,volume-subpath=../up", BUSYBOX)
    assert proc.returncode != 0 and "subpath must be a relative path within the volume" in proc.stderr
    if daemon.private:
        staged = [m for m in mounts_under(str(daemon.exec_root)) if "volume-subpaths" in m]
        assert staged == [], "the staged subpath mounts went with the containers"


@pytest.mark.reference_differs("dockerd 20.10 makes only the top of a read-only bind read-only (newer Docker: rro)")
def test_read_only_bind_is_read_only_all_the_way_down(daemon: Daemon, busybox: str) -> None:
    import subprocess
    src = daemon.root / f"rro-{uuid.uuid4().hex[:6]}"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(src / "sub")], check=True)
    try:
        out = ok(daemon.cli("run", "--rm", "-v", f"{src}:/r:ro", BUSYBOX, "sh", "-c",
                            "touch /r/sub/x 2>/dev/null && echo writable || echo read-only"))
        assert out == "read-only\n", "the submount is read-only too"
        out = ok(daemon.cli("run", "--rm", "--mount", f"type=bind,src={src},dst=/r,readonly,bind-recursive=writable",
                            BUSYBOX, "sh", "-c", "touch /r/sub/x 2>/dev/null && echo writable || echo read-only"))
        assert out == "writable\n", "bind-recursive=writable keeps submounts writable"
    finally:
        subprocess.run(["umount", "-l", str(src / "sub")], check=False)


def _submount_writable(daemon: Daemon, api: str, *args: str) -> str:
    import subprocess
    env = {**daemon.cli_env(), "DOCKER_API_VERSION": api}
    proc = subprocess.run(["docker", "run", "--rm", *args, BUSYBOX, "sh", "-c",
                           "touch /r/sub/x 2>/dev/null && echo writable || echo read-only"],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_read_only_bind_is_not_recursive_before_api_1_44(daemon: Daemon, busybox: str) -> None:
    """A client of API 1.41 gets what dockerd gave it then: only the bind's top is read-only."""
    import subprocess
    src = daemon.root / f"nrro-{uuid.uuid4().hex[:6]}"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(src / "sub")], check=True)
    try:
        assert _submount_writable(daemon, "1.41", "-v", f"{src}:/r:ro") == "writable\n"
        assert _submount_writable(daemon, "1.41", "--mount", f"type=bind,src={src},dst=/r,readonly") == "writable\n"
        proc = daemon.cli("run", "--rm", "-v", f"{src}:/r:ro", BUSYBOX, "touch", "/r/top")
        assert proc.returncode != 0 and "Read-only file system" in proc.stderr, "the top stays read-only"
    finally:
        subprocess.run(["umount", "-l", str(src / "sub")], check=False)


@pytest.mark.reference_differs("dockerd 20.10 (API 1.41) knows neither API 1.44 nor ReadOnlyForceRecursive")
def test_read_only_bind_recursive_from_api_1_44(daemon: Daemon, busybox: str) -> None:
    import subprocess
    src = daemon.root / f"rro44-{uuid.uuid4().hex[:6]}"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(src / "sub")], check=True)
    try:
        assert _submount_writable(daemon, "1.44", "-v", f"{src}:/r:ro") == "read-only\n"
        assert _submount_writable(daemon, "1.43", "-v", f"{src}:/r:ro") == "writable\n"
        body = {"Image": BUSYBOX, "HostConfig": {"Mounts": [
            {"Type": "bind", "Source": str(src), "Target": "/r", "ReadOnly": True,
             "BindOptions": {"ReadOnlyForceRecursive": True}}]}}
        hdr = {"Content-Type": "application/json"}
        resp = daemon.raw("POST", "/v1.43/containers/create", json.dumps(body), hdr)
        assert resp.status == 400 and resp.message == "BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer"
        body = {"Image": BUSYBOX, "HostConfig": {"Mounts": [
            {"Type": "volume", "Source": "some-vol", "Target": "/v", "VolumeOptions": {"Subpath": "dir"}}]}}
        resp = daemon.raw("POST", "/v1.44/containers/create", json.dumps(body), hdr)
        assert resp.status == 400 and resp.message == "VolumeOptions.Subpath needs API v1.45 or newer"
    finally:
        subprocess.run(["umount", "-l", str(src / "sub")], check=False)
