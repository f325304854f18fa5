"""The evaluator: stages and their instructions in order, the cache probe and the commit.

One ``Builder`` runs one build.  For every instruction it prints the
classic builder's ``Step N/M : ...`` line, calls the instruction's
dispatcher (dispatchers.py), and prints `` ---> <image id>``.  Dispatchers
change the stage's run config and end in one of the three commit paths
here, each of which first probes the layer cache:

- ``commit_meta``: a metadata-only step (ENV, LABEL, CMD, ...): a container
  is created from the config and committed without changes;
- ``commit_files``: COPY/ADD: files are written into a scratch snapshot of
  the current image, which becomes the next layer (no container);
- ``run``: RUN: a container runs the command and its changes are committed.

The cache key is what the classic builder compares: the parent image and the
step's config, whose Cmd carries the instruction (``#(nop) ...``, the
content hash of COPY sources, the build args RUN uses).
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import timeutil
from ..errors import EngineError, InvalidParameter
from ..images.changes import empty_config, ordered
from ..images.model import DOCKER_VERSION, host_platform
from ..types import ContainerConfig, HealthConfig, HostConfig
from .backend import BuildBackend, BuildImage, Emit
from .buildargs import BuildArgs
from .cache import StepCache
from .context import BuildContext
from .parse import Parsed, Stage
from .shell_lex import ShellLex, env_lookup

log = logging.getLogger(__name__)

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StepError(EngineError):
    """A step failed; the message goes into the stream as the build's error (code: exit status)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


def needs_buildkit(option: str) -> str:
    """The classic builder's refusal of a BuildKit-only option."""
    return (f"the {option} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ "
            "to learn how to build images with BuildKit enabled")


@dataclass
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    quiet: bool = False
    no_cache: bool = False
    remove: bool = True
    force_remove: bool = False
    pull: bool = False
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    network_mode: str = ""
    platform: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    cache_from: list[str] = field(default_factory=list)
    host_config: HostConfig = field(default_factory=HostConfig)   # resources, shm size, ulimits
    registry_auth: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageState:
    stage: Stage
    args: BuildArgs
    image: BuildImage | None = None      # None: FROM scratch, nothing committed yet
    config: dict[str, Any] = field(default_factory=empty_config)
    cmd_set: bool = False
    author: str = ""                     # MAINTAINER

    @property
    def image_id(self) -> str:
        return self.image.id if self.image is not None else ""

    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    def env(self) -> list[str]:
        return list(self.config.get("Env") or [])


