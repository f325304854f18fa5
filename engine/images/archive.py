"""``docker load`` and ``docker save`` archives.

An archive is a tar holding ``manifest.json`` (docker-archive: a list of
``{"Config", "RepoTags", "Layers"}``) and/or an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/sha256/*``).  ``docker save`` since
Docker 25 writes both, with layers as ``blobs/sha256/<diff id hex>``; older
ones wrote ``<id>/layer.tar``.  Loading accepts all of these, with plain or
compressed layers, and verifies every layer against the config's diff IDs.
"""
from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable

from ..errors import InvalidParameter
from . import reference as refs
from .layer import LayerError, apply_layer, clean_parts
from .progress import ProgressReader
from .reference import Reference

if TYPE_CHECKING:
    from .store import ImageStore

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

Emit = Callable[[dict[str, Any]], None]


# ============================================================================ load

def _safe_path(root: Path, rel: str) -> Path:
    """``rel`` inside the unpacked archive, refusing anything that leads out of it."""
    try:
        parts = clean_parts(rel)
    except LayerError:
        raise InvalidParameter(f"invalid path {rel!r} in archive") from None
    path = root.joinpath(*parts)
    real = os.path.realpath(path)
    base = os.path.realpath(root)
    if not real.startswith(base + os.sep):
        raise InvalidParameter(f"invalid path {rel!r} in archive: outside of the archive")
    return Path(real)


