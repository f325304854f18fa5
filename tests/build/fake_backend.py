"""A BuildBackend in memory: images are dicts, snapshots are plain directories (no mounts),
containers "run" a tiny interpreter of `sh -c` commands the tests use."""
from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from engine.build.backend import BuildImage, Emit
from engine.types import ContainerConfig, HostConfig


class FakeBackend:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.images: dict[str, BuildImage] = {}
        self.parents: dict[str, str] = {}
        self.trees: dict[str, Path] = {}          # image id -> full file tree
        self.containers: dict[str, tuple[ContainerConfig, Path]] = {}
        self.removed: list[str] = []
        self.pulled: list[str] = []
        self.exit_codes: dict[str, int] = {}      # command substring -> exit code
        self._n = 0

    def add_image(self, name: str, config: dict[str, Any] | None = None) -> BuildImage:
        cfg = {"architecture": "amd64", "os": "linux", "config": config or {"Cmd": ["sh"]},
               "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
        img = BuildImage("sha256:" + hashlib.sha256(name.encode()).hexdigest(), cfg)
        self.images[name] = self.images[img.id] = img
        tree = self.root / f"img-{len(self.trees)}"
        tree.mkdir()
        self.trees[img.id] = tree
        return img

    async def get_image(self, ref: str) -> BuildImage | None:
        return self.images.get(ref)

    async def pull_image(self, ref: str, platform: str, auth: dict[str, Any], emit: Emit) -> BuildImage:
        self.pulled.append(ref)
        from engine.errors import NotFound
        raise NotFound(f"pull access denied for {ref}")

    async def cached_child(self, parent_id: str, probe: Callable[[dict[str, Any]], bool]) -> BuildImage | None:
        for child, parent in self.parents.items():
            if parent == parent_id and probe(self.images[child].config):
                return self.images[child]
        return None

    def _copy_of(self, image_id: str) -> Path:
        self._n += 1
        dest = self.root / f"snap-{self._n}"
        if image_id:
            shutil.copytree(self.trees[image_id], dest, symlinks=True)
        else:
            dest.mkdir()
        return dest

    async def create_container(self, config: ContainerConfig, host_config: HostConfig) -> str:
        cid = hashlib.sha256(f"c{len(self.containers)}".encode()).hexdigest()
        self.containers[cid] = (config, self._copy_of(config.image))
        return cid

    async def run_container(self, cid: str, output: Callable[[bytes], None]) -> int:
        config, tree = self.containers[cid]
        script = (config.cmd or ("",))[-1]
        for needle, code in self.exit_codes.items():
            if needle in script:
                return code
        output(f"ran: {script}\n".encode())
        (tree / "ran").write_text(script)
        return 0

    async def remove_container(self, cid: str) -> None:
        self.removed.append(cid)

    @contextlib.asynccontextmanager
    async def mount_container(self, cid: str) -> AsyncIterator[Path]:
        yield self.containers[cid][1]

    @contextlib.asynccontextmanager
    async def mount_scratch(self, parent: BuildImage | None) -> AsyncIterator[tuple[str, Path]]:
        tree = self._copy_of(parent.id if parent else "")
        yield str(tree), tree

    @contextlib.asynccontextmanager
    async def mount_image(self, image: BuildImage) -> AsyncIterator[Path]:
        yield self.trees[image.id]

    async def commit(self, key: str, parent: BuildImage | None, config: dict[str, Any],
                     history: dict[str, Any]) -> BuildImage:
        tree = self.containers[key][1] if key in self.containers else Path(key)
        cfg = dict(config)
        cfg["history"] = list((parent.config if parent else {}).get("history") or []) + [history]
        body = json.dumps(cfg, sort_keys=True)
        img = BuildImage("sha256:" + hashlib.sha256(body.encode()).hexdigest(), cfg)
        self.images[img.id] = img
        self.parents[img.id] = parent.id if parent else ""
        self.trees[img.id] = tree
        return img

    async def restore_cached(self, parent: BuildImage | None, target: BuildImage, index: int,
                             config: dict[str, Any]) -> BuildImage:
        raise AssertionError("no --cache-from in these tests")

    async def tag(self, image_id: str, name: str) -> str:
        self.images[name] = self.images[image_id]
        return name.replace("docker.io/library/", "")

