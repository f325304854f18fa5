"""``docker commit``: a new image from a container's changes.

The new image is the container's image plus one layer holding exactly the
container's changes (see rwlayer), registered through the image store's
ordinary layer path so save/push find its blob under the right diff ID.  The
image config is the container's config (or the one the client sent) with the
``--change`` lines applied, then completed from the container's config the way
dockerd merges them.  A commit without changes adds no layer, only a history
entry marked ``empty_layer``.
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .. import timeutil
from ..errors import Conflict, Unavailable
from ..images.changes import apply_changes, ordered
from ..images.reference import Reference
from ..images.store import DOCKER_VERSION, dumps_go
from ..runtime.client import NotRunning
from ..types import PAUSED, Container, ContainerConfig
from .rwlayer import RWLayer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitOptions:
    repo: str = ""
    tag: str = ""
    author: str = ""
    comment: str = ""
    pause: bool = True
    changes: tuple[str, ...] = ()
    config: dict[str, Any] | None = None   # the request body (Docker JSON), None to use the container's


def config_dict(cfg: ContainerConfig) -> dict[str, Any]:
    """A container config as Docker JSON, the form image configs store it in."""
    out: dict[str, Any] = {
        "Hostname": cfg.hostname, "Domainname": cfg.domainname, "User": cfg.user,
        "AttachStdin": cfg.attach_stdin, "AttachStdout": cfg.attach_stdout, "AttachStderr": cfg.attach_stderr,
    }
    if cfg.exposed_ports:
        out["ExposedPorts"] = {p: {} for p in cfg.exposed_ports}
    out.update({"Tty": cfg.tty, "OpenStdin": cfg.open_stdin, "StdinOnce": cfg.stdin_once,
                "Env": list(cfg.env) or None, "Cmd": list(cfg.cmd) if cfg.cmd is not None else None})
    if cfg.healthcheck is not None:
        h = cfg.healthcheck
        hc: dict[str, Any] = {"Test": list(h.test)}
        for key, value in (("Interval", h.interval_ns), ("Timeout", h.timeout_ns),
                           ("StartPeriod", h.start_period_ns), ("StartInterval", h.start_interval_ns),
                           ("Retries", h.retries)):
            if value:
                hc[key] = value
        out["Healthcheck"] = hc
    if cfg.args_escaped:
        out["ArgsEscaped"] = True
    out.update({"Image": cfg.image, "Volumes": {v: {} for v in cfg.volumes} or None,
                "WorkingDir": cfg.working_dir,
                "Entrypoint": list(cfg.entrypoint) if cfg.entrypoint is not None else None})
    if cfg.network_disabled:
        out["NetworkDisabled"] = True
    out["OnBuild"] = list(cfg.on_build) or None
    out["Labels"] = dict(cfg.labels)
    if cfg.stop_signal:
        out["StopSignal"] = cfg.stop_signal
    if cfg.stop_timeout is not None:
        out["StopTimeout"] = cfg.stop_timeout
    if cfg.shell:
        out["Shell"] = list(cfg.shell)
    return out


def merge_config(user: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Fill what ``user`` leaves unset from ``base`` (dockerd's rules for commit)."""
    out = copy.deepcopy(user)
    if not out.get("User"):
        out["User"] = base.get("User") or ""
    if base.get("ExposedPorts"):
        ports = dict(out.get("ExposedPorts") or {})
        for p, v in base["ExposedPorts"].items():
            ports.setdefault(p, v)
        out["ExposedPorts"] = ports
    if not out.get("Env"):
        out["Env"] = base.get("Env")
    elif base.get("Env"):
        keys = {e.split("=", 1)[0] for e in out["Env"]}
        out["Env"] = list(out["Env"]) + [e for e in base["Env"] if e.split("=", 1)[0] not in keys]
    if base.get("Labels"):
        labels = dict(out.get("Labels") or {})
        for k, v in base["Labels"].items():
            labels.setdefault(k, v)
        out["Labels"] = labels
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = base.get("Cmd")
            if base.get("ArgsEscaped"):
                out["ArgsEscaped"] = True
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = base.get("Entrypoint")
    if base.get("Healthcheck"):
        if not out.get("Healthcheck"):
            out["Healthcheck"] = base["Healthcheck"]
        else:
            hc = dict(out["Healthcheck"])
            for k, v in base["Healthcheck"].items():
                if not hc.get(k):
                    hc[k] = v
            out["Healthcheck"] = hc
    if not out.get("WorkingDir"):
        out["WorkingDir"] = base.get("WorkingDir") or ""
    if base.get("Volumes"):
        vols = dict(out.get("Volumes") or {})
        for v, x in base["Volumes"].items():
            vols.setdefault(v, x)
        out["Volumes"] = vols
    if not out.get("StopSignal") and base.get("StopSignal"):
        out["StopSignal"] = base["StopSignal"]
    return ordered(out)


def _body_config(body: dict[str, Any]) -> dict[str, Any]:
    """The client's config with the keys an image config has (absent ones empty)."""
    from ..images.changes import empty_config
    cfg = empty_config()
    cfg.update({k: v for k, v in body.items() if v is not None or k in cfg})
    return cfg


