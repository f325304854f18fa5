"""``docker save``: a docker-archive with OCI layout files (as Docker 25+ writes it)."""
from __future__ import annotations

import io
import tarfile
import time
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import EngineError, NotFound
from . import reference as refs
from .archive_reader import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_MANIFEST,
    _blob_path,
)
from .reference import Reference

if TYPE_CHECKING:
    from .store import ImageStore

def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = mtime
    tar.addfile(info)


def _dumps(obj: Any) -> bytes:
    from .store import dumps_go
    return dumps_go(obj)


class _VerifyingReader:
    def __init__(self, raw: BinaryIO, digest: str) -> None:
        import hashlib
        self._raw = raw
        self._digest = digest
        self._hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hash.update(data)
        return data

    def readinto(self, b: Any) -> int:
        n: int = self._raw.readinto(b)  # type: ignore[attr-defined]  # the tar member file has readinto; BinaryIO omits it
        self._hash.update(memoryview(b)[:n])
        return n

    def verify(self) -> None:
        got = "sha256:" + self._hash.hexdigest()
        if got != self._digest:
            raise EngineError(f"layer {self._digest} is corrupted in the store: its content hashes to {got}")


def select_images(store: ImageStore, names: list[str]) -> dict[str, list[Reference]]:
    """What ``docker save NAME...`` writes: image ID -> the tags it is saved under (dockerd's
    rules: a bare repository name means all of its tags; an ID or digest saves no tag)."""
    wanted: dict[str, list[Reference]] = {}

    def add(image_id: str, ref: Reference | None) -> None:
        tags = wanted.setdefault(image_id, [])
        if ref is not None and ref.digest is None and ref not in tags:
            tags.append(ref)

    for name in names:
        if refs.is_full_id(name):
            add(store.get(name).id, None)
            continue
        ref = refs.parse_normalized(name)
        if ref.tag is None and ref.digest is None:
            assocs = store.references_by_name(ref.name)
            for image_id, r in assocs:
                add(image_id, r)
            if not assocs:
                try:
                    image = store.get(name)  # an ID prefix
                except NotFound:
                    raise NotFound(f"No such image: {name}") from None
                add(image.id, None)
            continue
        try:
            image = store.get(name)
        except NotFound:
            raise NotFound("reference does not exist") from None  # dockerd's reference store words
        add(image.id, None if refs.id_has_prefix(image.id, name) else ref)
    return wanted


def save_archive(store: ImageStore, names: list[str], fileobj: BinaryIO) -> None:
    wanted = select_images(store, names)
    now = time.time()
    written: set[str] = set()
    manifest_json: list[dict[str, Any]] = []
    index_manifests: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "blobs/", now)
        _add_dir(tar, "blobs/sha256/", now)
        for image_id, tags in wanted.items():
            image = store.get(image_id)
            layers_desc = []
            for diff_id in image.diff_ids:
                path = _blob_path(diff_id)
                size = store.content.info(diff_id).size
                if path not in written:
                    info = tarfile.TarInfo(path)
                    info.size = size
                    info.mode = 0o644
                    info.mtime = now
                    with store.layer_tar(diff_id) as f:
                        # Verified as it is copied, like dockerd's verified layer reader.
                        checked = _VerifyingReader(f, diff_id)
                        tar.addfile(info, checked)
                        checked.verify()
                    written.add(path)
                layers_desc.append({"mediaType": MEDIA_OCI_LAYER, "digest": diff_id, "size": size})
            config_bytes = store.content.read_bytes(image.id)
            cfg_path = _blob_path(image.id)
            if cfg_path not in written:
                _add_bytes(tar, cfg_path, config_bytes, now)
                written.add(cfg_path)
            manifest = _dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
                               "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": image.id,
                                          "size": len(config_bytes)},
                               "layers": layers_desc})
            import hashlib
            mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
            if _blob_path(mdigest) not in written:
                _add_bytes(tar, _blob_path(mdigest), manifest, now)
                written.add(_blob_path(mdigest))
            mdesc = {"mediaType": MEDIA_OCI_MANIFEST, "digest": mdigest, "size": len(manifest)}
            if tags:
                for t in tags:
                    index_manifests.append({**mdesc, "annotations": {ANNOTATION_IMAGE_NAME: str(t),
                                                                     ANNOTATION_REF_NAME: t.tag or ""}})
                    if image.diff_ids:
                        repositories.setdefault(t.familiar_name(), {})[t.tag or "latest"] = \
                            image.chain_ids[-1].split(":", 1)[1]
            else:
                index_manifests.append(mdesc)
            item: dict[str, Any] = {"Config": cfg_path, "RepoTags": [t.familiar() for t in tags] or None,
                                    "Layers": [_blob_path(d) for d in image.diff_ids]}
            if image.parent and image.parent in wanted:
                item["Parent"] = image.parent  # the build chain, when its parent is saved too
            manifest_json.append(item)
        _add_bytes(tar, "index.json", _dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX,
                                              "manifests": index_manifests}), now)
        _add_bytes(tar, "manifest.json", _dumps(manifest_json or None), now)  # Go writes a nil list as null
        _add_bytes(tar, "oci-layout", _dumps({"imageLayoutVersion": "1.0.0"}), now)
        if repositories:
            _add_bytes(tar, "repositories", _dumps(repositories), now)
