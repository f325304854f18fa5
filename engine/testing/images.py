"""An in-memory image catalog (the ``ImageCatalog`` Protocol): names, IDs, parents.

Layers are not modelled: a config may only reference layers registered with
``add_layer`` (by chain ID), as the real store wants its layers first."""
from __future__ import annotations

import builtins
import hashlib
import json
from typing import Any

from .. import timeutil
from ..errors import EngineError, InvalidParameter, NotFound
from ..images import reference as refs
from ..images.reference import Reference
from ..images.store import Image, chain_ids


class FakeImageCatalog:
    def __init__(self) -> None:
        self.configs: dict[str, dict[str, Any]] = {}     # image ID -> config
        self.parents: dict[str, str] = {}
        self.names: dict[str, str] = {}                  # full reference -> image ID
        self.layers: set[str] = set()

    def add_layer(self, chain_id: str) -> None:
        self.layers.add(chain_id)

    def create_image(self, config_bytes: bytes, *, parent: str = "") -> str:
        try:
            cfg = json.loads(config_bytes)
        except ValueError as err:
            raise InvalidParameter(f"invalid image config: {err}") from None
        diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
        history = cfg.get("history") or []
        if sum(1 for h in history if isinstance(h, dict) and not h.get("empty_layer")) > len(diff_ids):
            raise EngineError("too many non-empty layers in History section")
        for chain in chain_ids(diff_ids):
            if chain not in self.layers:
                raise InvalidParameter(f"image config references a layer that is not present: {chain}")
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        if image_id not in self.configs:
            self.configs[image_id] = cfg
            self.parents[image_id] = parent
        return image_id

    def _build(self, image_id: str) -> Image:
        cfg = self.configs[image_id]
        tags: builtins.list[str] = []
        digests: builtins.list[str] = []
        for name in sorted(n for n, i in self.names.items() if i == image_id):
            r = refs.parse(name)
            (digests if r.digest else tags).append(r.familiar())
        diff_ids = tuple((cfg.get("rootfs") or {}).get("diff_ids") or ())
        chains = tuple(chain_ids(diff_ids))
        return Image(
            id=image_id, repo_tags=tuple(tags), repo_digests=tuple(digests),
            created=cfg.get("created") or timeutil.ZERO_TIME, config=cfg, history=tuple(cfg.get("history") or ()),
            diff_ids=diff_ids, chain_ids=chains, layer_sizes=tuple(0 for _ in chains),
            top_chain_id=chains[-1] if chains else None, os=cfg.get("os", "") or "",
            architecture=cfg.get("architecture", "") or "", variant=cfg.get("variant", "") or "",
            author=cfg.get("author", "") or "", comment=cfg.get("comment", "") or "",
            docker_version=cfg.get("docker_version", "") or "", parent=self.parents.get(image_id, ""),
        )

    def _resolve(self, ref_or_id: str) -> tuple[str | None, Reference | None]:
        if refs.is_full_id(ref_or_id):
            full = ref_or_id if ref_or_id.startswith("sha256:") else "sha256:" + ref_or_id
            return (full if full in self.configs else None), None
        ref = refs.parse_normalized(ref_or_id)
        found = self.names.get(str(ref.with_default_tag()))
        if found is not None:
            return found, ref
        if refs.is_id_prefix(ref_or_id):
            hexpart = ref_or_id.removeprefix("sha256:")
            matches = [i for i in self.configs if i[len("sha256:"):].startswith(hexpart)]
            if len(matches) == 1:
                return matches[0], ref
        return None, ref

    def get(self, ref_or_id: str) -> Image:
        image_id, ref = self._resolve(ref_or_id)
        if image_id is None:
            if ref is None:
                raise NotFound(f"No such image: sha256:{ref_or_id.removeprefix('sha256:')}")
            raise NotFound(f"No such image: {ref.with_default_tag().familiar()}")
        return self._build(image_id)

    def exists(self, ref_or_id: str) -> bool:
        try:
            return self._resolve(ref_or_id)[0] is not None
        except InvalidParameter:
            return False

    def list(self) -> builtins.list[Image]:
        return [self._build(i) for i in self.configs]

    def tag(self, source: str, repo: str, tag: str = "") -> tuple[str, str]:
        from ..images.store import ImageStore

        ref = ImageStore.parse_tag(repo, tag)        # the rules are pure: share them
        image = self.get(source)
        self.names[str(ref)] = image.id
        return image.id, ref.familiar()

    def untag(self, name: str) -> str:
        ref = refs.parse_normalized(name).with_default_tag()
        if self.names.pop(str(ref), None) is None:
            raise NotFound(f"No such image: {ref.familiar()}")
        return ref.familiar()

    def references(self, image_id: str) -> builtins.list[Reference]:
        return [refs.parse(n) for n in sorted(n for n, i in self.names.items() if i == image_id)]

    def children(self, image_id: str) -> builtins.list[str]:
        return [i for i, p in self.parents.items() if p == image_id]