class Committer:
    def __init__(self, containers: Any, images: Any, snapshotter: Any, events: Any) -> None:
        self.containers = containers
        self.images = images
        self.snapshotter = snapshotter
        self.events = events

    def rw_layer(self, c: Container) -> RWLayer:
        """The container's changes over its image, for the configured snapshotter."""
        return self.snapshot_layer(c.id)

    def snapshot_layer(self, key: str) -> RWLayer:
        """The changes of any writable snapshot (a container's, or a build step's) over its parent."""
        parent = self.snapshotter.stat(key).parent
        upper = self.snapshotter.upper_dir(key)
        if getattr(self.snapshotter, "apply_mode", "overlay") == "copy":
            return RWLayer(upper, [self.snapshotter.upper_dir(parent)] if parent else [], full_tree=True)
        lowers = [self.snapshotter.upper_dir(i.key) for i in self.snapshotter.parent_chain(parent)] \
            if parent else []
        return RWLayer(upper, lowers)

    @contextlib.asynccontextmanager
    async def _paused(self, c: Container, pause: bool) -> AsyncIterator[None]:
        """Freeze the container's processes while its files are read (unless
        it is already paused, or the client said ``pause=0``)."""
        handle = self.containers.runtime_handle(c)
        if not pause or handle is None or not c.state.running or c.state.status == PAUSED:
            yield
            return
        try:
            await handle.pause()
        except (NotRunning, Unavailable):
            # The process is exiting (or has): nothing runs that could change the files, so
            # commit as dockerd commits an exited container.
            log.debug("commit of %s: not paused, its process exited", c.id[:12])
            yield
            return
        try:
            yield
        finally:
            # Shielded: even a cancelled commit must not leave the container frozen.
            resume = asyncio.ensure_future(handle.resume())
            try:
                await asyncio.shield(resume)
            except asyncio.CancelledError:
                raise
            except (NotRunning, Unavailable):
                log.debug("commit of %s: exited while paused", c.id[:12])
            except Exception:  # the container may have gone meanwhile
                log.exception("resuming %s after commit", c.id)

    async def commit(self, ref: str, ref_to_tag: Reference | None, opts: CommitOptions) -> str:
        c = self.containers.get(ref)
        if c.state.dead:
            raise Conflict(f"You cannot commit container {c.id} which is Dead")
        if c.state.removal_in_progress:
            raise Conflict(f"You cannot commit container {c.id} which is being removed")
        image = self.images.get(c.image_id)
        base = config_dict(c.config)
        user = _body_config(opts.config) if opts.config is not None else copy.deepcopy(base)
        new_cfg = merge_config(apply_changes(user, list(opts.changes)), base)
        rw = self.rw_layer(c)
        # The scratch tar is named here and removed in `finally`, whatever happens to the
        # request meanwhile (a client hanging up cancels it while a thread is writing).
        fd, name = tempfile.mkstemp(prefix="commit-", suffix=".tar", dir=Path(self.images.tmp))
        tar_path = Path(name)
        f = os.fdopen(fd, "wb")
        handed_over = False   # from then on the writing thread closes it
        try:
            async with self._paused(c, opts.pause):
                handed_over = True
                changed = await asyncio.to_thread(self._write_layer, rw, f)
            image_id = await asyncio.to_thread(self._register, c, image, new_cfg, base,
                                               tar_path if changed else None, opts)
        finally:
            tar_path.unlink(missing_ok=True)  # noqa: ASYNC240 - one unlink; it must run even when cancelled
            if not handed_over:
                f.close()
        familiar = ""
        if ref_to_tag is not None:
            await asyncio.to_thread(self.images.tag, image_id, str(ref_to_tag))
            familiar = ref_to_tag.familiar()
            self.events.publish_action("image", "tag", image_id, {"name": familiar})
        attrs = {"image": c.config.image, "name": c.name}
        attrs.update(c.config.labels)
        attrs.update({"comment": opts.comment, "imageID": image_id, "imageRef": familiar})
        self.events.publish_action("container", "commit", c.id, attrs)
        return image_id

    @staticmethod
    def write_changes(rw: RWLayer, tmp: Path) -> Path | None:
        """The layer tar of ``rw`` in a scratch file under ``tmp``, or None without changes
        (a build step's commit)."""
        fd, name = tempfile.mkstemp(prefix="commit-", suffix=".tar", dir=tmp)
        try:
            if Committer._write_layer(rw, os.fdopen(fd, "wb")):
                return Path(name)
        except BaseException:
            os.unlink(name)
            raise
        os.unlink(name)
        return None

    @staticmethod
    def _write_layer(rw: RWLayer, f: BinaryIO) -> bool:
        """Write the layer tar to ``f`` (closed here); False when the container changed nothing."""
        with f:
            if not rw.changes():
                return False
            rw.write_tar(f)
        return True

    def _register(self, c: Container, image: Any, new_cfg: dict[str, Any], base: dict[str, Any],
                  tar_path: Path | None, opts: CommitOptions) -> str:
        parent_cfg = image.config
        diff_ids = list(image.diff_ids)
        layer = None
        if tar_path is not None:
            with open(tar_path, "rb") as f:
                layer = self.images.register_layer(f, image.top_chain_id)
            diff_ids.append(layer.diff_id)
        created = timeutil.now()
        entry: dict[str, Any] = {"created": created}
        if opts.author:
            entry["author"] = opts.author
        entry["created_by"] = " ".join([c.path, *c.args])
        if opts.comment:
            entry["comment"] = opts.comment
        if layer is None:
            entry["empty_layer"] = True
        cfg: dict[str, Any] = {
            "architecture": parent_cfg.get("architecture") or image.architecture,
            "author": opts.author,
            "comment": opts.comment,
            "config": new_cfg,
            "container": c.id,
            "container_config": base,
            "created": created,
            "docker_version": DOCKER_VERSION,
            "history": list(parent_cfg.get("history") or []) + [entry],
            "os": parent_cfg.get("os") or "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        if not opts.author:
            del cfg["author"]
        if not opts.comment:
            del cfg["comment"]
        if parent_cfg.get("variant"):
            cfg["variant"] = parent_cfg["variant"]
        image_id: str = self.images.create_image(dumps_go(dict(sorted(cfg.items()))), parent=image.id)
        return image_id
