"""EngineBackend over the real image store and both snapshotters: a COPY-style step commits exactly
what it wrote, leaves no scratch snapshot or mount, and recover() settles an interrupted build."""
from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from engine.build.backend import SCRATCH_PREFIX, EngineBackend
from engine.snapshots.mount import is_mounted
from engine.types import ContainerConfig, HostConfig

from ..images.conftest import Env


class _Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def publish_action(self, type_: str, action: str, actor_id: str, attributes: dict[str, str]) -> None:
        self.seen.append((type_, action))


def _base_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name in ("etc", "bin"):
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o755
            t.addfile(ti)
        data = b"root:x:0:0::/root:/bin/sh\n"
        ti = tarfile.TarInfo("etc/passwd")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class _Containers:
    """Just enough of the container service: creates record the image, remove forgets."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.by_id: dict[str, Any] = {}

    async def create(self, config: Any, host_config: Any, *, name: str | None) -> tuple[Any, list[str]]:
        self.store.get(config.image)    # as the real create: the image must exist
        c = SimpleNamespace(id=f"c{len(self.by_id)}", image_id=config.image)
        self.by_id[c.id] = c
        return c, []

    async def remove(self, cid: str, *, force: bool, volumes: bool) -> None:
        self.by_id.pop(cid)

    def list(self) -> list[Any]:
        return list(self.by_id.values())


def _backend(env: Env, tmp: Path, containers: Any = None) -> EngineBackend:
    return EngineBackend(env.store, env.snapshotter, containers or _Containers(env.store), None, _Events(),
                         tmp / "mnt")


def _layer_names(env: Env, image_id: str) -> list[str]:
    image = env.store.get(image_id)
    with env.store.layer_tar(image.diff_ids[-1]) as f, tarfile.open(fileobj=f) as t:
        return sorted(m.name for m in t)


def test_scratch_step_commits_only_its_files(env: Env, tmp: Path) -> None:
    base_id = env.store.import_tar(io.BytesIO(_base_tar()), repo_tag="base:latest")
    backend = _backend(env, tmp)
    backend.recover()

    async def step() -> Any:
        base = await backend.get_image("base")
        assert base is not None
        async with backend.mount_scratch(base) as (key, root):
            assert (root / "etc" / "passwd").exists()          # the parent's files are visible
            (root / "app").mkdir()
            (root / "app" / "f").write_text("new")
            cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]}, "created": "2026-01-01T00:00:00Z"}
            made = await backend.commit(key, base, cfg, {"created": cfg["created"], "created_by": "COPY f"})
        return made

    made = asyncio.run(step())
    image = env.store.get(made.id)
    assert image.parent == base_id and len(image.diff_ids) == 2
    assert _layer_names(env, made.id) == ["app", "app/f"]
    assert image.history[-1] == {"created": "2026-01-01T00:00:00Z", "created_by": "COPY f"}
    assert not [i for i in env.snapshotter.list() if i.key.startswith(SCRATCH_PREFIX)]
    assert list((tmp / "mnt").iterdir()) == []


def test_step_without_changes_is_an_empty_layer(env: Env, tmp: Path) -> None:
    env.store.import_tar(io.BytesIO(_base_tar()), repo_tag="base:latest")
    backend = _backend(env, tmp)

    async def step() -> Any:
        base = await backend.get_image("base")
        assert base is not None
        async with backend.mount_scratch(base) as (key, _):
            return await backend.commit(key, base, {"os": "linux", "config": {}}, {"created_by": "ENV A=1"})

    made = asyncio.run(step())
    image = env.store.get(made.id)
    assert len(image.diff_ids) == 1 and image.history[-1]["empty_layer"] is True


def test_recover_drops_an_interrupted_steps_snapshot_and_mount(env: Env, tmp: Path) -> None:
    env.store.import_tar(io.BytesIO(_base_tar()), repo_tag="base:latest")
    backend = _backend(env, tmp)
    backend.recover()
    parent = env.store.get("base").top_chain_id
    key = SCRATCH_PREFIX + "leftover"
    env.snapshotter.prepare(key, parent)
    target = tmp / "mnt" / "mnt-leftover"
    target.mkdir(parents=True)
    env.snapshotter.mount_all(env.snapshotter.mounts(key), str(target))
    assert is_mounted(str(target)) or env.snapshotter.driver == "vfs"
    backend.recover()          # what the next daemon start does
    assert not is_mounted(str(target)) and not target.exists()
    assert not env.snapshotter.exists(key)


def test_step_after_from_scratch_gets_a_layerless_base_removed_with_it(env: Env, tmp: Path) -> None:
    containers = _Containers(env.store)
    backend = _backend(env, tmp, containers)
    before = {i.id for i in env.store.list()}

    async def steps() -> tuple[str, str]:
        cid = await backend.create_container(ContainerConfig(image=""), HostConfig())
        base = containers.by_id[cid].image_id
        assert not env.store.get(base).diff_ids
        await backend.remove_container(cid)
        kept = await backend.create_container(ContainerConfig(image=""), HostConfig())   # --rm=false
        return base, containers.by_id[kept].image_id
    removed, kept_base = asyncio.run(steps())
    assert not env.store.exists(removed) and env.store.exists(kept_base)
    backend.recover()                      # its container still exists: the base stays
    assert env.store.exists(kept_base)
    containers.by_id.clear()               # the user removed that container
    backend.recover()
    assert {i.id for i in env.store.list()} == before
