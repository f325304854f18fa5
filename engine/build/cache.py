"""The classic builder's layer cache: which existing image is this step's result.

A step hits when an image whose parent is the current image has a
``container_config`` equal (on the fields dockerd compares) to the step's
config, built for this platform.  With ``--cache-from`` only the history of
the named images counts (they were pulled or loaded, so they have no parent
links): a hit there restores the intermediate image.  After one miss no
later step of the build can hit.
"""
from __future__ import annotations

from typing import Any

from ..images.model import host_platform
from .backend import BuildBackend, BuildImage

_KEY_FIELDS = ("User", "Tty", "OpenStdin", "Cmd", "Env", "Labels", "ExposedPorts", "Entrypoint", "Volumes",
               "WorkingDir", "OnBuild", "Healthcheck", "StopSignal", "Shell", "ArgsEscaped")


def cache_key(cfg: dict[str, Any]) -> tuple[Any, ...]:
    """What dockerd's image cache compares of two container configs (empty equals absent)."""
    out: list[Any] = []
    for k in _KEY_FIELDS:
        v = cfg.get(k)
        if isinstance(v, dict):
            v = tuple(sorted((kk, repr(vv)) for kk, vv in v.items())) or None
        elif isinstance(v, list):
            v = tuple(v) or None
        elif v == "" or v is False:
            v = None
        out.append(v)
    return tuple(out)


class StepCache:
    def __init__(self, backend: BuildBackend, opts: Any) -> None:
        self.backend = backend
        self.enabled = not opts.no_cache
        self.cache_from_names: list[str] = list(opts.cache_from)
        self._cache_from: list[BuildImage] | None = None

    async def lookup(self, parent: BuildImage | None, probe_cfg: dict[str, Any]) -> BuildImage | None:
        if not self.enabled:
            return None
        want = cache_key(probe_cfg)
        os_, arch, _ = host_platform()

        def match(image_config: dict[str, Any]) -> bool:
            cc = image_config.get("container_config")
            if not isinstance(cc, dict):
                return False
            if (image_config.get("os") or "linux") != os_ or (image_config.get("architecture") or arch) != arch:
                return False
            return cache_key(cc) == want

        if self.cache_from_names:
            # dockerd: with --cache-from, local cache counts only on the history of a source.
            hit = await self._from_sources(parent, probe_cfg)
        else:
            hit = await self.backend.cached_child(parent.id if parent is not None else "", match)
        if hit is None:
            self.enabled = False   # a miss: no later step can hit either
        return hit

    async def _from_sources(self, parent: BuildImage | None, probe_cfg: dict[str, Any]) -> BuildImage | None:
        """--cache-from: an image whose history is the current image's plus this step
        (``created_by`` equal to the step's Cmd), as dockerd matches it."""
        if self._cache_from is None:
            self._cache_from = []
            for name in self.cache_from_names:
                img = await self.backend.get_image(name)
                if img is not None:
                    self._cache_from.append(img)
        parent_hist = list((parent.config.get("history") or []) if parent is not None else [])
        parent_diffs = list(((parent.config.get("rootfs") or {}).get("diff_ids") or [])
                            if parent is not None else [])
        n = len(parent_hist)
        created_by = " ".join(probe_cfg.get("Cmd") or [])
        for target in self._cache_from:
            hist = list(target.config.get("history") or [])
            diffs = list((target.config.get("rootfs") or {}).get("diff_ids") or [])
            if len(hist) <= n or hist[:n] != parent_hist or diffs[:len(parent_diffs)] != parent_diffs:
                continue
            if (hist[n].get("created_by") or "") != created_by:
                continue
            if n == len(hist) - 1:
                return target
            restored = await self.backend.restore_cached(parent, target, n, probe_cfg)
            self._cache_from = [target]   # stay on this image's history from here on
            return restored
        return None
