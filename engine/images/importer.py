"""``docker import``: an image of one layer from a (maybe compressed) rootfs tar."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import timeutil
from ..errors import InvalidParameter
from . import reference as refs
from .changes import apply_changes, empty_config
from .model import DOCKER_VERSION, dumps_go, host_platform

if TYPE_CHECKING:
    from .store import ImageStore


def import_tar(store: ImageStore, fileobj: BinaryIO, *, repo_tag: str | None = None, changes: Iterable[str] = (),
               message: str = "", platform: str | None = None, source: str = "-") -> str:
    """Register the layer and the image (tagged ``repo_tag``); returns the image ID."""
    ref = None
    if repo_tag:
        ref = refs.parse_normalized(repo_tag)
        if ref.digest is not None:
            raise InvalidParameter("cannot import digest reference")
        ref = ref.with_default_tag()
    os_, arch, variant = host_platform()
    if platform:
        parts = platform.split("/")
        if parts[0] and parts[0] != "linux":
            raise InvalidParameter(f'"{platform}": unsupported platform')
        arch = parts[1] if len(parts) > 1 and parts[1] else arch
        variant = parts[2] if len(parts) > 2 else ("" if len(parts) > 1 else variant)
    container_cfg = apply_changes(empty_config(), list(changes))
    layer = store.register_layer(fileobj, None)
    created = timeutil.now()
    comment = message or f"Imported from {source}"
    # dockerd writes the image config's top-level keys sorted (it marshals a map).
    cfg: dict[str, Any] = {
        "architecture": arch,
        "comment": comment,
        "config": container_cfg,
        "container_config": empty_config(),
        "created": created,
        "docker_version": DOCKER_VERSION,
        "history": [{"created": created, "comment": comment}],
        "os": os_,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
    }
    if variant:
        cfg["variant"] = variant
    image_id = store.create_image(dumps_go(cfg))
    if ref is not None:
        store.add_ref(ref, image_id)
    return image_id
