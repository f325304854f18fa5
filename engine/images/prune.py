"""``POST /images/prune``: dockerd's rules.

By default only dangling images (no tag) that are not in use go; with
``dangling=false`` every image no container uses.  Intermediate images (no
names, but children) are never candidates themselves: deleting their child
prunes them.  Images in use (a container, running or not, or a child image)
stay silently: their delete conflicts are skipped, as dockerd does.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import Conflict, NotFound
from .filters import PRUNE_KEYS, bool_filter, created_ns, labels_of, match_kv, until_ns, validate_keys

if TYPE_CHECKING:
    from .store import ImageStore

Users = Callable[[str], list[tuple[str, bool]]]


@dataclass(frozen=True)
class PruneReport:
    deleted: tuple[dict[str, str], ...]   # dockerd's ImagesDeleted items, in order
    space_reclaimed: int


def _labels_ok(flt: dict[str, list[str]], labels: dict[str, str]) -> bool:
    if flt.get("label") and not match_kv(flt["label"], labels):
        return False
    # label! excludes the images that carry all of the given labels.
    if flt.get("label!") and match_kv(flt["label!"], labels):
        return False
    return True


def prune_images(store: ImageStore, flt: dict[str, list[str]], users: Users) -> PruneReport:
    validate_keys(flt, PRUNE_KEYS)
    dangling_only = bool_filter(flt, "dangling", True)
    until = until_ns(list(flt.get("until") or []))

    images = store.list()
    parents = {img.parent for img in images if img.parent}
    sizes = {chain: size for img in images for chain, size in zip(img.chain_ids, img.layer_sizes, strict=True)}
    candidates = []
    for img in sorted(images, key=created_ns, reverse=True):
        names = store.references(img.id)
        if not names and img.id in parents:
            continue  # an intermediate image: goes with its child
        if dangling_only and (img.id in parents or any(r.digest is None for r in names)):
            continue
        if until is not None and created_ns(img) > until:
            continue
        if not _labels_ok(flt, labels_of(img)):
            continue
        candidates.append((img.id, names))

    deleted: list[dict[str, str]] = []
    for image_id, names in candidates:
        if users(image_id):
            continue  # in use by a container: dockerd's delete would conflict
        targets = [str(r) for r in names] or [image_id]
        for target in targets:
            try:
                deleted.extend(store.remove(target, force=False, noprune=False, users=users))
            except (Conflict, NotFound):
                continue
    reclaimed = sum(sizes.get(item["Deleted"], 0) for item in deleted if "Deleted" in item)
    return PruneReport(tuple(deleted), reclaimed)
