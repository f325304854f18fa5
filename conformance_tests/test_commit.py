"""`docker commit`: images made from containers, through the CLI, docker-py and raw HTTP."""
from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conformance_tests.harness import Daemon
from conformance_tests.util import inspect, ok, wait_for_status

BUSYBOX = "busybox"


@pytest.fixture
def images_made(daemon: Daemon) -> Iterator[list[str]]:
    """Image names/ids a test creates; removed afterwards (newest first)."""
    made: list[str] = []
    yield made
    for ref in reversed(made):
        daemon.cli("rmi", "-f", ref)


def _events(daemon: Daemon, since: int, until: int) -> list[dict[str, Any]]:
    out = ok(daemon.cli("events", "--since", str(since), "--until", str(until), "--format", "{{json .}}"))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_commit_cli_layer_config_history_event(daemon: Daemon, busybox: str, name: str,
                                               images_made: list[str]) -> None:
    script = "echo hi > /root/f; rm /bin/ls; rm -rf /usr; mkdir /usr; touch /usr/q"
    ok(daemon.cli("run", "--name", name, BUSYBOX, "sh", "-c", script))
    cid = inspect(daemon, name)["Id"]
    image = f"{name}:v1"
    images_made.append(image)
    since = int(time.time()) - 1
    image_id = ok(daemon.cli("commit", "-a", "me <me@example.com>", "-m", "a message",
                             "-c", "ENV A=1", "-c", "EXPOSE 80", "-c", 'CMD ["cat", "/root/f"]',
                             name, image)).strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    info = inspect(daemon, image, "image")
    base = inspect(daemon, BUSYBOX, "image")
    assert info["Id"] == image_id
    assert info["Parent"] == base["Id"]
    assert info["Author"] == "me <me@example.com>" and info["Comment"] == "a message"
    assert info["RootFS"]["Layers"][:-1] == base["RootFS"]["Layers"] and len(info["RootFS"]["Layers"]) == 2
    cfg = info["Config"]
    assert cfg["Env"] == ["A=1"] and cfg["ExposedPorts"] == {"80/tcp": {}} and cfg["Cmd"] == ["cat", "/root/f"]
    assert cfg["Hostname"] == cid[:12] and cfg["Image"] == BUSYBOX
    # The new layer holds exactly the container's changes.
    assert ok(daemon.cli("run", "--rm", image)) == "hi\n"
    check = ok(daemon.cli("run", "--rm", image, "sh", "-c", "ls /usr; test -e /bin/ls || echo gone"))
    assert check == "q\ngone\n"
    hist = json.loads("[" + ",".join(ok(daemon.cli("history", "--no-trunc", "--format", "{{json .}}",
                                                   image)).splitlines()) + "]")
    assert hist[0]["ID"] == image_id and hist[0]["CreatedBy"] == f"sh -c {script}"
    assert hist[0]["Comment"] == "a message" and hist[0]["Size"] != "0B"
    assert hist[1]["ID"] == base["Id"]
    until = int(time.time()) + 1
    # other tests may commit within the same second: only this container's event counts
    commits = [e for e in _events(daemon, since, until) if e["Action"] == "commit" and e["Actor"]["ID"] == cid]
    assert len(commits) == 1
    ev = commits[0]
    assert ev["Type"] == "container" and ev["Actor"]["ID"] == cid
    attrs = ev["Actor"]["Attributes"]
    assert attrs["comment"] == "a message" and attrs["imageID"] == image_id
    assert attrs["imageRef"] == image and attrs["name"] == name and attrs["image"] == BUSYBOX


def test_commit_layer_is_a_proper_layer_in_save(daemon: Daemon, busybox: str, name: str,
                                                 images_made: list[str], tmp_path: Any) -> None:
    ok(daemon.cli("run", "--name", name, BUSYBOX, "sh", "-c",
                  "mkdir /d; echo x > /d/x; rm /etc/group; rm -rf /home; mkdir /home; touch /home/n"))
    image = f"{name}:saved"
    images_made.append(image)
    ok(daemon.cli("commit", name, image))
    out = tmp_path / "s.tar"
    ok(daemon.cli("save", "-o", str(out), image))
    with tarfile.open(out) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer_path = manifest[0]["Layers"][-1]
        data = outer.extractfile(layer_path).read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
        names = {m.name for m in layer.getmembers()}
    assert {"d", "d/x", "etc", "etc/.wh.group", "home", "home/.wh..wh..opq", "home/n"} == names
    # Loading it back into a fresh name works and gives the same files.
    ok(daemon.cli("rmi", image))
    images_made.remove(image)
    loaded = ok(daemon.cli("load", "-i", str(out)))
    images_made.append(image)
    assert image in loaded
    assert ok(daemon.cli("run", "--rm", image, "sh", "-c", "cat /d/x; ls /home; test -e /etc/group || echo gone")) \
        == "x\nn\ngone\n"


