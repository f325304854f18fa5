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
import secrets
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import gojson
from ..errors import InvalidParameter
from . import reference as refs
from .archive_reader import _Archive, _oci_entries, _Spilled
from .progress import ProgressReader
from .reference import Reference

if TYPE_CHECKING:
    from .store import ImageStore

Emit = Callable[[dict[str, Any]], None]


def load_archive(store: ImageStore, fileobj: BinaryIO, emit: Emit, quiet: bool) -> list[str]:
    workdir = store.tmp / f"load-{secrets.token_hex(8)}"
    workdir.mkdir(mode=0o700)
    try:
        archive = _Archive(workdir)
        archive.read(fileobj)
        if archive.has("manifest.json"):
            entries = archive.json("manifest.json")
            if entries is None:
                entries = []  # what dockerd writes when asked to save nothing
            if not isinstance(entries, list):
                raise InvalidParameter("invalid archive: manifest.json is not a list")
        elif archive.has("index.json"):
            entries = _oci_entries(archive)
        else:
            raise InvalidParameter("invalid archive: no manifest.json or index.json found")
        loaded: list[str] = []
        ids: list[str] = []
        parents: list[tuple[str, str]] = []
        last_tagged = False
        for entry in entries:
            if not isinstance(entry, dict):
                raise InvalidParameter("invalid archive: manifest.json entries must be objects")
            image_id, names = _load_one(store, archive, entry, emit, quiet)
            ids.append(image_id)
            loaded.extend(names)
            last_tagged = bool(names)
            if entry.get("Parent"):
                parents.append((image_id, str(entry["Parent"])))
        # Parent links count only between images of this archive (dockerd's validatedParentLinks).
        for image_id, parent_id in parents:
            if parent_id in ids:
                store.set_parent(image_id, parent_id)
        if ids and not last_tagged:
            # dockerd's quirk: when the last image had no tag, it lists every loaded image's ID.
            for image_id in ids:
                emit({"stream": f"Loaded image ID: {image_id}\n"})
                if image_id not in loaded:
                    loaded.append(image_id)
        return loaded
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _load_one(store: ImageStore, archive: _Archive, entry: dict[str, Any], emit: Emit,
              quiet: bool) -> tuple[str, list[str]]:
    from .store import chain_ids
    config_bytes = archive.read_bytes(str(entry.get("Config") or ""))
    try:
        cfg = gojson.loads(config_bytes)
    except ValueError as err:
        raise InvalidParameter(f"invalid image config: {err}") from None
    if not isinstance(cfg, dict):
        raise InvalidParameter("invalid image config: not a JSON object")
    image_os = cfg.get("os") or "linux"
    if image_os != "linux":
        raise InvalidParameter(f"cannot load {image_os} image on linux")
    diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
    layer_files = list(entry.get("Layers") or [])
    if len(layer_files) != len(diff_ids):
        raise InvalidParameter(
            f"invalid manifest, layers length mismatch: expected {len(layer_files)}, got {len(diff_ids)}")
    chains = chain_ids(diff_ids)
    parent: str | None = None
    new_chains: list[str] = []
    try:
        for i, (diff_id, chain, rel) in enumerate(zip(diff_ids, chains, layer_files, strict=True)):
            if not store._layer_exists(chain):
                item = archive.get(str(rel))
                if item is None:
                    raise InvalidParameter(f"invalid archive: {rel} not found")
                try:
                    _register(store, item, parent, diff_id, emit, quiet)
                except InvalidParameter as err:
                    if err.message.startswith("invalid diffID"):
                        raise InvalidParameter(
                            f"invalid diffID for layer {i}: expected {diff_id!r}, got "
                            f"{err.message.rsplit('got ', 1)[-1]}") from None
                    raise
                new_chains.append(chain)
            parent = chain
        image_id = store.create_image(config_bytes)
    except BaseException:
        # Layers this image brought in go again when no image got to use them.
        with store._lock:
            store._release_layers(new_chains)
        raise
    # Like dockerd, names are checked once the image exists: a bad one leaves it untagged.
    tags: list[Reference] = []
    for name in entry.get("RepoTags") or []:
        ref = refs.parse_normalized(name)
        if ref.tag is None or ref.digest is not None:
            raise InvalidParameter(f'invalid tag "{name}"')
        tags.append(ref)
    names: list[str] = []
    for ref in tags:
        previous = store.add_ref(ref, image_id, touch=False)
        if previous is not None and previous != image_id:
            emit({"stream": f"The image {ref.familiar()} already exists, renaming the old one with ID "
                            f"{previous} to empty string\n"})
        emit({"stream": f"Loaded image: {ref.familiar()}\n"})
        names.append(ref.familiar())
    return image_id, names


def _register(store: ImageStore, item: bytes | _Spilled, parent: str | None, diff_id: str, emit: Emit,
              quiet: bool) -> None:
    ident = refs.truncate_id(diff_id)
    if isinstance(item, bytes):
        raw: Any = io.BytesIO(item)
        if not quiet:
            raw = ProgressReader(raw, len(item), ident, "Loading layer", emit)
        store.register_layer(raw, parent, expected_diff_id=diff_id)
        return
    if not item.path.exists():
        # Moved into the content store by an earlier layer with the same bytes (an image may
        # use one layer tar at several places in its chain).
        with store.layer_tar(diff_id) as f:
            store.register_layer(f, parent, expected_diff_id=diff_id)
        return
    with open(item.path, "rb") as f:
        if item.digest == diff_id:
            # An uncompressed layer whose bytes were hashed as they arrived: unpack it without
            # hashing again and move the file into the content store.
            tracker = None if quiet else ProgressReader(f, item.size, ident, "Loading layer", emit)
            store.register_layer(f, parent, expected_diff_id=diff_id, verified_file=item.path,
                                 progress=tracker.advance_to if tracker is not None else None)
            if tracker is not None:
                tracker.advance_to(item.size)
                tracker.finish()
            return
        reader: Any = f
        if not quiet:
            reader = ProgressReader(f, item.size, ident, "Loading layer", emit)
        store.register_layer(reader, parent, expected_diff_id=diff_id)


