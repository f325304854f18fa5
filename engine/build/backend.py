"""What the builder needs from the rest of the engine, and nothing more.

The builder reaches images and containers only through ``BuildBackend`` (as
moby's classic builder does through its container backend): find or pull a
base image, probe the layer cache, run a step container, and commit a
snapshot's changes as the next image.  ``EngineBackend`` is the real one,
built in the composition root over the image store, snapshotter, container
service and registry; the unit tests use a fake with the same methods.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from .. import gojson, timeutil
from ..errors import EngineError, InvalidParameter, NotFound
from ..images.model import dumps_go, host_platform
from ..images.reference import parse_normalized
from ..types import ContainerConfig, HostConfig

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
SCRATCH_PREFIX = "build-"


@dataclass(frozen=True)
class BuildImage:
    """An image as the builder sees it: its ID and whole config JSON."""
    id: str
    config: dict[str, Any] = field(compare=False, hash=False)

    @property
    def run_config(self) -> dict[str, Any]:
        return dict(self.config.get("config") or {})


class BuildBackend(Protocol):
    async def get_image(self, ref: str) -> BuildImage | None: ...
    async def pull_image(self, ref: str, platform: str, auth: dict[str, Any], emit: Emit) -> BuildImage: ...
    async def cached_child(self, parent_id: str, probe: Callable[[dict[str, Any]], bool]) -> BuildImage | None: ...
    async def create_container(self, config: ContainerConfig, host_config: HostConfig) -> str: ...
    async def run_container(self, cid: str, output: Callable[[bytes], None]) -> int: ...
    async def remove_container(self, cid: str) -> None: ...
    def mount_container(self, cid: str) -> contextlib.AbstractAsyncContextManager[Path]: ...
    def mount_scratch(self, parent: BuildImage | None) -> contextlib.AbstractAsyncContextManager[tuple[str, Path]]: ...
    def mount_image(self, image: BuildImage) -> contextlib.AbstractAsyncContextManager[Path]: ...
    async def commit(self, key: str, parent: BuildImage | None, config: dict[str, Any],
                     history: dict[str, Any]) -> BuildImage: ...
    async def tag(self, image_id: str, name: str) -> str: ...
    async def restore_cached(self, parent: BuildImage | None, target: BuildImage, index: int,
                             config: dict[str, Any]) -> BuildImage: ...


class EngineBackend:
    """The builder's backend over the engine's real services."""

    def __init__(self, images: Any, snapshotter: Any, containers: Any, registry: Any, events: Any,
                 mount_root: Path) -> None:
        self.images = images
        self.snapshotter = snapshotter
        self.containers = containers
        self.registry = registry
        self.events = events
        self.mount_root = mount_root
        self._scratch_bases: dict[str, str] = {}   # step container -> its layerless base image

    def recover(self) -> None:
        """Unmount and drop what an interrupted build left (scratch snapshots and their mounts)."""
        from ..snapshots.mount import is_mounted
        self.mount_root.mkdir(parents=True, exist_ok=True)
        for entry in self.mount_root.iterdir():
            if is_mounted(str(entry)):
                with contextlib.suppress(Exception):
                    self.snapshotter.unmount(str(entry))
            if not is_mounted(str(entry)):
                shutil.rmtree(entry, ignore_errors=True)
        for info in self.snapshotter.list():
            if info.key.startswith(SCRATCH_PREFIX):
                with contextlib.suppress(Exception):
                    self.snapshotter.remove(info.key)

    # ------------------------------------------------------------ images
    @staticmethod
    def _wrap(image: Any) -> BuildImage:
        return BuildImage(image.id, image.config)

    async def get_image(self, ref: str) -> BuildImage | None:
        try:
            return self._wrap(await asyncio.to_thread(self.images.get, ref))
        except NotFound:
            return None

    async def pull_image(self, ref: str, platform: str, auth: dict[str, Any], emit: Emit) -> BuildImage:
        from ..registry import auth as registry_auth
        parsed = parse_normalized(ref).with_default_tag()
        creds = registry_auth.from_json(auth.get(parsed.domain) or auth.get(_index_key(parsed.domain)) or {})
        loop = asyncio.get_running_loop()

        def threadsafe(msg: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(emit, msg)

        await asyncio.to_thread(self.registry.pull, parsed, creds, threadsafe, platform)
        repo = parsed.familiar().rsplit(":", 1)[0] if parsed.digest is None else parsed.familiar().split("@")[0]
        self.events.publish_action("image", "pull", parsed.familiar(), {"name": repo})
        return self._wrap(await asyncio.to_thread(self.images.get, str(parsed)))

    async def cached_child(self, parent_id: str, probe: Callable[[dict[str, Any]], bool]) -> BuildImage | None:
        def find() -> BuildImage | None:
            best: BuildImage | None = None
            for image_id, config in self.images.child_configs(parent_id):
                if probe(config) and (best is None or (config.get("created") or "") > best.config.get("created", "")):
                    best = BuildImage(image_id, config)
            return best
        return await asyncio.to_thread(find)

    async def tag(self, image_id: str, name: str) -> str:
        _, familiar = await asyncio.to_thread(self.images.tag, image_id, name)
        self.events.publish_action("image", "tag", image_id, {"name": familiar})
        return str(familiar)

    # -------------------------------------------------------- containers
    async def create_container(self, config: ContainerConfig, host_config: HostConfig) -> str:
        """A step container; ``config.image`` "" (a step right after ``FROM scratch``): on an empty
        rootfs, as dockerd creates it, through a layerless base image removed with the container."""
        base = ""
        if not config.image:
            base = await asyncio.to_thread(self._scratch_base)
            config = replace(config, image=base)
        try:
            c, _ = await self.containers.create(config, host_config, name=None)
        except BaseException:
            if base:
                await asyncio.to_thread(self._drop_scratch_base, base)
            raise
        if base:
            self._scratch_bases[str(c.id)] = base
        return str(c.id)

    def _scratch_base(self) -> str:
        os_, arch, _ = host_platform()
        cfg = {"architecture": arch, "config": {}, "created": timeutil.now(),
               # unique per step: concurrent builds never share (or remove) each other's
               "comment": f"{SCRATCH_PREFIX}{secrets.token_hex(8)}", "os": os_,
               "rootfs": {"type": "layers", "diff_ids": []}}
        return str(self.images.create_image(dumps_go(cfg)))

    def _drop_scratch_base(self, image_id: str) -> None:
        with contextlib.suppress(Exception):
            self.images.remove(image_id, force=True)

    async def run_container(self, cid: str, output: Callable[[bytes], None]) -> int:
        from ..containers.service import WAIT_NEXT_EXIT
        att = await self.containers.attach(cid, stdin=False, stdout=True, stderr=True)
        exited = await self.containers.wait_future(cid, WAIT_NEXT_EXIT)
        try:
            starting = asyncio.ensure_future(self.containers.start(cid))
            try:
                # A cancelled build must not cut a start in half: let it finish, then stop.
                await asyncio.shield(starting)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await starting
                self.containers.forget_attach(att)
                self.containers.cancel_wait(exited)
                raise
            except BaseException:
                self.containers.forget_attach(att)
                self.containers.cancel_wait(exited)
                raise
            while True:
                frame = await att.read()
                if frame is None:
                    break
                output(frame[1])
            c = await exited
        finally:
            await att.close()
        return int(c.state.exit_code)

    async def remove_container(self, cid: str) -> None:
        with contextlib.suppress(NotFound):
            await self.containers.remove(cid, force=True, volumes=True)   # its anonymous volumes too
        base = self._scratch_bases.pop(cid, "")
        if base:
            await asyncio.to_thread(self._drop_scratch_base, base)

    # ----------------------------------------------------------- mounts
    @contextlib.asynccontextmanager
    async def _mounted(self, key: str) -> AsyncIterator[Path]:
        await asyncio.to_thread(self.mount_root.mkdir, parents=True, exist_ok=True)
        target = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="mnt-", dir=self.mount_root))
        try:
            await asyncio.to_thread(self.snapshotter.mount_all, self.snapshotter.mounts(key), str(target))
            try:
                yield target
            finally:
                await asyncio.to_thread(self.snapshotter.unmount, str(target))
        finally:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(target.rmdir)

    def mount_container(self, cid: str) -> contextlib.AbstractAsyncContextManager[Path]:
        return self._mounted(cid)

    @contextlib.asynccontextmanager
    async def mount_scratch(self, parent: BuildImage | None) -> AsyncIterator[tuple[str, Path]]:
        """A writable snapshot over ``parent`` (removed on exit; commit() it before)."""
        key = f"{SCRATCH_PREFIX}{secrets.token_hex(8)}"
        chain = await self._top_chain(parent)
        await asyncio.to_thread(self.snapshotter.prepare, key, chain)
        try:
            async with self._mounted(key) as target:
                yield key, target
        finally:
            await asyncio.to_thread(self._remove_snapshot, key)

    @contextlib.asynccontextmanager
    async def mount_image(self, image: BuildImage) -> AsyncIterator[Path]:
        async with self.mount_scratch(image) as (_, target):
            yield target

    def _remove_snapshot(self, key: str) -> None:
        if self.snapshotter.exists(key):
            self.snapshotter.remove(key)

    async def _top_chain(self, image: BuildImage | None) -> str | None:
        if image is None:
            return None
        full = await asyncio.to_thread(self.images.get, image.id)
        return full.top_chain_id  # type: ignore[no-any-return]

    # ----------------------------------------------------------- commit
    async def commit(self, key: str, parent: BuildImage | None, config: dict[str, Any],
                     history: dict[str, Any]) -> BuildImage:
        """The next image: ``parent`` plus the changes in snapshot ``key`` (none: an empty layer)."""
        from ..containers.commit import Committer
        layer = Committer(self.containers, self.images, self.snapshotter, self.events).snapshot_layer(key)
        tar_path = await asyncio.to_thread(Committer.write_changes, layer, Path(self.images.tmp))
        try:
            return await asyncio.to_thread(self._register, parent, config, history, tar_path)
        finally:
            if tar_path is not None:
                tar_path.unlink(missing_ok=True)

    def _register(self, parent: BuildImage | None, config: dict[str, Any], history: dict[str, Any],
                  tar_path: Path | None) -> BuildImage:
        parent_full = self.images.get(parent.id) if parent is not None else None
        diff_ids = list(parent_full.diff_ids) if parent_full is not None else []
        entry = dict(history)
        if tar_path is not None:
            with open(tar_path, "rb") as f:
                layer = self.images.register_layer(f, parent_full.top_chain_id if parent_full else None)
            diff_ids.append(layer.diff_id)
        else:
            entry["empty_layer"] = True
        cfg = dict(config)
        parent_cfg = parent.config if parent is not None else {}
        cfg["history"] = list(parent_cfg.get("history") or []) + [entry]
        cfg["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        if not diff_ids and parent is None:
            # dockerd refuses an image without layers only at export; an empty scratch build is valid.
            pass
        image_id = self.images.create_image(dumps_go(dict(sorted(cfg.items()))),
                                            parent=parent.id if parent is not None else "")
        return self._wrap(self.images.get(image_id))


    async def restore_cached(self, parent: BuildImage | None, target: BuildImage, index: int,
                             config: dict[str, Any]) -> BuildImage:
        """The intermediate image of ``target`` after history entry ``index`` (its layers exist)."""
        def make() -> BuildImage:
            hist = list(target.config.get("history") or [])
            diffs = list((target.config.get("rootfs") or {}).get("diff_ids") or [])
            base_hist = list(parent.config.get("history") or []) if parent is not None else []
            base_diffs = list((parent.config.get("rootfs") or {}).get("diff_ids") or []) if parent else []
            entry = hist[index]
            if not entry.get("empty_layer"):
                layer_index = sum(1 for h in hist[:index] if not h.get("empty_layer"))
                base_diffs = base_diffs + [diffs[layer_index]]
            cfg: dict[str, Any] = {
                "architecture": target.config.get("architecture") or "",
                "config": config,
                "created": entry.get("created") or "",
                "docker_version": target.config.get("docker_version") or "",
                "history": base_hist + [entry],
                "os": target.config.get("os") or "linux",
                "rootfs": {"type": "layers", "diff_ids": base_diffs},
            }
            image_id = self.images.create_image(dumps_go(cfg), parent=parent.id if parent else "")
            return self._wrap(self.images.get(image_id))
        return await asyncio.to_thread(make)


def _index_key(domain: str) -> str:
    return "https://index.docker.io/v1/" if domain == "docker.io" else domain


def decode_registry_config(header: str | None) -> dict[str, Any]:
    """``X-Registry-Config``: base64url JSON of {registry: auth config}."""
    import base64
    if not header:
        return {}
    try:
        raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        data = gojson.loads(raw)
    except (ValueError, TypeError):  # gojson's errors are ValueErrors too (too deep, not JSON)
        raise InvalidParameter("invalid X-Registry-Config header") from None
    return data if isinstance(data, dict) else {}


_ = (os, EngineError)