def test_commit_without_changes_adds_no_layer(daemon: Daemon, busybox: str, name: str,
                                              images_made: list[str]) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    image = f"{name}:empty"
    images_made.append(image)
    ok(daemon.cli("commit", name, image))
    assert inspect(daemon, image, "image")["RootFS"] == inspect(daemon, BUSYBOX, "image")["RootFS"]
    rows = ok(daemon.cli("history", "--format", "{{.CreatedBy}}|{{.Size}}", image)).splitlines()
    assert rows[0] == "true|0B"


def test_commit_successive_layers(daemon: Daemon, busybox: str, name: str, images_made: list[str]) -> None:
    ok(daemon.cli("run", "--name", name, BUSYBOX, "sh", "-c", "echo 1 > /one"))
    images_made.append(f"{name}:1")
    ok(daemon.cli("commit", name, f"{name}:1"))
    second = f"{name}-2"
    ok(daemon.cli("run", "--name", second, f"{name}:1", "sh", "-c", "echo 2 > /two; rm /one"))
    try:
        images_made.append(f"{name}:2")
        ok(daemon.cli("commit", second, f"{name}:2"))
    finally:
        daemon.cli("rm", "-f", second)
    layers = inspect(daemon, f"{name}:2", "image")["RootFS"]["Layers"]
    assert len(layers) == 3
    assert ok(daemon.cli("run", "--rm", f"{name}:2", "sh", "-c", "cat /two; ls /one 2>&1 || true")).startswith("2\n")
    ids = ok(daemon.cli("history", "-q", "--no-trunc", f"{name}:2")).split()
    assert ids == [inspect(daemon, f"{name}:2", "image")["Id"], inspect(daemon, f"{name}:1", "image")["Id"],
                   inspect(daemon, BUSYBOX, "image")["Id"]]


def test_commit_running_container_pauses_and_resumes(daemon: Daemon, busybox: str, name: str,
                                                     images_made: list[str]) -> None:
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sh", "-c", "echo up > /state; exec sleep 300"))
    wait_for_status(daemon, name, "running")
    for _ in range(200):
        if daemon.cli("exec", name, "cat", "/state").stdout == "up\n":
            break
    image = f"{name}:live"
    images_made.append(image)
    ok(daemon.cli("commit", name, image))
    assert inspect(daemon, name)["State"]["Status"] == "running"
    assert ok(daemon.cli("run", "--rm", image, "cat", "/state")) == "up\n"
    images_made.append(f"{name}:nopause")
    ok(daemon.cli("commit", "--pause=false", name, f"{name}:nopause"))
    assert inspect(daemon, name)["State"]["Status"] == "running"


def test_commit_docker_py_with_config(client: Any, busybox: str, name: str, images_made: list[str]) -> None:
    c = client.containers.run(BUSYBOX, ["sh", "-c", "touch /made"], name=name, detach=True,
                              environment={"KEEP": "1"}, labels={"from": "container"})
    c.wait(timeout=60)
    images_made.append(f"{name}:py")
    img = c.commit(repository=name, tag="py", message="py msg", author="py",
                   conf={"Cmd": ["echo", "x"], "Env": ["B=2"], "Labels": {"l": "1"}},
                   changes=["WORKDIR /tmp"])
    cfg = img.attrs["Config"]
    assert cfg["Cmd"] == ["echo", "x"] and cfg["WorkingDir"] == "/tmp"
    assert sorted(cfg["Env"]) == ["B=2", "KEEP=1"]
    assert cfg["Labels"] == {"l": "1", "from": "container"}
    assert img.attrs["Comment"] == "py msg" and img.attrs["Author"] == "py"
    assert img.tags == [f"{name}:py"]
    assert client.containers.run(img.id, ["ls", "/made"], remove=True) == b"/made\n"


def test_commit_untagged_by_raw_api(daemon: Daemon, busybox: str, name: str, images_made: list[str]) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    r = daemon.raw("POST", f"/commit?container={name}")
    assert r.status == 201, r.body
    image_id = r.json()["Id"]
    images_made.append(image_id)
    info = inspect(daemon, image_id, "image")
    assert info["RepoTags"] == [] and info["Config"]["Cmd"] == ["true"]


