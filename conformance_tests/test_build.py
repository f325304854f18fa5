"""`docker build` with the classic builder: the docker CLI (DOCKER_BUILDKIT=0 and the no-buildx
fallback), docker-py's images.build and raw POST /build, against either daemon."""
from __future__ import annotations

import io
import json
import os
import re
import secrets
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conformance_tests.harness import DOCKER_CLI, Daemon, cgroup_hierarchies, cgroups_under, mounts_under
from conformance_tests.util import container_ids, inspect, ok

BUSYBOX = "busybox"
STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


@pytest.fixture
def images_made(daemon: Daemon) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for ref in reversed(made):
        daemon.cli("rmi", "-f", ref)


def write_context(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return root


def docker_build(daemon: Daemon, ctx: Path | str, *args: str, buildkit0: bool = True,
                 input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = daemon.cli_env()
    if buildkit0:
        env["DOCKER_BUILDKIT"] = "0"
    return subprocess.run([DOCKER_CLI, "build", *args, str(ctx)], input=input, capture_output=True, text=True,
                          timeout=timeout, env=env)


def built_id(out: str) -> str:
    m = re.search(r"^Successfully built ([0-9a-f]{12})$", out, re.M)
    assert m, out
    return m.group(1)


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def stream(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


NODE_DOCKERFILE = """\
FROM busybox
WORKDIR /usr/src/app
COPY package.json ./
RUN echo installing && cat package.json > installed.txt
EXPOSE 3000
CMD ["sh", "-c", "cat installed.txt && cat server.js"]
COPY . .
"""


def node_context(root: Path, server: str = "console.log('hi')\n") -> Path:
    return write_context(root, {"Dockerfile": NODE_DOCKERFILE, "package.json": '{"name": "app"}\n',
                                "server.js": server})


def test_node_style_build_runs_and_rebuild_hits_cache(daemon: Daemon, busybox: str, tmp_path: Path,
                                                      images_made: list[str]) -> None:
    ctx = node_context(tmp_path)
    images_made.append("examplenodeapp:1.0")
    before = container_ids(daemon)
    proc = docker_build(daemon, ctx, "--tag", "examplenodeapp:1.0")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    lines = out.splitlines()
    steps = [STEP.match(line) for line in lines if STEP.match(line)]
    assert [m.group(3) for m in steps if m] == NODE_DOCKERFILE.splitlines()
    assert all(m is not None and m.group(2) == "7" for m in steps)
    # The classic builder's shape: a RUN step runs a container, prints its output, removes it.
    run_at = lines.index("Step 4/7 : RUN echo installing && cat package.json > installed.txt")
    running = re.match(r"^ ---> Running in ([0-9a-f]{12})$", lines[run_at + 1])
    assert running, lines[run_at:run_at + 5]
    assert lines[run_at + 2] == "installing"
    assert lines[run_at + 3] == f"Removing intermediate container {running.group(1)}"
    assert re.match(r"^ ---> [0-9a-f]{12}$", lines[run_at + 4])
    # COPY steps commit without a container.
    copy_at = lines.index("Step 3/7 : COPY package.json ./")
    assert re.match(r"^ ---> [0-9a-f]{12}$", lines[copy_at + 1])
    image_id = built_id(out)
    assert "Successfully tagged examplenodeapp:1.0" in lines
    assert container_ids(daemon) == before          # every intermediate container removed
    info = inspect(daemon, "examplenodeapp:1.0", "image")
    assert info["Id"].split(":")[1].startswith(image_id)
    cfg = info["Config"]
    assert cfg["WorkingDir"] == "/usr/src/app" and cfg["ExposedPorts"] == {"3000/tcp": {}}
    assert cfg["Cmd"] == ["sh", "-c", "cat installed.txt && cat server.js"]
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in cfg["Env"]
    assert ok(daemon.cli("run", "--rm", "examplenodeapp:1.0")) == '{"name": "app"}\nconsole.log(\'hi\')\n'
    history = ok(daemon.cli("history", "--no-trunc", "--format", "{{.CreatedBy}}", "examplenodeapp:1.0"))
    created_by = history.splitlines()
    assert created_by[0].startswith("/bin/sh -c #(nop) COPY dir:") and created_by[0].endswith(" in . ")
    assert created_by[2] == '/bin/sh -c #(nop)  EXPOSE 3000'
    assert created_by[3] == "/bin/sh -c echo installing && cat package.json > installed.txt"
    assert created_by[4].startswith("/bin/sh -c #(nop) COPY file:") and created_by[4].endswith(" in ./ ")
    assert created_by[5] == "/bin/sh -c #(nop) WORKDIR /usr/src/app"

    # Unchanged rebuild: every step from the cache, the same image.
    again = docker_build(daemon, ctx, "--tag", "examplenodeapp:1.0")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(" ---> Using cache") == 6
    assert "Running in" not in again.stdout
    assert built_id(again.stdout) == image_id

    # A changed file invalidates from the COPY that takes it.
    (ctx / "server.js").write_text("console.log('changed')\n")
    changed = docker_build(daemon, ctx)
    assert changed.returncode == 0, changed.stderr
    step7 = changed.stdout.split("Step 7/7 : COPY . .")
    assert step7[0].count(" ---> Using cache") == 5 and "Using cache" not in step7[1]
    new_id = built_id(changed.stdout)
    images_made.append(new_id)
    assert new_id != image_id
    assert "changed" in ok(daemon.cli("run", "--rm", new_id))

    # --no-cache runs every step again.
    fresh = docker_build(daemon, ctx, "--no-cache")
    assert fresh.returncode == 0, fresh.stderr
    assert "Using cache" not in fresh.stdout and "Running in" in fresh.stdout
    images_made.append(built_id(fresh.stdout))


def test_default_cli_falls_back_to_the_classic_builder(daemon: Daemon, busybox: str, tmp_path: Path,
                                                       images_made: list[str]) -> None:
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nLABEL fallback=yes\n"})
    proc = docker_build(daemon, ctx, "-t", "fallback-build", buildkit0=False)
    images_made.append("fallback-build")
    assert proc.returncode == 0, proc.stderr
    assert "DEPRECATED: The legacy builder is deprecated" in proc.stderr
    assert "Step 2/2 : LABEL fallback=yes" in proc.stdout
    assert inspect(daemon, "fallback-build", "image")["Config"]["Labels"] == {"fallback": "yes"}


def test_multi_stage_target_and_copy_from(daemon: Daemon, busybox: str, tmp_path: Path,
                                          images_made: list[str]) -> None:
    dockerfile = (
        "ARG BASE=busybox\n"
        "FROM ${BASE} AS one\n"
        "RUN echo built-in-one > /o\n"
        "FROM busybox AS two\n"
        "COPY --from=one /o /o2\n"
        "COPY --from=0 /o /o3\n"
        "FROM busybox\n"
        "RUN echo three > /three\n"
    )
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    proc = docker_build(daemon, ctx, "--target", "two", "-t", "ms-two")
    images_made.append("ms-two")
    assert proc.returncode == 0, proc.stderr
    assert "Step 1/6 : ARG BASE=busybox" in proc.stdout and "Step 6/6 : COPY --from=0 /o /o3" in proc.stdout
    assert "three" not in proc.stdout
    assert ok(daemon.cli("run", "--rm", "ms-two", "cat", "/o2", "/o3")) == "built-in-one\nbuilt-in-one\n"
    missing = docker_build(daemon, ctx, "--target", "nope")
    assert missing.returncode != 0
    assert "failed to reach build target nope in Dockerfile" in missing.stderr


def test_build_args_defaults_and_unused_warning(daemon: Daemon, busybox: str, tmp_path: Path,
                                                images_made: list[str]) -> None:
    dockerfile = (
        "FROM busybox\n"
        "ARG FOO=default\n"
        "ARG BAR\n"
        "ENV FROM_ARG=${FOO:-x}-${BAR:+set}\n"
        "RUN echo \"foo=$FOO bar=$BAR\" > /args\n"
    )
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    proc = docker_build(daemon, ctx, "--build-arg", "BAR=b", "--build-arg", "UNUSED=1", "-t", "args-build")
    images_made.append("args-build")
    assert proc.returncode == 0, proc.stderr
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in proc.stdout
    assert ok(daemon.cli("run", "--rm", "args-build", "cat", "/args")) == "foo=default bar=b\n"
    info = inspect(daemon, "args-build", "image")
    assert "FROM_ARG=default-set" in info["Config"]["Env"]
    assert not any(e.startswith(("FOO=", "BAR=")) for e in info["Config"]["Env"])
    history = ok(daemon.cli("history", "--no-trunc", "--format", "{{.CreatedBy}}", "args-build")).splitlines()
    assert history[0] == '|2 BAR=b FOO=default /bin/sh -c echo "foo=$FOO bar=$BAR" > /args'
    # Another value of a used arg misses the RUN cache.
    other = docker_build(daemon, ctx, "--build-arg", "BAR=c")
    assert other.returncode == 0, other.stderr
    tail = other.stdout.split("RUN echo")[1]
    assert "Using cache" not in tail
    images_made.append(built_id(other.stdout))


def test_onbuild_triggers_run_in_the_child(daemon: Daemon, busybox: str, tmp_path: Path,
                                           images_made: list[str]) -> None:
    parent = write_context(tmp_path / "p", {"Dockerfile": "FROM busybox\nONBUILD RUN echo trig > /t\n"
                                                          "ONBUILD ENV X=1\n"})
    images_made.append("ob-parent")
    assert docker_build(daemon, parent, "-t", "ob-parent").returncode == 0
    assert inspect(daemon, "ob-parent", "image")["Config"]["OnBuild"] == ["RUN echo trig > /t", "ENV X=1"]
    child = write_context(tmp_path / "c", {"Dockerfile": "FROM ob-parent\nRUN cat /t\n"})
    proc = docker_build(daemon, child, "-t", "ob-child")
    images_made.append("ob-child")
    assert proc.returncode == 0, proc.stderr
    assert "# Executing 2 build triggers" in proc.stdout
    info = inspect(daemon, "ob-child", "image")["Config"]
    assert not info.get("OnBuild") and "X=1" in info["Env"]
    assert ok(daemon.cli("run", "--rm", "ob-child", "cat", "/t")) == "trig\n"


def test_metadata_instructions_in_inspect(daemon: Daemon, busybox: str, tmp_path: Path,
                                          images_made: list[str]) -> None:
    dockerfile = (
        "FROM busybox\n"
        "MAINTAINER someone <s@example.com>\n"
        "HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD cat /etc/hostname\n"
        "LABEL a=b \"c d\"=e\n"
        "ENV K1=v1 K2=\"v 2\"\n"
        "ENV K3 v3 with spaces\n"
        "USER 1000:1000\n"
        "VOLUME /data /other\n"
        "STOPSIGNAL SIGUSR1\n"
        "EXPOSE 80 53/udp\n"
        "SHELL [\"/bin/sh\", \"-ec\"]\n"
        "ENTRYPOINT [\"/bin/echo\"]\n"
    )
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    proc = docker_build(daemon, ctx, "-t", "meta-build", "--label", "from-cli=yes")
    images_made.append("meta-build")
    assert proc.returncode == 0, proc.stderr
    info = inspect(daemon, "meta-build", "image")
    cfg = info["Config"]
    assert info["Author"] == "someone <s@example.com>"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "cat /etc/hostname"], "Interval": 5_000_000_000,
                                  "Timeout": 3_000_000_000, "Retries": 2}
    assert cfg["Labels"] == {"a": "b", "c d": "e", "from-cli": "yes"}
    assert {"K1=v1", "K2=v 2", "K3=v3 with spaces"} <= set(cfg["Env"])
    assert cfg["User"] == "1000:1000" and cfg["StopSignal"] == "SIGUSR1"
    assert cfg["Volumes"] == {"/data": {}, "/other": {}}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Shell"] == ["/bin/sh", "-ec"] and cfg["Entrypoint"] == ["/bin/echo"] and cfg.get("Cmd") is None


def test_failing_run_reports_code_and_leaves_no_image(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo partial > /p && exit 3\n"})
    before_containers = container_ids(daemon)
    before_images = ok(daemon.cli("images", "-aq", "--no-trunc")).split()
    proc = docker_build(daemon, ctx, "--force-rm", "-t", "never-made")
    assert proc.returncode == 3
    assert "The command '/bin/sh -c echo partial > /p && exit 3' returned a non-zero code: 3" in proc.stderr
    failed = re.findall(r"^ ---> Running in ([0-9a-f]{12})$", proc.stdout, re.MULTILINE)[-1]
    assert proc.stdout.splitlines()[-1] == f"Removing intermediate container {failed}"
    assert container_ids(daemon) == before_containers
    assert ok(daemon.cli("images", "-aq", "--no-trunc")).split() == before_images
    # Through the API: the error carries the exit code.
    resp = daemon.raw("POST", "/build?forcerm=1", body=tar_of({"Dockerfile": b"FROM busybox\nRUN exit 3\n"}),
                      headers={"Content-Type": "application/x-tar"}, timeout=120)
    assert resp.status == 200
    msgs = stream(resp.body)
    assert msgs[-1] == {"errorDetail": {"code": 3, "message": "The command '/bin/sh -c exit 3' returned a "
                                                              "non-zero code: 3"},
                        "error": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"}
    assert container_ids(daemon) == before_containers


@pytest.mark.reference_differs("dockerd's classic builder keeps the failed step's container unless --force-rm; "
                               "issue 12 asks that no failure leaves a container behind")
@pytest.mark.parametrize("base,dockerfile", [
    ("", "FROM busybox\nENV A=1\nRUN exit 4\n"),
    ("FROM busybox\nONBUILD RUN exit 4\n", "FROM {base}\n"),      # the failure in an ONBUILD trigger
])
def test_failed_run_leaves_no_container(daemon: Daemon, busybox: str, tmp_path: Path, images_made: list[str],
                                        base: str, dockerfile: str) -> None:
    if base:
        parent = write_context(tmp_path / "parent", {"Dockerfile": base})
        proc = docker_build(daemon, parent, "-t", "onbuild-fails:1")
        assert proc.returncode == 0, proc.stderr
        images_made.append("onbuild-fails:1")
        dockerfile = dockerfile.format(base="onbuild-fails:1")
    ctx = write_context(tmp_path / "child", {"Dockerfile": dockerfile})
    before = container_ids(daemon)
    proc = docker_build(daemon, ctx, "--no-cache")
    left = container_ids(daemon) - before
    for cid in left:
        daemon.cli("rm", "-f", cid)
    assert proc.returncode == 4 and "returned a non-zero code: 4" in proc.stderr
    failed = re.findall(r"^ ---> Running in ([0-9a-f]{12})$", proc.stdout, re.MULTILINE)[-1]
    # The failed step's container goes as with --force-rm, and says so.
    assert proc.stdout.splitlines()[-1] == f"Removing intermediate container {failed}"
    assert not left
    if daemon.kind == "pydockerd":
        assert mounts_under(str(daemon.root)) == []
        assert not list((daemon.exec_root / "build").iterdir())


def test_failed_run_with_rm_false_keeps_its_container(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN exit 4\n"})
    before = container_ids(daemon)
    proc = docker_build(daemon, ctx, "--no-cache", "--rm=false")
    left = container_ids(daemon) - before
    try:
        assert proc.returncode == 4 and "returned a non-zero code: 4" in proc.stderr
        assert "Removing intermediate container" not in proc.stdout
        assert len(left) == 1
        assert inspect(daemon, next(iter(left)))["State"]["ExitCode"] == 4
    finally:
        for cid in left:
            daemon.cli("rm", "-f", cid)


def test_quiet_prints_only_the_id(daemon: Daemon, busybox: str, tmp_path: Path, images_made: list[str]) -> None:
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo loud\n"})
    proc = docker_build(daemon, ctx, "-q")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", out), proc.stdout
    images_made.append(out)
    resp = daemon.raw("POST", "/build?q=1", body=tar_of({"Dockerfile": b"FROM busybox\nRUN echo loud\n"}),
                      headers={"Content-Type": "application/x-tar"}, timeout=120)
    assert stream(resp.body) == [{"stream": out + "\n"}]


def test_raw_stream_shape_and_tags(daemon: Daemon, busybox: str, images_made: list[str]) -> None:
    images_made.extend(["raw-a:latest", "raw-b:v1"])
    body = tar_of({"Dockerfile": b"FROM busybox\nENV A=1\n"})
    resp = daemon.raw("POST", "/build?t=raw-a&t=raw-b:v1&nocache=1", body=body,
                      headers={"Content-Type": "application/x-tar"}, timeout=120)
    assert resp.status == 200 and resp.headers.get("content-type") == "application/json"
    msgs = stream(resp.body)
    texts = [m.get("stream") for m in msgs]
    assert texts[:3] == ["Step 1/2 : FROM busybox", "\n", f" ---> {_short(inspect(daemon, BUSYBOX, 'image'))}\n"]
    assert texts[3:5] == ["Step 2/2 : ENV A=1", "\n"]
    assert re.fullmatch(r" ---> Running in [0-9a-f]{12}\n", texts[5] or "")
    aux = [m for m in msgs if "aux" in m]
    assert len(aux) == 1 and aux[0]["aux"]["ID"].startswith("sha256:")
    short = aux[0]["aux"]["ID"][7:19]
    assert texts[-3:] == [f"Successfully built {short}\n", "Successfully tagged raw-a:latest\n",
                          "Successfully tagged raw-b:v1\n"]
    assert msgs.index(aux[0]) == len(msgs) - 4


def _short(info: dict[str, Any]) -> str:
    return str(info["Id"])[7:19]


def test_dockerfile_from_stdin_and_dockerignore(daemon: Daemon, busybox: str, tmp_path: Path,
                                                images_made: list[str]) -> None:
    ctx = write_context(tmp_path, {
        ".dockerignore": "# comment\n*.log\n**/secret*\n!keep.log\n/rootonly\n",
        "a.log": "x", "keep.log": "kept", "sub/secret.txt": "s", "sub/deep/secret2": "s",
        "sub/ok.txt": "ok", "rootonly": "r", "sub/rootonly": "nested",
    })
    dockerfile = "FROM busybox\nCOPY . /ctx/\nRUN cd /ctx && find . -type f | sort\n"
    proc = docker_build(daemon, ctx, "-f", "-", "-t", "stdin-build", input=dockerfile)
    images_made.append("stdin-build")
    assert proc.returncode == 0, proc.stderr
    listing = ok(daemon.cli("run", "--rm", "stdin-build", "sh", "-c", "cd /ctx && find . -type f | sort"))
    # .dockerignore itself stays (it does not name itself); the CLI's stdin Dockerfile does not.
    assert listing.split() == ["./.dockerignore", "./keep.log", "./sub/ok.txt", "./sub/rootonly"]


def test_dockerignore_checked_by_the_daemon(daemon: Daemon, busybox: str, images_made: list[str]) -> None:
    """A client that sends ignored files anyway (raw API): like dockerd, the daemon removes only the
    Dockerfile and .dockerignore when .dockerignore names them (the other patterns are the client's job)."""
    body = tar_of({"Dockerfile": b"FROM busybox\nCOPY . /ctx/\n",
                   ".dockerignore": b"Dockerfile\n.dockerignore\n*.txt\n", "data.txt": b"d"})
    resp = daemon.raw("POST", "/build?t=ignore-raw", body=body, headers={"Content-Type": "application/x-tar"},
                      timeout=120)
    images_made.append("ignore-raw")
    assert resp.status == 200 and "error" not in stream(resp.body)[-1], resp.body
    assert ok(daemon.cli("run", "--rm", "ignore-raw", "ls", "-A", "/ctx")).split() == ["data.txt"]


def test_copy_rules(daemon: Daemon, busybox: str, tmp_path: Path, images_made: list[str]) -> None:
    dockerfile = (
        "FROM busybox\n"
        "COPY f1 /dest/renamed\n"
        "COPY f1 f2 /multi/\n"
        "COPY dir /contents\n"
        "COPY dir/ /contents2/\n"
        "COPY f* /glob/\n"
        "COPY --chown=12:34 f1 /owned/\n"
        "WORKDIR /w\n"
        "COPY f2 rel\n"
        "ADD arch.tar /unpacked/\n"
        "ADD arch.tar.gz /unpacked-gz\n"
        "COPY arch.tar /notunpacked/\n"
    )
    arch = tar_of({"in/tar.txt": b"from tar"})
    import gzip
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile, "f1": "one", "f2": "two", "dir/a": "A",
                                   "dir/sub/b": "B", "arch.tar": arch, "arch.tar.gz": gzip.compress(arch)})
    proc = docker_build(daemon, ctx, "-t", "copy-rules")
    images_made.append("copy-rules")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    script = ("cat /dest/renamed; echo; ls /multi; ls /contents; cat /contents/sub/b; echo; ls /contents2; "
              "ls /glob; stat -c '%u:%g' /owned/f1 /owned; cat /w/rel; echo; cat /unpacked/in/tar.txt; echo; "
              "cat /unpacked-gz/in/tar.txt; echo; ls /notunpacked")
    out = ok(daemon.cli("run", "--rm", "copy-rules", "sh", "-c", script)).split("\n")
    assert out == ["one", "f1", "f2", "a", "sub", "B", "a", "sub", "f1", "f2", "12:34", "12:34", "two",
                   "from tar", "from tar", "arch.tar", ""]


def test_add_url_from_loopback_server(daemon: Daemon, busybox: str, tmp_path: Path,
                                      images_made: list[str]) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = b"remote content\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/files/remote.txt"
        ctx = write_context(tmp_path, {"Dockerfile": f"FROM busybox\nADD {url} /dl/\n"})
        proc = docker_build(daemon, ctx, "-t", "add-url")
        images_made.append("add-url")
        assert proc.returncode == 0, proc.stderr
        out = ok(daemon.cli("run", "--rm", "add-url", "sh", "-c",
                            "cat /dl/remote.txt; stat -c '%a %Y' /dl/remote.txt"))
        assert out == "remote content\n600 1445412480\n"
    finally:
        server.shutdown()
        server.server_close()


def test_docker_py_images_build(client: Any, busybox: str, images_made: list[str]) -> None:
    dockerfile = io.BytesIO(b"FROM busybox\nRUN echo from-docker-py\nCMD [\"echo\", \"ok\"]\n")
    image, logs = client.images.build(fileobj=dockerfile, tag="dockerpy-build:1", rm=True)
    images_made.append("dockerpy-build:1")
    log_list = list(logs)
    streams = "".join(m.get("stream", "") for m in log_list)
    assert "Step 2/3 : RUN echo from-docker-py" in streams and "from-docker-py\n" in streams
    assert any("aux" in m for m in log_list)
    assert image.tags == ["dockerpy-build:1"]
    assert client.containers.run("dockerpy-build:1", remove=True) == b"ok\n"
    import docker
    with pytest.raises(docker.errors.BuildError) as err:
        client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 7\n"), forcerm=True)
    assert "returned a non-zero code: 7" in str(err.value)


def test_cache_survives_daemon_restart(daemon: Daemon, busybox: str, tmp_path: Path,
                                       images_made: list[str]) -> None:
    daemon.require_private()
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nCOPY f /f\nRUN cat /f > /g\n", "f": "x"})
    first = docker_build(daemon, ctx)
    assert first.returncode == 0, first.stderr
    image_id = built_id(first.stdout)
    images_made.append(image_id)
    daemon.restart()
    again = docker_build(daemon, ctx)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("Using cache") == 2 and built_id(again.stdout) == image_id


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("dockerfile,message", [
    ("", "the Dockerfile (Dockerfile) cannot be empty"),
    ("# only a comment\n", "failed to parse Dockerfile: file with no instructions"),
    ("FOO bar\n", "dockerfile parse error line 1: unknown instruction: FOO"),
    ("RUN echo\n", "no build stage in current context"),
    ("FROM busybox\nCOPY --link f /x\n", "dockerfile parse error line 2: Unknown flag: link"),
    ("FROM busybox\nCOPY f\n", "dockerfile parse error line 2: COPY requires at least two arguments, but only "
                               "one was provided. Destination could not be determined"),
    ("FROM busybox\nENV A\n", "failed to parse Dockerfile: ENV must have two arguments"),
    ("FROM busybox AS 1x\n", 'dockerfile parse error line 1: invalid name for build stage: "1x", name can\'t '
                             "start with a number or contain symbols"),
    ("FROM busybox\nONBUILD FROM x\n", "dockerfile parse error line 2: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM busybox\nHEALTHCHECK --interval=1 CMD true\n",
     'dockerfile parse error line 2: time: missing unit in duration "1"'),
    ("FROM busybox\nRUN <<EOF\necho hi\nEOF\n", "dockerfile parse error line 3: unknown instruction: ECHO"),
])
def test_bad_dockerfile_refused_before_the_stream(daemon: Daemon, busybox: str, dockerfile: str,
                                                  message: str) -> None:
    resp = daemon.raw("POST", "/build", body=tar_of({"Dockerfile": dockerfile.encode(), "f": b"f"}),
                      headers={"Content-Type": "application/x-tar"}, timeout=60)
    assert resp.status == 400, resp.body
    assert resp.message == message


@pytest.mark.parametrize("dockerfile,message", [
    ("FROM busybox\nCOPY missing /x\n", "COPY failed: file not found in build context or excluded by "
                                        ".dockerignore: stat missing: file does not exist"),
    ("FROM busybox\nCOPY ../x /x\n", "COPY failed: forbidden path outside the build context: ../x ()"),
    ("FROM busybox\nCOPY --chmod=644 f /x\n", "the --chmod option requires BuildKit. Refer to "
     "https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"),
    ("FROM busybox\nRUN --mount=type=cache,target=/x echo\n", "the --mount option requires BuildKit. Refer to "
     "https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"),
    ("FROM busybox\nEXPOSE abc\n", "Invalid containerPort: abc"),
    ("FROM busybox\nSTOPSIGNAL FOO\n", "Invalid signal: FOO"),
    ("FROM ${NOPE}\n", "base name (${NOPE}) should not be blank"),
    ("FROM busybox\nENV A=${B\n", 'failed to process "${B": missing \':\' in substitution'),
    ("FROM busybox\nCOPY f g /x\n", "When using COPY with more than one source file, the destination must be "
                                    "a directory and end with a /"),
])
def test_bad_step_reported_in_the_stream(daemon: Daemon, busybox: str, dockerfile: str, message: str) -> None:
    before = container_ids(daemon)
    images_before = ok(daemon.cli("images", "-aq", "--no-trunc")).split()
    resp = daemon.raw("POST", "/build",
                      body=tar_of({"Dockerfile": dockerfile.encode(), "f": b"f", "g": b"g"}),
                      headers={"Content-Type": "application/x-tar"}, timeout=60)
    assert resp.status == 200
    msgs = stream(resp.body)
    assert msgs[-1] == {"errorDetail": {"message": message}, "error": message}
    assert container_ids(daemon) == before
    assert ok(daemon.cli("images", "-aq", "--no-trunc")).split() == images_before
    if daemon.kind == "pydockerd":
        # No step's scratch mount or snapshot is left behind.
        assert mounts_under(str(daemon.root)) == []
        assert not list((daemon.exec_root / "build").iterdir())


def test_unknown_base_image(daemon: Daemon, busybox: str) -> None:
    # A registry address on loopback where nothing listens: no outside contact.
    before = container_ids(daemon)
    resp = daemon.raw("POST", "/build", body=tar_of({"Dockerfile": b"FROM 127.0.0.1:9/nosuch/image:1\n"}),
                      headers={"Content-Type": "application/x-tar"}, timeout=120)
    assert resp.status == 200
    msgs = stream(resp.body)
    assert msgs[0] == {"stream": "Step 1/1 : FROM 127.0.0.1:9/nosuch/image:1"}
    assert "error" in msgs[-1] and "connection refused" in msgs[-1]["error"]
    assert container_ids(daemon) == before   # a failed pull leaves nothing either
    if daemon.kind == "pydockerd":
        assert mounts_under(str(daemon.root)) == []


def test_bad_request_parameters(daemon: Daemon, busybox: str) -> None:
    body = tar_of({"Dockerfile": b"FROM busybox\n"})
    hdr = {"Content-Type": "application/x-tar"}
    resp = daemon.raw("POST", "/build?buildargs=notjson", body=body, headers=hdr)
    assert resp.status == 400
    assert resp.message == "error reading build args: invalid character 'o' in literal null (expecting 'u')"
    resp = daemon.raw("POST", "/build?buildargs=%5B1%5D", body=body, headers=hdr)
    assert resp.status == 400
    assert resp.message == ("error reading build args: json: cannot unmarshal array into Go value of type "
                            "map[string]*string")
    resp = daemon.raw("POST", "/build?buildargs=%7B%22a%22%3A1%7D", body=body, headers=hdr)
    assert resp.status == 400
    assert resp.message == "error reading build args: json: cannot unmarshal number into Go value of type string"
    resp = daemon.raw("POST", "/build?target=nope", body=body, headers=hdr)
    assert resp.status == 400 and resp.message == "failed to reach build target nope in Dockerfile"
    resp = daemon.raw("POST", "/build?dockerfile=nope", body=body, headers=hdr)
    assert resp.status == 500 and resp.message == "Cannot locate specified Dockerfile: nope"
    resp = daemon.raw("POST", "/build?dockerfile=../x", body=body, headers=hdr)
    assert resp.status == 500 and resp.message == "forbidden path outside the build context: ../x ()"
    resp = daemon.raw("POST", "/build", body=b"this is not a tar archive at all", headers=hdr)
    assert resp.status == 500 and resp.message == "unexpected EOF"


def test_malformed_build_arg_from_cli(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nARG A\nRUN test -z \"$A\"\n"})
    # "A" without "=" takes the value from the client's environment (unset: no value at all).
    proc = docker_build(daemon, ctx, "--build-arg", "A", "--force-rm")
    assert proc.returncode == 0, proc.stderr
    images = re.findall(r"Successfully built ([0-9a-f]{12})", proc.stdout)
    daemon.cli("rmi", images[0])
    bad = docker_build(daemon, ctx, "--build-arg", "=x")
    assert bad.returncode != 0


def test_hostile_context_tar_writes_nothing_outside(daemon: Daemon, busybox: str, tmp_path: Path,
                                                    images_made: list[str]) -> None:
    marker = tmp_path / "escaped"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        df = b"FROM busybox\nCOPY . /ctx/\n"
        ti = tarfile.TarInfo("Dockerfile")
        ti.size = len(df)
        t.addfile(ti, io.BytesIO(df))
        link = tarfile.TarInfo("evil")
        link.type = tarfile.SYMTYPE
        link.linkname = str(tmp_path)
        t.addfile(link)
        through = tarfile.TarInfo("evil/escaped")
        through.size = 1
        t.addfile(through, io.BytesIO(b"x"))
        absolute = tarfile.TarInfo(str(marker) + "-abs")
        absolute.size = 1
        t.addfile(absolute, io.BytesIO(b"x"))
    resp = daemon.raw("POST", "/build?t=hostile", body=buf.getvalue(), headers={"Content-Type": "application/x-tar"},
                      timeout=120)
    images_made.append("hostile")
    assert not marker.exists() and not Path(str(marker) + "-abs").exists()
    _ = resp


def test_ping_session_grpc(daemon: Daemon) -> None:
    resp = daemon.raw("GET", "/_ping")
    assert resp.status == 200
    resp = daemon.raw("POST", "/session")
    assert resp.status == 400 and resp.message == "no upgrade proto in request"


@pytest.mark.reference_differs("20.10 has BuildKit built in and sends no Builder-Version header")
def test_ping_builder_version_is_classic(daemon: Daemon) -> None:
    resp = daemon.raw("GET", "/_ping")
    assert resp.headers.get("builder-version") == "1"


def test_builder_prune(daemon: Daemon) -> None:
    proc = daemon.cli("builder", "prune", "-f")
    assert proc.returncode == 0, proc.stderr
    assert "Total reclaimed space:" in proc.stdout
    resp = daemon.raw("POST", "/build/prune?all=1")
    assert resp.status == 200
    assert set(resp.json()) == {"CachesDeleted", "SpaceReclaimed"}


def _hostile_tar(entries: list[tuple[str, bytes | None, bytes, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data, kind, link in entries:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.linkname = link
            if data is not None:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    return buf.getvalue()


def test_add_tar_with_dotdot_and_absolute_entries_stays_in_dest(daemon: Daemon, busybox: str,
                                                               images_made: list[str]) -> None:
    evil = _hostile_tar([("a/../../../etc/evil", b"x", tarfile.REGTYPE, ""),
                         ("/abs/file", b"y", tarfile.REGTYPE, "")])
    dockerfile = (b"FROM busybox\nADD evil.tar /dst/\n"
                  b"RUN test -f /dst/etc/evil && test -f /dst/abs/file && test ! -e /etc/evil\n")
    body = _hostile_tar([("Dockerfile", dockerfile, tarfile.REGTYPE, ""), ("evil.tar", evil, tarfile.REGTYPE, ""),
                         ("../outside-context", b"z", tarfile.REGTYPE, "")])
    resp = daemon.raw("POST", "/build?t=add-dotdot&forcerm=1", body=body,
                      headers={"Content-Type": "application/x-tar"}, timeout=120)
    images_made.append("add-dotdot")
    msgs = stream(resp.body)
    assert resp.status == 200 and "error" not in msgs[-1], msgs[-3:]


def test_add_tar_through_escaping_symlink_writes_nothing_on_the_host(daemon: Daemon, busybox: str,
                                                                    tmp_path: Path) -> None:
    target = tmp_path / "host-dir"
    target.mkdir()
    evil = _hostile_tar([("lnk", None, tarfile.SYMTYPE, str(target)), ("lnk/pwned", b"y", tarfile.REGTYPE, ""),
                         ("up", None, tarfile.SYMTYPE, "../../../../../../.." + str(target)),
                         ("up/pwned2", b"y", tarfile.REGTYPE, "")])
    body = _hostile_tar([("Dockerfile", b"FROM busybox\nADD evil.tar /dst/\n", tarfile.REGTYPE, ""),
                         ("evil.tar", evil, tarfile.REGTYPE, "")])
    images_before = ok(daemon.cli("images", "-aq", "--no-trunc")).split()
    resp = daemon.raw("POST", "/build?forcerm=1", body=body, headers={"Content-Type": "application/x-tar"},
                      timeout=120)
    assert resp.status == 200
    # dockerd fails the step (the link's target does not exist in its chroot); pydockerd keeps the
    # write inside the layer. Either way the host directory stays empty.
    assert list(target.iterdir()) == []
    msgs = stream(resp.body)
    aux = [m["aux"]["ID"] for m in msgs if "aux" in m]
    if aux:
        daemon.cli("rmi", aux[-1])
    else:
        assert "error" in msgs[-1]
        assert ok(daemon.cli("images", "-aq", "--no-trunc")).split() == images_before


def test_cache_from_a_loaded_image(daemon: Daemon, busybox: str, tmp_path: Path, images_made: list[str]) -> None:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY f /f\nRUN cat /f > /g\nENV DONE=1\n",
                                           "f": "cached"})
    first = docker_build(daemon, ctx, "-t", "cf-src")
    assert first.returncode == 0, first.stderr
    image_id = built_id(first.stdout)
    archive = tmp_path / "cf.tar"
    ok(daemon.cli("save", "-o", str(archive), "cf-src"))
    ok(daemon.cli("rmi", "cf-src"))
    ok(daemon.cli("load", "-i", str(archive)))
    images_made.append("cf-src")
    # Loaded images have no parent links: only --cache-from finds the steps, by their history.
    proc = docker_build(daemon, ctx, "--cache-from", "cf-src", "-t", "cf-again")
    images_made.append("cf-again")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(" ---> Using cache") == 3, proc.stdout
    assert built_id(proc.stdout) == image_id


def test_client_gone_cancels_the_build(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    import time
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo started; sleep 120\n"})
    before = container_ids(daemon)
    env = daemon.cli_env()
    env["DOCKER_BUILDKIT"] = "0"
    env["DOCKER_HOST"] = daemon.host   # straight to the daemon: the checking proxy would outlive the client
    out = tmp_path / "out"
    with open(out, "w") as f:
        proc = subprocess.Popen([DOCKER_CLI, "build", "--no-cache", str(ctx)], stdout=f, stderr=subprocess.STDOUT,
                                env=env)
    try:
        deadline = time.monotonic() + 120
        while "started" not in out.read_text().splitlines():   # the RUN's own output line
            assert time.monotonic() < deadline, out.read_text()
            assert proc.poll() is None, out.read_text()
            time.sleep(0.1)
        assert len(container_ids(daemon) - before) == 1
    finally:
        proc.kill()
        proc.wait()
    # dockerd kills and removes the step's container when the client goes away.
    deadline = time.monotonic() + 60
    while container_ids(daemon) != before:
        assert time.monotonic() < deadline, "the build container outlived its client"
        time.sleep(0.2)


def test_base_image_pulled_when_missing(daemon: Daemon, busybox: str, tmp_path: Path,
                                        images_made: list[str]) -> None:
    from conformance_tests.registry import start_registry
    from conformance_tests.test_registry import seed_busybox_plus
    reg = start_registry(daemon.root / f"registry-build-{tmp_path.name[-6:]}")
    try:
        s = seed_busybox_plus(daemon, reg, [{"marker": b"from the registry\n"}])
        images_made.append(s.ref)
        ctx = write_context(tmp_path, {"Dockerfile": f"FROM {s.ref}\nRUN cat /marker > /copied\n"})
        proc = docker_build(daemon, ctx, "-t", "pulled-base")
        images_made.append("pulled-base")
        assert proc.returncode == 0, proc.stderr
        assert f"Step 1/2 : FROM {s.ref}" in proc.stdout
        assert "Pulling from" in proc.stdout or "Pulling fs layer" in proc.stdout, proc.stdout
        assert ok(daemon.cli("run", "--rm", "pulled-base", "cat", "/copied")) == "from the registry\n"
        assert inspect(daemon, s.ref, "image")["Id"] == s.image_id
        # --pull asks the registry again even though the base is present now.
        again = docker_build(daemon, ctx, "--pull")
        assert again.returncode == 0, again.stderr
        assert "Image is up to date" in again.stdout or "Pulling from" in again.stdout, again.stdout
    finally:
        reg.stop()


def test_remote_context_tarball_and_dockerfile(daemon: Daemon, busybox: str, images_made: list[str]) -> None:
    import gzip
    import urllib.parse
    files = {"/ctx.tar.gz": gzip.compress(tar_of({"Dockerfile": b"FROM busybox\nCOPY hello /hello\n",
                                                  "hello": b"from a remote tarball\n"})),
             "/Dockerfile": b"FROM busybox\nRUN echo remote-dockerfile > /r\n"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = files.get(self.path)
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "9")
                self.end_headers()
                self.wfile.write(b"not found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for path, tag, check in (("/ctx.tar.gz", "remote-tar", "cat /hello"), ("/Dockerfile", "remote-df", "cat /r")):
            q = urllib.parse.urlencode({"remote": base + path, "t": tag})
            resp = daemon.raw("POST", f"/build?{q}", timeout=120)
            images_made.append(tag)
            assert resp.status == 200 and "error" not in stream(resp.body)[-1], resp.body
            out = ok(daemon.cli("run", "--rm", tag, "sh", "-c", check))
            assert out == ("from a remote tarball\n" if tag == "remote-tar" else "remote-dockerfile\n")
        resp = daemon.raw("POST", "/build?" + urllib.parse.urlencode({"remote": base + "/missing"}), timeout=60)
        assert resp.status == 404
        assert resp.message == (f"error downloading remote context {base}/missing: failed to GET {base}/missing "
                                "with status 404 Not Found: not found")
    finally:
        server.shutdown()
        server.server_close()


HISTORY_DOCKERFILE = """\
FROM busybox
HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD cat /etc/hostname
HEALTHCHECK NONE
SHELL ["/bin/sh", "-ec"]
VOLUME /data /other
VOLUME ["/j"]
ENTRYPOINT ["/bin/echo", "x"]
ENTRYPOINT echo shell
CMD echo a b
USER 1000:1000
STOPSIGNAL SIGUSR1
ONBUILD RUN echo x
LABEL "a b"=c d="e f"
ENV X=1 Y="z"
EXPOSE 80/udp 90
MAINTAINER me
ARG A=1 B
"""

# What dockerd 20.10's classic builder writes (newest first).
HISTORY_CREATED_BY = [
    "/bin/sh -ec #(nop)  ARG A=1 B",
    "/bin/sh -ec #(nop)  MAINTAINER me",
    "/bin/sh -ec #(nop)  EXPOSE 80/udp 90",
    "/bin/sh -ec #(nop)  ENV X=1 Y=z",
    "/bin/sh -ec #(nop)  LABEL a b=c d=e f",
    "/bin/sh -ec #(nop)  ONBUILD RUN echo x",
    "/bin/sh -ec #(nop)  STOPSIGNAL SIGUSR1",
    "/bin/sh -ec #(nop)  USER 1000:1000",
    '/bin/sh -ec #(nop)  CMD ["/bin/sh" "-ec" "echo a b"]',
    '/bin/sh -ec #(nop)  ENTRYPOINT ["/bin/sh" "-ec" "echo shell"]',
    '/bin/sh -ec #(nop)  ENTRYPOINT ["/bin/echo" "x"]',
    "/bin/sh -ec #(nop)  VOLUME [/j]",
    "/bin/sh -ec #(nop)  VOLUME [/data /other]",
    "/bin/sh -ec #(nop)  SHELL [/bin/sh -ec]",
    "/bin/sh -c #(nop)  HEALTHCHECK &{[\"NONE\"] \"0s\" \"0s\" \"0s\" '\\x00'}",
    "/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD-SHELL\" \"cat /etc/hostname\"] \"5s\" \"3s\" \"0s\" '\\x02'}",
]


def test_history_and_config_of_every_metadata_instruction(daemon: Daemon, busybox: str, tmp_path: Path,
                                                          images_made: list[str]) -> None:
    ctx = write_context(tmp_path, {"Dockerfile": HISTORY_DOCKERFILE})
    proc = docker_build(daemon, ctx, "-t", "history-build")
    images_made.append("history-build")
    assert proc.returncode == 0, proc.stderr
    history = ok(daemon.cli("history", "--no-trunc", "--format", "{{.CreatedBy}}", "history-build")).splitlines()
    assert history[:len(HISTORY_CREATED_BY)] == HISTORY_CREATED_BY
    cfg = inspect(daemon, "history-build", "image")["Config"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-ec", "echo shell"] and cfg["Cmd"] == ["/bin/sh", "-ec", "echo a b"]
    assert cfg["Volumes"] == {"/data": {}, "/j": {}, "/other": {}}
    assert cfg["Labels"] == {"a b": "c", "d": "e f"} and cfg["OnBuild"] == ["RUN echo x"]
    # HEALTHCHECK NONE keeps the earlier timings (dockerd's create fills them into the shared config).
    assert cfg["Healthcheck"] == {"Test": ["NONE"], "Interval": 5_000_000_000, "Timeout": 3_000_000_000,
                                  "Retries": 2}


def test_one_aux_message_per_stage(daemon: Daemon, busybox: str, images_made: list[str]) -> None:
    body = tar_of({"Dockerfile": b"FROM busybox AS a\nENV A=1\nFROM busybox\nENV B=2\n"})
    resp = daemon.raw("POST", "/build?t=two-aux", body=body, headers={"Content-Type": "application/x-tar"},
                      timeout=120)
    images_made.append("two-aux")
    msgs = stream(resp.body)
    aux = [i for i, m in enumerate(msgs) if "aux" in m]
    assert len(aux) == 2
    assert msgs[aux[0] + 1] == {"stream": "Step 3/4 : FROM busybox"}
    assert msgs[aux[1]]["aux"]["ID"] == inspect(daemon, "two-aux", "image")["Id"]
    assert msgs[aux[1] + 1]["stream"].startswith("Successfully built ")


def test_run_network_and_extra_hosts(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN grep -c '1.2.3.4[[:space:]]*foo.example' "
                                                 "/etc/hosts && ls /sys/class/net | tr '\\n' ' ' && echo\n"})
    proc = docker_build(daemon, ctx, "--no-cache", "--add-host", "foo.example:1.2.3.4", "--network", "none",
                        "--force-rm")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    at = lines.index("1")
    assert lines[at + 1].split() == ["lo"]
    images = re.findall(r"Successfully built ([0-9a-f]{12})", proc.stdout)
    daemon.cli("rmi", images[0])


def test_step_container_events(daemon: Daemon, busybox: str, tmp_path: Path, images_made: list[str]) -> None:
    import time
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nENV E=1\nCOPY f /f\nRUN true\n", "f": "x"})
    since = int(time.time()) - 1
    proc = docker_build(daemon, ctx, "--no-cache", "-t", "events-build")
    images_made.append("events-build")
    assert proc.returncode == 0, proc.stderr
    until = int(time.time()) + 1
    out = ok(daemon.cli("events", "--since", str(since), "--until", str(until), "--filter", "type=container",
                        "--format", "{{.Action}} {{.Actor.ID}}"))
    env_short, run_short = re.findall(r"^ ---> Running in ([0-9a-f]{12})$", proc.stdout, re.MULTILINE)
    events = [line.split() for line in out.splitlines()]
    # ENV: a container created and destroyed; COPY: none; RUN: created, attached, started, died, destroyed.
    assert [a for a, actor in events if actor.startswith(env_short)] == ["create", "destroy"]
    assert [a for a, actor in events if actor.startswith(run_short)] == ["create", "attach", "start", "die",
                                                                         "destroy"]
    ours = [actor for _, actor in events if actor.startswith((env_short, run_short))]
    assert ours.index(next(a for a in ours if a.startswith(run_short))) == 2   # ENV's come first


def test_copy_from_an_image_and_no_automatic_platform_args(daemon: Daemon, busybox: str, tmp_path: Path,
                                                          images_made: list[str]) -> None:
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nCOPY --from=busybox /bin/busybox /copied-bb\n"
                                                 "ARG TARGETARCH\nARG BUILDPLATFORM\n"
                                                 "RUN echo \"[$TARGETARCH][$BUILDPLATFORM]\" > /plat\n"})
    proc = docker_build(daemon, ctx, "-t", "copy-from-image")
    images_made.append("copy-from-image")
    assert proc.returncode == 0, proc.stderr
    # The classic builder sets no TARGET*/BUILD* args by itself.
    out = ok(daemon.cli("run", "--rm", "copy-from-image", "sh", "-c", "cat /plat; cmp /bin/busybox /copied-bb && "
                                                                     "echo same"))
    assert out == "[][]\nsame\n"


def test_dockerfile_paths_stdin_and_build_arg_in_from(daemon: Daemon, busybox: str, tmp_path: Path,
                                                      images_made: list[str]) -> None:
    images_made.extend(["df-sub", "df-stdin", "df-arg"])
    ctx = write_context(tmp_path / "ctx", {"sub/Dockerfile.dev": "FROM busybox\nCOPY f /from-sub\n", "f": "sub"})
    proc = docker_build(daemon, ctx, "-f", str(ctx / "sub" / "Dockerfile.dev"), "-t", "df-sub")
    assert proc.returncode == 0, proc.stderr
    assert ok(daemon.cli("run", "--rm", "df-sub", "cat", "/from-sub")) == "sub"
    # `docker build -` with only a Dockerfile on stdin: no context at all.
    proc = docker_build(daemon, "-", "-t", "df-stdin", input="FROM busybox\nRUN echo no-context > /n\n")
    assert proc.returncode == 0, proc.stderr
    assert ok(daemon.cli("run", "--rm", "df-stdin", "cat", "/n")) == "no-context\n"
    # An ARG before FROM, set by --build-arg, picks the base.
    ok(daemon.cli("tag", BUSYBOX, "df-base:other"))
    images_made.append("df-base:other")
    arg_ctx = write_context(tmp_path / "arg", {"Dockerfile": "ARG TAG=missing\nFROM df-base:${TAG}\nENV T=1\n"})
    proc = docker_build(daemon, arg_ctx, "--build-arg", "TAG=other", "-t", "df-arg")
    assert proc.returncode == 0, proc.stderr
    assert "Step 2/3 : FROM df-base:${TAG}" in proc.stdout
    assert "One or more build-args" not in proc.stdout


def test_run_steps_get_container_isolation(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN grep -E '^(Seccomp|CapEff):' /proc/self/status "
                                                 "&& echo pid=$$\n"})
    proc = docker_build(daemon, ctx, "--no-cache", "--force-rm")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"^Seccomp:\s+2$", out, re.MULTILINE), out          # Docker's default filter
    assert re.search(r"^CapEff:\s+00000000a80425fb$", out, re.MULTILINE), out   # the default capabilities
    assert "pid=1" in out.splitlines()                                    # its own pid namespace
    daemon.cli("rmi", built_id(out))


