"""Hand-made `docker load` archives: images with chosen layers, labels, creation times and history.

Both daemons load these, so tests get the same image IDs everywhere and can share layers
between images, date images (before/since/until), or put hostile entries in archives.
"""
from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def layer_tar(files: dict[str, bytes], *, extra: Callable[[tarfile.TarFile], None] | None = None,
              mtime: float = 1_600_000_000) -> bytes:
    """An uncompressed layer tar holding ``files`` (parents created as directories)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = mtime
                    tar.addfile(info)
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            info.mode = 0o644
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(files[path]))
        if extra is not None:
            extra(tar)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class ImageSpec:
    layers: list[bytes]
    tags: list[str] = field(default_factory=list)
    labels: dict[str, str] | None = None
    created: str = "2020-01-01T00:00:00Z"
    cmd: list[str] | None = None
    history: list[dict[str, Any]] | None = None
    parent: str = ""   # manifest.json "Parent": an image ID in the same archive

    def config(self) -> dict[str, Any]:
        history = self.history
        if history is None:
            history = [{"created": self.created, "created_by": f"/bin/sh -c #(nop) layer {i}"}
                       for i in range(len(self.layers))]
        return {
            "architecture": ARCH,
            "config": {"Cmd": self.cmd, "Env": ["PATH=/bin"], "Labels": self.labels},
            "created": self.created,
            "history": history,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(l) for l in self.layers]},
        }

    def config_bytes(self) -> bytes:
        return json.dumps(self.config(), separators=(",", ":"), sort_keys=True).encode()

    @property
    def image_id(self) -> str:
        return sha256(self.config_bytes())


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_archive(dest: Path, images: list[ImageSpec],
                  tamper: Callable[[tarfile.TarFile], None] | None = None) -> Path:
    """A docker-archive (manifest.json + <hex>/layer.tar + <id>.json) of ``images``."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        written: set[str] = set()
        manifest = []
        for spec in images:
            layer_paths = []
            for data in spec.layers:
                hexd = sha256(data)[7:]
                path = f"{hexd}/layer.tar"
                if path not in written:
                    _add(tar, path, data)
                    written.add(path)
                layer_paths.append(path)
            cfg = spec.config_bytes()
            cfg_name = f"{spec.image_id[7:]}.json"
            if cfg_name not in written:
                _add(tar, cfg_name, cfg)
                written.add(cfg_name)
            item: dict[str, Any] = {"Config": cfg_name, "RepoTags": spec.tags or None, "Layers": layer_paths}
            if spec.parent:
                item["Parent"] = spec.parent
            manifest.append(item)
        _add(tar, "manifest.json", json.dumps(manifest).encode())
        if tamper is not None:
            tamper(tar)
    return dest