def test_commit_errors(daemon: Daemon, busybox: str, name: str) -> None:
    before = set(ok(daemon.cli("images", "-aq", "--no-trunc")).split())
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    r = daemon.raw("POST", "/commit?container=no-such-container-x")
    assert (r.status, r.message) == (404, "No such container: no-such-container-x")
    for instr in ("RUN x", "FROM x", "ADD a b"):
        r = daemon.raw("POST", f"/commit?container={name}&changes={instr.replace(' ', '%20')}")
        assert (r.status, r.message) == (400, f"{instr.split()[0].lower()} is not a valid change command")
    r = daemon.raw("POST", "/commit?container=")
    assert r.status == 400 and r.message == 'invalid name or ID supplied: ""'
    proc = daemon.cli("commit", "no-such-container-x")
    assert proc.returncode == 1 and "No such container: no-such-container-x" in proc.stderr
    assert set(ok(daemon.cli("images", "-aq", "--no-trunc")).split()) == before, "no image left behind"


@pytest.mark.reference_differs("20.10 answers 500 to a bad repository name, tag or JSON body, and commits "
                               "before refusing a digest reference; newer Docker checks first and says 400")
def test_commit_bad_repo_or_tag_is_400(daemon: Daemon, busybox: str, name: str) -> None:
    before = set(ok(daemon.cli("images", "-aq", "--no-trunc")).split())
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    r = daemon.raw("POST", f"/commit?container={name}&repo=foo@sha256:{'1' * 64}")
    assert (r.status, r.message) == (400, "refusing to create a tag with a digest reference")
    r = daemon.raw("POST", f"/commit?container={name}&repo=Bad")
    assert r.status == 400 and r.message.startswith("invalid reference format: repository name")
    assert r.message.endswith("must be lowercase")
    r = daemon.raw("POST", f"/commit?container={name}&repo=x&tag=b@d")
    assert (r.status, r.message) == (400, "invalid tag format")
    r = daemon.raw("POST", f"/commit?container={name}", body="{bad")
    assert r.status == 400 and r.message == "invalid character 'b' looking for beginning of object key string"
    assert set(ok(daemon.cli("images", "-aq", "--no-trunc")).split()) == before, "no image left behind"


def test_commit_change_instructions(daemon: Daemon, busybox: str, name: str, images_made: list[str]) -> None:
    ok(daemon.cli("create", "--name", name, "-e", "X=1", BUSYBOX, "true"))
    image = f"{name}:changed"
    images_made.append(image)
    changes = ['ENTRYPOINT ["/bin/sh", "-c"]', "USER nobody", "WORKDIR /srv", "WORKDIR sub", "LABEL a=b c=d",
               "VOLUME /data", "HEALTHCHECK --interval=5s CMD true", "ONBUILD RUN echo",
               "ENV Y=$X-2"]
    args = [a for c in changes for a in ("-c", c)]
    ok(daemon.cli("commit", *args, name, image))
    cfg = inspect(daemon, image, "image")["Config"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"] and cfg["Cmd"] is None
    assert cfg["User"] == "nobody" and cfg["WorkingDir"] == "/srv/sub"
    assert cfg["Labels"] == {"a": "b", "c": "d"} and cfg["Volumes"] == {"/data": {}}
    assert cfg["OnBuild"] == ["RUN echo"]
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000}
    assert "Y=1-2" in cfg["Env"] and "X=1" in cfg["Env"]


@pytest.mark.reference_differs("STOPSIGNAL became a valid commit change after 20.10")
def test_commit_stopsignal_change(daemon: Daemon, busybox: str, name: str, images_made: list[str]) -> None:
    ok(daemon.cli("create", "--name", name, BUSYBOX, "true"))
    image = f"{name}:stopsig"
    images_made.append(image)
    ok(daemon.cli("commit", "-c", "STOPSIGNAL SIGINT", name, image))
    assert inspect(daemon, image, "image")["Config"]["StopSignal"] == "SIGINT"


def test_commit_of_a_paused_container_keeps_it_paused(daemon: Daemon, busybox: str, name: str,
                                                       images_made: list[str]) -> None:
    ok(daemon.cli("run", "-d", "--name", name, BUSYBOX, "sh", "-c", "echo p > /p; exec sleep 300"))
    wait_for_status(daemon, name, "running")
    for _ in range(200):
        if daemon.cli("exec", name, "cat", "/p").stdout == "p\n":
            break
    ok(daemon.cli("pause", name))
    image = f"{name}:paused"
    images_made.append(image)
    ok(daemon.cli("commit", name, image))
    assert inspect(daemon, name)["State"]["Status"] == "paused"
    ok(daemon.cli("unpause", name))
    assert ok(daemon.cli("run", "--rm", image, "cat", "/p")) == "p\n"