class Builder:
    def __init__(self, backend: BuildBackend, opts: BuildOptions, parsed: Parsed, context: BuildContext | Path,
                 emit: Emit, *, fetch_url: Callable[[str, Path], Awaitable[tuple[Path, float | None]]]
                 | None = None) -> None:
        self.backend = backend
        self.opts = opts
        self.parsed = parsed
        self.context = context if isinstance(context, BuildContext) else BuildContext.from_dir(context)
        self.emit = emit
        self.fetch_url = fetch_url
        self.lex = ShellLex(parsed.escape)
        self.args = BuildArgs(opts.build_args)
        self.stages: list[StageState] = []
        self.tmp_containers: list[str] = []
        self.cache = StepCache(backend, opts)

    # ------------------------------------------------------------ output
    def out(self, text: str) -> None:
        if not self.opts.quiet:
            self.emit({"stream": text})

    def raw_output(self, data: bytes) -> None:
        if not self.opts.quiet:
            self.emit({"stream": data.decode("utf-8", "replace")})

    # ------------------------------------------------------------ expand
    def expand(self, st: StageState, word: str, extra: list[str] | None = None) -> str:
        env = st.env() + [f"{k}={v}" for k, v in st.args.filtered(st.env())] + list(extra or [])
        try:
            return self.lex.process_word(word, env_lookup(env))
        except InvalidParameter as err:
            raise StepError(f'failed to process "{word}": {err.message}') from None

    def expand_words(self, st: StageState, word: str) -> list[str]:
        env = st.env() + [f"{k}={v}" for k, v in st.args.filtered(st.env())]
        try:
            return self.lex.process_words(word, env_lookup(env))
        except InvalidParameter as err:
            raise StepError(f'failed to process "{word}": {err.message}') from None

    # ---------------------------------------------------------- evaluate
    def _selected_stages(self) -> list[Stage]:
        stages = self.parsed.stages
        if self.opts.target:
            for i, s in enumerate(stages):
                if s.name == self.opts.target.lower():
                    return stages[:i + 1]
            raise InvalidParameter(f"failed to reach build target {self.opts.target} in Dockerfile")
        return stages

    def check_target(self) -> None:
        self._selected_stages()

    async def build(self) -> BuildImage:
        from . import dispatchers
        stages = self._selected_stages()
        total = len(self.parsed.meta_args) + sum(1 + len(s.instructions) for s in stages)
        step = 0
        for inst in self.parsed.meta_args:
            step += 1
            self.out(f"Step {step}/{total} : {inst.original}")
            self.out("\n")
            dispatchers.meta_arg(self, inst)
        last: StageState | None = None
        try:
            for stage in stages:
                st = StageState(stage, self.args.clone_for_stage())
                self.stages.append(st)
                step += 1
                self.out(f"Step {step}/{total} : {stage.from_instruction.original}")
                self.out("\n")
                await dispatchers.dispatch_from(self, st, stage.from_instruction)
                self.step_done(st)
                for inst in stage.instructions:
                    step += 1
                    self.out(f"Step {step}/{total} : {inst.original}")
                    self.out("\n")
                    await dispatchers.dispatch(self, st, inst)
                    self.step_done(st)
                if st.image is not None:
                    self.emit({"aux": {"ID": st.image.id}})   # dockerd: one per stage
                last = st
        except asyncio.CancelledError:
            # The client went away: dockerd kills and removes the step's container.
            await asyncio.shield(self._remove_quietly())
            raise
        except BaseException:
            # Unlike dockerd's classic builder (which keeps the failed step's container unless
            # --force-rm), no failure leaves a container behind; --rm=false still keeps them all.
            if self.opts.remove or self.opts.force_remove:
                await asyncio.shield(self.remove_containers(keep_going=True))
            raise
        if self.opts.remove or self.opts.force_remove:
            await self.remove_containers()
        assert last is not None
        if last.image is None:
            raise StepError("No image was generated. Is your Dockerfile empty?")
        return last.image

    def step_done(self, st: StageState) -> None:
        self.out(f" ---> {_short(st.image_id)}\n")

    async def _remove_quietly(self) -> None:
        while self.tmp_containers:
            cid = self.tmp_containers.pop(0)
            try:
                await self.backend.remove_container(cid)
            except Exception:  # the daemon log has it; nothing else can be done for a gone client
                log.exception("removing build container %s", cid[:12])

    async def remove_containers(self, *, keep_going: bool = False) -> None:
        """``keep_going``: after a failure, whose error must not be replaced by a removal's."""
        while self.tmp_containers:
            cid = self.tmp_containers.pop(0)
            try:
                await self.backend.remove_container(cid)
            except Exception:
                if not keep_going:
                    raise
                log.exception("removing build container %s", cid[:12])
                continue
            self.out(f"Removing intermediate container {cid[:12]}\n")

    # -------------------------------------------------------------- cache
    async def probe(self, st: StageState, probe_cfg: dict[str, Any]) -> bool:
        """A cached image for this step: the state moves to it and "Using cache" is printed."""
        hit = await self.cache.lookup(st.image, probe_cfg)
        if hit is None:
            return False
        self.out(" ---> Using cache\n")
        st.image = hit      # the run config stays the one the dispatchers built (as in dockerd)
        return True

    # ------------------------------------------------------------ commits
    def step_config(self, st: StageState, cmd: list[str]) -> dict[str, Any]:
        cfg = copy.deepcopy(st.config)
        cfg["Cmd"] = cmd
        cfg["Image"] = st.image_id
        return ordered(cfg)

    def _image_config(self, st: StageState, container_cfg: dict[str, Any], container_id: str) -> dict[str, Any]:
        os_, arch, variant = host_platform()
        parent_cfg = st.image.config if st.image is not None else {}
        cfg: dict[str, Any] = {
            "architecture": parent_cfg.get("architecture") or arch,
            "config": ordered({**copy.deepcopy(st.config), "Image": st.image_id}),
            "container": container_id,
            "container_config": container_cfg,
            "created": timeutil.now(),
            "docker_version": DOCKER_VERSION,
            "os": parent_cfg.get("os") or os_,
        }
        if st.author:
            cfg["author"] = st.author
        v = parent_cfg.get("variant") or (variant if not parent_cfg else "")
        if v:
            cfg["variant"] = v
        return cfg

    def _history(self, cfg: dict[str, Any], created_by: list[str]) -> dict[str, Any]:
        return {"created": cfg["created"], "created_by": " ".join(created_by)}

    async def commit_meta(self, st: StageState, comment: str) -> None:
        """A metadata step: ``Cmd`` = shell + ["#(nop) ", comment]."""
        probe_cfg = self.step_config(st, st.shell() + ["#(nop) ", comment])
        await self._commit_with_container(st, probe_cfg, None)

    async def commit_workdir(self, st: StageState, workdir: str) -> None:
        probe_cfg = self.step_config(st, st.shell() + [f"#(nop) WORKDIR {workdir}"])

        def mkdir(root: Path) -> None:
            from .fsutil import mkdir_all
            mkdir_all(root, workdir)
        await self._commit_with_container(st, probe_cfg, mkdir)

    async def _commit_with_container(self, st: StageState, probe_cfg: dict[str, Any],
                                     change: Callable[[Path], None] | None) -> None:
        if await self.probe(st, probe_cfg):
            return
        # Right after FROM scratch too: dockerd creates the step's container on an empty rootfs.
        _fill_healthcheck_from_image(st)
        cid = await self._create(self._container_config(st, probe_cfg))
        self.out(f" ---> Running in {cid[:12]}\n")
        if change is not None:
            async with self.backend.mount_container(cid) as root:
                await asyncio.to_thread(change, root)
        cfg = self._image_config(st, probe_cfg, cid)
        cc = dict(probe_cfg)
        cc["Hostname"] = cid[:12]
        cfg["container_config"] = cc
        st.image = await self.backend.commit(cid, st.image, cfg, self._history(cfg, probe_cfg["Cmd"]))
        if self.opts.remove or self.opts.force_remove:
            await self.remove_containers()

    async def commit_files(self, st: StageState, comment: str, apply: Callable[[Path], None]) -> None:
        """COPY/ADD: ``Cmd`` = shell + ["#(nop) <comment>"]; ``apply`` writes into the rootfs."""
        probe_cfg = self.step_config(st, st.shell() + [f"#(nop) {comment}"])
        if await self.probe(st, probe_cfg):
            return
        async with self.backend.mount_scratch(st.image) as (key, root):
            await asyncio.to_thread(apply, root)
            cfg = self._image_config(st, probe_cfg, "")
            st.image = await self.backend.commit(key, st.image, cfg, self._history(cfg, probe_cfg["Cmd"]))

    async def run(self, st: StageState, cmd: list[str], probe_cmd: list[str], env: list[str]) -> None:
        probe_cfg = self.step_config(st, probe_cmd)
        probe_cfg["Entrypoint"] = None
        probe_cfg = ordered(probe_cfg)
        if await self.probe(st, probe_cfg):
            return
        run_cfg = dict(probe_cfg)   # from scratch too: the start fails as dockerd's does (no /bin/sh)
        run_cfg["Cmd"] = cmd
        run_cfg["Env"] = env
        cid = await self._create(self._container_config(st, run_cfg, entrypoint_override=True))
        self.out(f" ---> Running in {cid[:12]}\n")
        code = await self.backend.run_container(cid, self.raw_output)
        if code != 0:
            raise StepError(f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", code)
        cfg = self._image_config(st, probe_cfg, "")
        st.image = await self.backend.commit(cid, st.image, cfg, self._history(cfg, probe_cmd))
        if self.opts.remove or self.opts.force_remove:
            await self.remove_containers()

    async def _create(self, config: ContainerConfig) -> str:
        """Create a step container and record it for removal, even if the build is cancelled meanwhile."""
        creating = asyncio.ensure_future(self.backend.create_container(config, self._host_config()))
        try:
            cid = await asyncio.shield(creating)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                self.tmp_containers.append(await creating)
            raise
        self.tmp_containers.append(cid)
        return cid

    def _container_config(self, st: StageState, cfg: dict[str, Any], *,
                          entrypoint_override: bool = False) -> ContainerConfig:
        hc = cfg.get("Healthcheck")
        return ContainerConfig(
            image=st.image_id,
            user=cfg.get("User") or "",
            env=tuple(cfg.get("Env") or ()),
            cmd=tuple(cfg.get("Cmd") or ()),
            entrypoint=() if entrypoint_override else (tuple(cfg["Entrypoint"]) if cfg.get("Entrypoint")
                                                       else ()),
            working_dir=cfg.get("WorkingDir") or "",
            labels=dict(cfg.get("Labels") or {}),
            exposed_ports=tuple((cfg.get("ExposedPorts") or {}).keys()),
            # Declared volumes are volumes in the step too: what RUN writes there is not committed.
            volumes=tuple((cfg.get("Volumes") or {}).keys()),
            shell=tuple(cfg["Shell"]) if cfg.get("Shell") else None,
            healthcheck=HealthConfig(test=("NONE",)) if (hc or _image_has_healthcheck(st)) else None,
            stop_signal=cfg.get("StopSignal") or None,
        )

    def _host_config(self) -> HostConfig:
        hc = self.opts.host_config
        mode = self.opts.network_mode or "default"
        return replace(hc, network_mode=mode, extra_hosts=tuple(self.opts.extra_hosts))

    # ------------------------------------------------------------- stages
    def stage_by_name(self, name: str) -> StageState | None:
        for s in self.stages:
            if s.stage.name and s.stage.name == name.lower():
                return s
        if name.isdigit():
            i = int(name)
            if i < len(self.stages):
                return self.stages[i]
        return None


def _short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


def _config_of(image: BuildImage) -> dict[str, Any]:
    cfg = empty_config()
    cfg.update(copy.deepcopy(image.run_config))
    return ordered(cfg)


def _fill_healthcheck_from_image(st: StageState) -> None:
    """dockerd's create merges the image's healthcheck timings into the step's config in place, and
    the classic builder shares that struct with its run config: zero timings of the stage's
    HEALTHCHECK are filled from the current image's (visible after ``HEALTHCHECK NONE``)."""
    hc = st.config.get("Healthcheck")
    base = st.image.run_config.get("Healthcheck") if st.image is not None else None
    if not isinstance(hc, dict) or not hc.get("Test") or not isinstance(base, dict):
        return
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        if not hc.get(key) and base.get(key):
            hc[key] = base[key]


def _image_has_healthcheck(st: StageState) -> bool:
    return bool(st.image is not None and (st.image.run_config.get("Healthcheck") or {}).get("Test"))


_ = posixpath
