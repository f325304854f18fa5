"""An in-memory stand-in for the image slice the container service uses (``RootfsImages``).

``mount_rootfs`` does not mount anything: it writes the image's ``/etc/passwd``
and ``/etc/group`` into the target directory (what the service reads from a
rootfs) and remembers it, so a test can check that every mounted rootfs was
unmounted again.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NotFound

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


@dataclass(frozen=True)
class FakeImage:
    id: str
    config: dict[str, Any]          # the image config document ({"config": {...}, ...})
    name: str = ""
    size: int = 0


@dataclass
class FakeRootfsImages:
    images: dict[str, FakeImage] = field(default_factory=dict)     # by name and by id
    prepared: set[str] = field(default_factory=set)                 # container keys with a rootfs
    mounted: dict[str, Path] = field(default_factory=dict)          # container key -> target

    def add(self, name: str, *, cmd: tuple[str, ...] = ("sh",), entrypoint: tuple[str, ...] | None = None,
            env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
            **extra: Any) -> FakeImage:
        """An image whose config has these fields (Docker's names in ``extra``, e.g. Healthcheck=...)."""
        cfg: dict[str, Any] = {"Cmd": list(cmd), "Env": list(env), **extra}
        if entrypoint is not None:
            cfg["Entrypoint"] = list(entrypoint)
        doc = {"architecture": "amd64", "os": "linux", "config": cfg}
        image_id = "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        image = FakeImage(image_id, doc, name)
        self.images[name] = self.images[image_id] = image
        return image

    def get(self, ref: str) -> FakeImage:
        image = self.images.get(ref) or self.images.get(ref.split(":")[0] if ref.endswith(":latest") else ref)
        if image is None:
            raise NotFound(f"No such image: {ref if ':' in ref else ref + ':latest'}")
        return image

    def prepare_rootfs(self, key: str, image_id: str) -> None:
        if key in self.prepared:
            raise FileExistsError(f"rootfs of {key} exists")
        self.prepared.add(key)

    def remove_rootfs(self, key: str) -> None:
        # Stricter than the real one, to catch a leak: removing a mounted rootfs fails.
        if key in self.mounted:
            raise OSError(f"rootfs of {key} is still mounted")
        self.prepared.discard(key)      # unknown keys: nothing to do, as with the image store

    def mount_rootfs(self, key: str, target: Path) -> None:
        if key not in self.prepared:
            raise NotFound(f"no rootfs for {key}")
        (target / "etc").mkdir(parents=True, exist_ok=True)
        (target / "etc" / "passwd").write_text(PASSWD)
        (target / "etc" / "group").write_text(GROUP)
        self.mounted[key] = target

    def unmount_rootfs(self, key: str, target: Path) -> None:
        if self.mounted.pop(key, None) is not None:
            for name in ("passwd", "group"):
                (target / "etc" / name).unlink(missing_ok=True)