def test_run_writes_under_a_declared_volume_are_not_kept(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    before = ok(daemon.cli("volume", "ls", "-q")).split()
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN mkdir /data && echo base > /data/base\n"
                                                 "VOLUME /data\nRUN echo lost > /data/lost && echo kept > /kept\n"
                                                 "RUN ls /data && cat /kept\n"})
    proc = docker_build(daemon, ctx, "--no-cache")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    at = lines.index("Step 5/5 : RUN ls /data && cat /kept")
    assert lines[at + 2:at + 4] == ["base", "kept"]
    # The step containers' anonymous volumes went with them.
    assert ok(daemon.cli("volume", "ls", "-q")).split() == before
    daemon.cli("rmi", built_id(proc.stdout))


def test_second_healthcheck_notes_the_override(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nHEALTHCHECK CMD true\nHEALTHCHECK CMD false\n"})
    proc = docker_build(daemon, ctx, "--no-cache")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    at = lines.index("Step 3/3 : HEALTHCHECK CMD false")
    assert lines[at + 1] == "Note: overriding previous HEALTHCHECK: [CMD-SHELL true]"
    daemon.cli("rmi", built_id(proc.stdout))


@pytest.mark.parametrize("chown,message", [
    ("nouser", "unable to convert uid/gid chown string to host mapping: can't find uid for user nouser: "
               "no such user: nouser"),
    ("0:nogroup-x", "unable to convert uid/gid chown string to host mapping: can't find gid for group "
                    "nogroup-x: no such group: nogroup-x"),
])
def test_copy_chown_unknown_names(daemon: Daemon, busybox: str, chown: str, message: str) -> None:
    body = tar_of({"Dockerfile": f"FROM busybox\nCOPY --chown={chown} f /x\n".encode(), "f": b"f"})
    resp = daemon.raw("POST", "/build", body=body, headers={"Content-Type": "application/x-tar"}, timeout=60)
    assert stream(resp.body)[-1] == {"errorDetail": {"message": message}, "error": message}


@pytest.mark.parametrize("query,status,message", [
    ("squash=1", 400, "squash is only supported with experimental mode"),
    ("isolation=hyperv", 400, 'Unsupported isolation: "hyperv"'),
    ("securityopt=seccomp%3Dunconfined", 400,
     "The daemon on this platform does not support setting security options on build"),
    ("version=3", 500, 'invalid version "3"'),
    ("shmsize=abc", 500, 'strconv.ParseInt: parsing "abc": invalid syntax'),
    ("platform=foo", 400, '"foo": unknown operating system or architecture: invalid argument'),
])
def test_refused_build_options(daemon: Daemon, busybox: str, query: str, status: int, message: str) -> None:
    resp = daemon.raw("POST", f"/build?{query}", body=tar_of({"Dockerfile": b"FROM busybox\n"}),
                      headers={"Content-Type": "application/x-tar"}, timeout=60)
    assert (resp.status, resp.message) == (status, message)


def test_accepted_build_options(daemon: Daemon, busybox: str, images_made: list[str]) -> None:
    """isolation=default, repeated extrahosts and non-numeric limits (read as 0, as dockerd does)."""
    body = tar_of({"Dockerfile": b"FROM busybox\nRUN grep -c 'a.example\\|b.example' /etc/hosts\n"})
    resp = daemon.raw("POST", "/build?isolation=default&extrahosts=a.example:1.2.3.4&extrahosts=b.example:5.6.7.8"
                              "&memory=abc&nocache=1&forcerm=1", body=body,
                      headers={"Content-Type": "application/x-tar"}, timeout=120)
    msgs = stream(resp.body)
    assert resp.status == 200 and "error" not in msgs[-1], msgs[-2:]
    assert {"stream": "2\n"} in msgs
    images_made.append(next(m["aux"]["ID"] for m in msgs if "aux" in m))


@pytest.mark.reference_differs("20.10 serves BuildKit (version=2) itself")
def test_buildkit_version_refused(daemon: Daemon, busybox: str) -> None:
    resp = daemon.raw("POST", "/build?version=2", body=tar_of({"Dockerfile": b"FROM busybox\n"}),
                      headers={"Content-Type": "application/x-tar"}, timeout=60)
    assert (resp.status, resp.message) == (400, "buildkit is only supported with experimental mode")


@pytest.mark.parametrize("query,status,message", [
    ("filters=%7B%22foo%22%3A%5B%22bar%22%5D%7D", 400, "failed to prune build cache: Invalid filter 'foo'"),
    ("filters=%7B%22until%22%3A%5B%22zz%22%5D%7D", 500,
     "failed to prune build cache: \"until\" filter expects a duration (e.g., '24h'): time: invalid duration \"zz\""),
])
def test_builder_prune_bad_filters(daemon: Daemon, query: str, status: int, message: str) -> None:
    resp = daemon.raw("POST", f"/build/prune?{query}")
    assert (resp.status, resp.message) == (status, message)


def test_rm_false_keeps_every_step_container(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nENV A=1\nRUN echo kept\n"})
    before = container_ids(daemon)
    proc = docker_build(daemon, ctx, "--no-cache", "--rm=false")
    assert proc.returncode == 0, proc.stderr
    assert "Removing intermediate container" not in proc.stdout
    shorts = re.findall(r"^ ---> Running in ([0-9a-f]{12})$", proc.stdout, re.MULTILINE)
    kept = container_ids(daemon) - before
    assert len(shorts) == 2 and sorted(c[:12] for c in kept) == sorted(shorts)
    for cid in kept:
        ok(daemon.cli("rm", "-f", cid))
    daemon.cli("rmi", built_id(proc.stdout))


def test_cgroup_parent_of_step_containers(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    parent = f"pydc-buildcg-{os.getpid()}-{secrets.token_hex(3)}"
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN cat /proc/self/cgroup\n"})
    proc = None
    try:
        proc = docker_build(daemon, ctx, "--no-cache", "--cgroup-parent", "/" + parent)
        assert proc.returncode == 0, proc.stderr
        step = re.findall(r"^ ---> Running in ([0-9a-f]{12})$", proc.stdout, re.MULTILINE)[0]
        # On cgroup v1 the step is in each controller's hierarchy at /<parent>/<container id>.
        memory = [line.split(":", 2)[2] for line in proc.stdout.splitlines()
                  if re.match(r"^\d+:memory:/", line)]
        assert memory and memory[0].startswith(f"/{parent}/{step}"), proc.stdout
        assert cgroups_under(parent) == []    # the step's own cgroups went with its container
    finally:
        if proc is not None and proc.returncode == 0:
            daemon.cli("rmi", built_id(proc.stdout))
        for d in cgroups_under(parent):
            d.rmdir()
        for h in cgroup_hierarchies():
            if (h / parent).is_dir():
                (h / parent).rmdir()


def test_steps_right_after_from_scratch_run_in_a_container(daemon: Daemon, busybox: str, tmp_path: Path) -> None:
    ctx = write_context(tmp_path, {"Dockerfile": 'FROM scratch\nENV A=1\nWORKDIR /w\nCMD ["x"]\n'})
    images_before = set(ok(daemon.cli("images", "-aq", "--no-trunc")).split())
    before = container_ids(daemon)
    proc = docker_build(daemon, ctx, "--no-cache")
    assert proc.returncode == 0, proc.stderr
    made = set(ok(daemon.cli("images", "-aq", "--no-trunc")).split()) - images_before
    try:
        lines = re.sub(r"[0-9a-f]{12}", "<id>", proc.stdout).splitlines()
        step = [" ---> Running in <id>", "Removing intermediate container <id>", " ---> <id>"]
        assert lines[lines.index("Step 1/4 : FROM scratch"):] == [
            "Step 1/4 : FROM scratch", " ---> ", "Step 2/4 : ENV A=1", *step, "Step 3/4 : WORKDIR /w", *step,
            'Step 4/4 : CMD ["x"]', *step, "Successfully built <id>"]
        assert container_ids(daemon) == before
        assert len(made) == 3      # one image per step, nothing else left
        image = inspect(daemon, built_id(proc.stdout), "image")
        assert image["Config"]["WorkingDir"] == "/w" and len(image["RootFS"]["Layers"]) == 1   # /w made
        assert image["Parent"] != "" and image["Config"]["Env"][-1] == "A=1"
    finally:
        for image_id in made:
            daemon.cli("rmi", "-f", image_id)


def _git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A bare repository `repo.git`: master has a Dockerfile at the top, branch `other` one in `sub/`."""
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "master")
    write_context(work, {"Dockerfile": "FROM busybox\nCOPY hello /hello\n", "hello": "from master\n"})
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "master")
    _git(work, "checkout", "-q", "-b", "other")
    write_context(work, {"sub/Dockerfile": "FROM busybox\nCOPY hello /hello\n", "sub/hello": "from other:sub\n"})
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "other")
    _git(work, "tag", "v1")
    bare = tmp_path / "served" / "repo.git"
    bare.parent.mkdir()
    _git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    _git(bare, "update-server-info")    # for the dumb HTTP server
    return bare


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def git_daemon(git_repo: Path) -> Iterator[str]:
    """`git daemon` on loopback serving the repository: its git:// URL."""
    import socket
    import time
    port = _free_port()
    proc = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", f"--port={port}",
                             f"--base-path={git_repo.parent}", str(git_repo.parent)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "git daemon did not come up"
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/repo.git"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("fragment,expected", [
    ("", "from master\n"),
    ("#other:sub", "from other:sub\n"),
    ("#v1:sub", "from other:sub\n"),
])
def test_git_remote_over_git_protocol(daemon: Daemon, busybox: str, git_daemon: str, images_made: list[str],
                                      fragment: str, expected: str) -> None:
    import urllib.parse
    tag = "git-remote:" + (fragment.strip("#").replace(":", "-") or "default")
    q = urllib.parse.urlencode({"remote": git_daemon + fragment, "t": tag})
    resp = daemon.raw("POST", f"/build?{q}", timeout=120)
    images_made.append(tag)
    assert resp.status == 200 and "error" not in stream(resp.body)[-1], resp.body
    assert ok(daemon.cli("run", "--rm", tag, "cat", "/hello")) == expected


def test_git_remote_over_dumb_http_and_errors(daemon: Daemon, busybox: str, git_repo: Path, git_daemon: str,
                                              client: Any, images_made: list[str]) -> None:
    import functools
    import http.server
    import urllib.parse
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(git_repo.parent))
    handler.log_message = lambda *a: None   # type: ignore[assignment, attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/repo.git"
    try:
        # docker-py hands a git URL to the daemon as `remote` (the CLI clones it itself).
        client.images.build(path=url + "#other:sub", tag="git-remote:http")
        images_made.append("git-remote:http")
        assert ok(daemon.cli("run", "--rm", "git-remote:http", "cat", "/hello")) == "from other:sub\n"
        resp = daemon.raw("POST", "/build?" + urllib.parse.urlencode({"remote": git_daemon + "#nosuch"}),
                          timeout=120)
        assert resp.status == 500
        assert resp.message.startswith("error fetching: ") and "nosuch" in resp.message
        assert resp.message.endswith(": exit status 128")
        resp = daemon.raw("POST", "/build?" + urllib.parse.urlencode({"remote": git_daemon + "#master:hello"}),
                          timeout=120)
        assert resp.status == 500 and resp.message.startswith("error setting git context, not a directory: ")
        resp = daemon.raw("POST", "/build?" + urllib.parse.urlencode({"remote": "ftp://127.0.0.1:9/x"}),
                          timeout=60)
        assert resp.status == 500
        assert resp.message == "remoteURL (ftp://127.0.0.1:9/x) could not be recognized as URL"
    finally:
        server.shutdown()
        server.server_close()
