"""The image store's records: an image, a layer, and the identities computed from them."""
from __future__ import annotations

import hashlib
import json
import platform as _platform
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import reference as refs

# What image configs written here claim as docker_version (the API level pydockerd speaks).
DOCKER_VERSION = "28.0.0"


@dataclass(frozen=True)
class Image:
    id: str                              # "sha256:<hex>"
    repo_tags: tuple[str, ...]           # familiar: "busybox:latest"
    repo_digests: tuple[str, ...]        # familiar: "busybox@sha256:..."
    created: str                         # RFC 3339 from the config
    config: dict[str, Any] = field(compare=False, hash=False)  # the whole image config JSON
    history: tuple[dict[str, Any], ...] = field(compare=False, hash=False)
    diff_ids: tuple[str, ...] = ()
    chain_ids: tuple[str, ...] = ()
    layer_sizes: tuple[int, ...] = ()
    size: int = 0
    top_chain_id: str | None = None      # snapshot parent for containers
    os: str = ""
    architecture: str = ""
    variant: str = ""
    author: str = ""
    comment: str = ""
    docker_version: str = ""
    parent: str = ""                     # image ID of the parent (builds and commits only)
    last_tag_time: str = ""

    @property
    def short_id(self) -> str:
        return refs.truncate_id(self.id)

    @property
    def container_config(self) -> dict[str, Any]:
        """The config part a container starts from (Cmd, Env, ...)."""
        return dict(self.config.get("config") or {})


@dataclass(frozen=True)
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None
    size: int


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """OCI image spec: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def valid_parent(image: Image, parent: Image) -> bool:
    """dockerd's rule: the parent's history and layers are a prefix of the child's."""
    if not image.history and not parent.history:
        return True  # history is optional
    if len(parent.history) >= len(image.history) or len(parent.diff_ids) > len(image.diff_ids):
        return False
    return (list(parent.history) == list(image.history[:len(parent.history)])
            and list(parent.diff_ids) == list(image.diff_ids[:len(parent.diff_ids)]))


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) in Go's names."""
    machine = _platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386",
            "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)
    variant = {"armv7l": "v7", "armv6l": "v6"}.get(machine, "")
    return "linux", arch, variant


def dumps_go(obj: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, with <, > and & escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()