def _read_json(root: Path, rel: str) -> Any:
    try:
        with open(_safe_path(root, rel), "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InvalidParameter(f"invalid archive: {rel} not found") from None
    except ValueError as err:
        raise InvalidParameter(f"invalid archive: {rel}: {err}") from None


def _blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def _oci_entries(root: Path) -> list[dict[str, Any]]:
    """docker-archive style entries from an OCI layout's index.json."""
    from .store import host_platform
    _, arch, _ = host_platform()
    index = _read_json(root, "index.json")
    entries: list[dict[str, Any]] = []

    def visit(desc: dict[str, Any], names: list[str]) -> None:
        media = desc.get("mediaType", "")
        doc = _read_json(root, _blob_path(desc["digest"]))
        media = media or doc.get("mediaType", "")
        if media in (MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST_LIST) or "manifests" in doc:
            candidates = doc.get("manifests") or []
            chosen = [m for m in candidates if (m.get("platform") or {}).get("os", "linux") == "linux"
                      and (m.get("platform") or {}).get("architecture", arch) == arch]
            if not chosen:
                raise InvalidParameter("no matching manifest for linux/" + arch + " in the manifest list entries")
            visit(chosen[0], names)
            return
        entries.append({"Config": _blob_path(doc["config"]["digest"]), "RepoTags": names,
                        "Layers": [_blob_path(l["digest"]) for l in doc.get("layers") or []]})

    for desc in index.get("manifests") or []:
        ann = desc.get("annotations") or {}
        names: list[str] = []
        full = ann.get(ANNOTATION_IMAGE_NAME)
        ref_name = ann.get(ANNOTATION_REF_NAME)
        if full:
            names.append(full)
        elif ref_name and ("/" in ref_name or ":" in ref_name):
            names.append(ref_name)
        visit(desc, names)
    return entries


def load_archive(store: ImageStore, fileobj: BinaryIO, emit: Emit, quiet: bool) -> list[str]:
    workdir = store.tmp / f"load-{secrets.token_hex(8)}"
    workdir.mkdir(mode=0o700)
    try:
        try:
            apply_layer(fileobj, workdir, "copy")
        except LayerError as err:
            raise InvalidParameter(f"invalid archive: {err.message}") from None
        if (workdir / "manifest.json").is_file():
            entries = _read_json(workdir, "manifest.json")
            if not isinstance(entries, list):
                raise InvalidParameter("invalid archive: manifest.json is not a list")
        elif (workdir / "index.json").is_file():
            entries = _oci_entries(workdir)
        else:
            raise InvalidParameter("invalid archive: no manifest.json or index.json found")
        loaded: list[str] = []
        for entry in entries:
            loaded.extend(_load_one(store, workdir, entry, emit, quiet))
        return loaded
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _load_one(store: ImageStore, root: Path, entry: dict[str, Any], emit: Emit, quiet: bool) -> list[str]:
    from .store import chain_ids
    cfg_path = _safe_path(root, entry.get("Config") or "")
    config_bytes = cfg_path.read_bytes()
    try:
        cfg = json.loads(config_bytes)
    except ValueError as err:
        raise InvalidParameter(f"invalid image config: {err}") from None
    image_os = cfg.get("os") or "linux"
    if image_os != "linux":
        raise InvalidParameter(f"cannot load {image_os} image on linux")
    diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
    layer_files = list(entry.get("Layers") or [])
    if len(layer_files) != len(diff_ids):
        raise InvalidParameter(
            f"invalid manifest, layers length mismatch: expected {len(layer_files)}, got {len(diff_ids)}")
    # Validate names before doing the work.
    tags: list[Reference] = []
    for name in entry.get("RepoTags") or []:
        ref = refs.parse_normalized(name)
        if ref.tag is None or ref.digest is not None:
            raise InvalidParameter(f'invalid tag "{name}"')
        tags.append(ref)
    chains = chain_ids(diff_ids)
    parent: str | None = None
    for i, (diff_id, chain, rel) in enumerate(zip(diff_ids, chains, layer_files)):
        if not store._layer_exists(chain):
            path = _safe_path(root, rel)
            with open(path, "rb") as raw:
                reader: Any = raw
                if not quiet:
                    reader = ProgressReader(raw, os.fstat(raw.fileno()).st_size, refs.truncate_id(diff_id),
                                            "Loading layer", emit)
                try:
                    store.register_layer(reader, parent, expected_diff_id=diff_id)
                except InvalidParameter as err:
                    if err.message.startswith("invalid diffID"):
                        raise InvalidParameter(
                            f"invalid diffID for layer {i}: expected {diff_id!r}, got "
                            f"{err.message.rsplit('got ', 1)[-1]}") from None
                    raise
        parent = chain
    image_id = store.create_image(config_bytes)
    names: list[str] = []
    for ref in tags:
        previous = store._add_ref(ref, image_id, touch=False)
        if previous is not None and previous != image_id:
            emit({"stream": f"The image {ref.familiar()} already exists, renaming the old one with ID "
                            f"{previous} to empty string\n"})
        emit({"stream": f"Loaded image: {ref.familiar()}\n"})
        names.append(ref.familiar())
    if not tags:
        emit({"stream": f"Loaded image ID: {image_id}\n"})
        names.append(image_id)
    return names


# ============================================================================ save

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


def save_archive(store: ImageStore, names: list[str], fileobj: BinaryIO) -> None:
    # Which images, under which tags.
    wanted: dict[str, list[Reference]] = {}
    for name in names:
        image = store.get(name)
        tags = wanted.setdefault(image.id, [])
        if refs.id_has_prefix(image.id, name) or refs.is_full_id(name):
            continue
        ref = refs.parse_normalized(name)
        if ref.digest is not None:
            continue
        if ref.tag is None:
            # A bare repository name saves all of its tags of this image.
            chosen = [r for r in store.references(image.id) if r.digest is None and r.name == ref.name]
        else:
            chosen = [ref]
        for r in chosen:
            if r not in tags:
                tags.append(r)

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
                        tar.addfile(info, f)
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
            manifest_json.append({"Config": cfg_path, "RepoTags": [t.familiar() for t in tags] or None,
                                  "Layers": [_blob_path(d) for d in image.diff_ids]})
        _add_bytes(tar, "index.json", _dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX,
                                              "manifests": index_manifests}), now)
        _add_bytes(tar, "manifest.json", _dumps(manifest_json), now)
        _add_bytes(tar, "oci-layout", _dumps({"imageLayoutVersion": "1.0.0"}), now)
        if repositories:
            _add_bytes(tar, "repositories", _dumps(repositories), now)
