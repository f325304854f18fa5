"""Contracts of the image store, as the rest of the engine sees it.

- ``ImageCatalog``: image records by ID and by reference (create, look up, tag,
  untag, parents).  ``ImageStore`` (store.py) implements it on SQLite and the
  content store; ``engine.testing.images.FakeImageCatalog`` in memory.  Both
  run tests/contracts/test_images_contract.py.
- ``RootfsImages``: the slice the container service uses to give a container
  its root filesystem (``engine.engine._RootfsImages`` over the image store and
  the snapshotter; ``engine.testing.rootfs.FakeRootfsImages``).
"""
from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .reference import Reference
from .store import Image


@runtime_checkable
class ImageCatalog(Protocol):
    def create_image(self, config_bytes: bytes, *, parent: str = "") -> str:
        """Register an image config whose layers are present; returns its ID, the
        config's sha256 digest (the same bytes give the same image)."""
        ...

    def get(self, ref_or_id: str) -> Image:
        """By name (normalised: ``busybox`` is ``docker.io/library/busybox:latest``), full ID
        (with or without ``sha256:``) or unique ID prefix.  NotFound: "No such image: ..."."""
        ...

    def exists(self, ref_or_id: str) -> bool: ...

    def list(self) -> builtins.list[Image]: ...

    def tag(self, source: str, repo: str, tag: str = "") -> tuple[str, str]:
        """Returns (image ID, the new name in familiar form)."""
        ...

    def untag(self, name: str) -> str:
        """Remove one name; returns its familiar form."""
        ...

    def references(self, image_id: str) -> builtins.list[Reference]:
        """The image's names, sorted."""
        ...

    def children(self, image_id: str) -> builtins.list[str]:
        """IDs of the images whose parent this one is."""
        ...


@runtime_checkable
class RootfsImages(Protocol):
    def get(self, ref: str) -> Any:
        """The image a container is created from (``.id`` and ``.config``)."""
        ...

    def prepare_rootfs(self, key: str, image_id: str) -> Any: ...

    def remove_rootfs(self, key: str) -> None: ...

    def mount_rootfs(self, key: str, target: Path) -> None: ...

    def unmount_rootfs(self, key: str, target: Path) -> None: ...
