"""The evaluator and dispatchers against a fake backend: output shape, cache, args, stages, errors."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from engine.build.builder import Builder, BuildOptions, StepError
from engine.build.parse import parse

from .fake_backend import FakeBackend


def run_build(tmp_path: Path, backend: FakeBackend, dockerfile: str, files: dict[str, str] | None = None,
              **opts: Any) -> tuple[list[str], Any]:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    for name, content in (files or {}).items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(content)
    out: list[str] = []
    b = Builder(backend, BuildOptions(**opts), parse(dockerfile), ctx, lambda m: out.append(m.get("stream", "")))
    image = asyncio.run(b.build())
    return "".join(out).splitlines(), image


@pytest.fixture
def backend(tmp_path: Path) -> FakeBackend:
    (tmp_path / "fake").mkdir()
    fb = FakeBackend(tmp_path / "fake")
    fb.add_image("busybox")
    return fb


def test_output_shape_and_configs(tmp_path: Path, backend: FakeBackend) -> None:
    lines, image = run_build(tmp_path, backend, "FROM busybox\nENV A=1\nRUN echo hi\nCOPY f /f\n", {"f": "x"})
    assert lines[0] == "Step 1/4 : FROM busybox"
    assert lines[1].startswith(" ---> ") and lines[2] == "Step 2/4 : ENV A=1"
    assert lines[3].startswith(" ---> Running in ")
    cid = lines[3].split()[-1]
    assert lines[4] == f"Removing intermediate container {cid}"
    run_at = lines.index("Step 3/4 : RUN echo hi")
    assert lines[run_at + 2] == "ran: echo hi"
    copy_at = lines.index("Step 4/4 : COPY f /f")
    assert lines[copy_at + 1].startswith(" ---> ") and "Running" not in lines[copy_at + 1]
    cfg = image.config
    assert cfg["config"]["Env"][-1] == "A=1" and cfg["config"]["Env"][0].startswith("PATH=")
    assert cfg["container_config"]["Cmd"][:3] == ["/bin/sh", "-c", "#(nop) COPY file:" +
                                                  cfg["container_config"]["Cmd"][2].split("file:")[1]]
    assert [h["created_by"] for h in cfg["history"]] == [
        "/bin/sh -c #(nop)  ENV A=1", "/bin/sh -c echo hi",
        cfg["history"][2]["created_by"]]
    assert (backend.trees[image.id] / "f").read_text() == "x"


def test_rebuild_hits_cache_and_change_invalidates(tmp_path: Path, backend: FakeBackend) -> None:
    df = "FROM busybox\nRUN echo one\nCOPY f /f\nRUN echo two\n"
    _, first = run_build(tmp_path, backend, df, {"f": "x"})
    lines, again = run_build(tmp_path, backend, df, {"f": "x"})
    assert again.id == first.id and lines.count(" ---> Using cache") == 3
    lines, changed = run_build(tmp_path, backend, df, {"f": "y"})
    assert changed.id != first.id and lines.count(" ---> Using cache") == 1
    lines, _ = run_build(tmp_path, backend, df, {"f": "x"}, no_cache=True)
    assert " ---> Using cache" not in lines


def test_build_args_in_cache_key_and_unused(tmp_path: Path, backend: FakeBackend) -> None:
    df = "FROM busybox\nARG B\nARG A=1\nRUN echo $A $B\n"
    out: list[str] = []
    b = Builder(backend, BuildOptions(build_args={"B": "2", "X": "9", "HTTP_PROXY": "p"}), parse(df),
                tmp_path, lambda m: out.append(m.get("stream", "")))
    image = asyncio.run(b.build())
    assert image.config["container_config"]["Cmd"] == ["|2", "A=1", "B=2", "/bin/sh", "-c", "echo $A $B"]
    assert b.args.unused() == ["X"]
    cid = next(c for c, (cfg, _) in backend.containers.items() if cfg.cmd and "echo $A" in cfg.cmd[-1])
    env = backend.containers[cid][0].env
    assert "A=1" in env and "B=2" in env and "HTTP_PROXY=p" in env
    assert "HTTP_PROXY" not in " ".join(image.config["container_config"]["Cmd"])


def test_failing_run_removes_its_container_unless_rm_false(tmp_path: Path, backend: FakeBackend) -> None:
    backend.exit_codes["exit 3"] = 3
    with pytest.raises(StepError) as err:
        run_build(tmp_path, backend, "FROM busybox\nRUN exit 3\n")
    assert err.value.code == 3
    assert err.value.message == "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    assert len(backend.removed) == 1
    with pytest.raises(StepError):
        run_build(tmp_path, backend, "FROM busybox\nRUN exit 3\n", force_remove=True)
    assert len(backend.removed) == 2
    with pytest.raises(StepError):
        run_build(tmp_path, backend, "FROM busybox\nRUN exit 3\n", remove=False)
    assert len(backend.removed) == 2


def test_multi_stage_target_and_copy_from(tmp_path: Path, backend: FakeBackend) -> None:
    df = ("FROM busybox AS a\nRUN make\nFROM busybox AS b\nCOPY --from=a /ran /from-a\n"
          "FROM busybox\nRUN never\n")
    lines, image = run_build(tmp_path, backend, df, target="b")
    assert (backend.trees[image.id] / "from-a").read_text() == "make"
    assert not any("never" in line for line in lines)
    assert lines[0] == "Step 1/4 : FROM busybox AS a"


def test_onbuild_triggers(tmp_path: Path, backend: FakeBackend) -> None:
    backend.add_image("parent", {"Cmd": ["sh"], "OnBuild": ["RUN trig", "ENV X=1"]})
    lines, image = run_build(tmp_path, backend, "FROM parent\nLABEL a=b\n")
    assert "# Executing 2 build triggers" in lines
    assert "ran: trig" in lines
    assert image.config["config"]["OnBuild"] is None and "X=1" in image.config["config"]["Env"]


def test_scratch_and_workdir(tmp_path: Path, backend: FakeBackend) -> None:
    _lines, image = run_build(tmp_path, backend, "FROM scratch\nWORKDIR /w\nCOPY f .\nCMD [\"/f\"]\n", {"f": "x"})
    assert (backend.trees[image.id] / "w" / "f").read_text() == "x"
    assert image.config["config"]["WorkingDir"] == "/w" and image.config["config"]["Cmd"] == ["/f"]


@pytest.mark.parametrize("df,message", [
    ("FROM busybox\nCOPY ../x /x\n", "COPY failed: forbidden path outside the build context: ../x ()"),
    ("FROM busybox\nCOPY nope /x\n", "COPY failed: file not found in build context or excluded by "
                                     ".dockerignore: stat nope: file does not exist"),
    ("FROM busybox\nCOPY *.none /x/\n", "COPY failed: no source files were specified"),
    ("FROM busybox\nEXPOSE 80/xyz\n", "Invalid proto: xyz"),
    ("FROM busybox\nCOPY --chmod=600 f /x\n", "the --chmod option requires BuildKit. Refer to "
     "https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"),
])
def test_step_errors(tmp_path: Path, backend: FakeBackend, df: str, message: str) -> None:
    with pytest.raises(StepError) as err:
        run_build(tmp_path, backend, df, {"f": "x"})
    assert err.value.message == message


def test_copy_escaping_symlink_stays_in_context(tmp_path: Path, backend: FakeBackend) -> None:
    outside = tmp_path / "outside"
    outside.write_text("secret")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "link").symlink_to(str(outside))
    with pytest.raises(StepError) as err:
        run_build(tmp_path, backend, "FROM busybox\nCOPY link/ /x\n")
    assert "file not found in build context" in err.value.message
