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
import os
import secrets
import shutil
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import gojson
from ..errors import EngineError, InvalidParameter, NotFound
from . import reference as refs
from .layer import LayerError, clean_parts
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

# Archive members up to this size are kept in memory (configs, manifests, small layers) while
# the archive streams in; bigger ones (and everything once the budget is spent) are written
# to the load's scratch directory, hashed on the way, so a layer is written to disk once
# before it is unpacked, and then moved (not copied) into the content store.
_SMALL = 1 << 20
_MEMORY_BUDGET = 64 << 20
_MAX_LINKS = 40


class _Spilled:
    """An archive member written to the scratch directory, with its sha256."""

    def __init__(self, path: Path, digest: str, size: int) -> None:
        self.path = path
        self.digest = digest
        self.size = size


class _Archive:
    """The members of a ``docker load`` tar, read in one pass without writing any path
    the archive names: regular files by their cleaned name, symlinks and hard links as
    aliases resolved inside the archive only."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.files: dict[str, bytes | _Spilled] = {}
        self.symlinks: dict[str, str] = {}
        self.dirs: set[str] = set()
        self._in_memory = 0
        self._spills = 0

    # -- reading the stream ---------------------------------------------------
    def read(self, fileobj: BinaryIO) -> None:
        from .layer import decompressed
        from .tarstream import TarFormatError, members
        try:
            for member, buf in members(decompressed(fileobj)):
                self._member(member, buf)
        except TarFormatError as err:
            raise InvalidParameter(f"invalid archive: {err}") from None
        except LayerError as err:
            raise InvalidParameter(f"invalid archive: {err.message}") from None
        except (EOFError, OSError) as err:
            if isinstance(err, OSError) and err.errno is not None:
                raise
            raise InvalidParameter("invalid archive: unexpected EOF") from None

    def _member(self, m: Any, buf: Any) -> None:
        from .tarstream import read_all
        parts = clean_parts(m.name)
        if not parts:
            buf.skip(m.size)
            return
        name = "/".join(parts)
        # Nothing may be stored "through" a symlink the archive made (dockerd's extraction
        # refuses to write through one as well).
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in self.symlinks:
                raise LayerError(f"invalid tar entry {m.name!r}: path goes through symlink {'/'.join(parts[:i])}")
        self.files.pop(name, None)
        self.symlinks.pop(name, None)
        if m.type == tarfile.DIRTYPE:
            self.dirs.add(name)
        elif m.type == tarfile.SYMTYPE:
            self.symlinks[name] = m.linkname
        elif m.type == tarfile.LNKTYPE:
            target = "/".join(clean_parts(m.linkname))
            if target not in self.files:
                raise LayerError(f"invalid hardlink {m.name!r} -> {m.linkname!r}: target does not exist")
            self.files[name] = self.files[target]
        elif m.isreg():
            if m.size <= _SMALL and self._in_memory + m.size <= _MEMORY_BUDGET:
                data = read_all(m, buf)
                self._in_memory += len(data)
                self.files[name] = data
                return
            self.files[name] = self._spill(buf, m.size)
            return
        # devices, fifos: not part of any image archive; ignored like dockerd's loader ignores them
        buf.skip(m.size)

    def _spill(self, buf: Any, size: int) -> _Spilled:
        import hashlib
        self._spills += 1
        path = self.workdir / f"member-{self._spills}"
        h = hashlib.sha256()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)

        def out(chunk: bytes) -> None:
            h.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        try:
            buf.copy(size, out)
        finally:
            os.close(fd)
        return _Spilled(path, "sha256:" + h.hexdigest(), size)

    # -- lookups --------------------------------------------------------------
    def resolve(self, rel: str) -> str:
        """The member a path names, following the archive's own symlinks (never outside it)."""
        try:
            parts = clean_parts(rel)
        except LayerError:
            raise InvalidParameter(f"invalid path {rel!r} in archive") from None
        hops = 0
        i = 0
        while i < len(parts):
            prefix = "/".join(parts[:i + 1])
            target = self.symlinks.get(prefix)
            if target is None:
                i += 1
                continue
            hops += 1
            if hops > _MAX_LINKS or target.startswith("/"):
                raise InvalidParameter(f"invalid path {rel!r} in archive: outside of the archive")
            base = parts[:i]
            for comp in target.split("/"):
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if not base:
                        raise InvalidParameter(f"invalid path {rel!r} in archive: outside of the archive")
                    base = base[:-1]
                else:
                    base.append(comp)
            parts = base + parts[i + 1:]
            i = 0
        return "/".join(parts)

    def get(self, rel: str) -> bytes | _Spilled | None:
        return self.files.get(self.resolve(rel))

    def read_bytes(self, rel: str) -> bytes:
        item = self.get(rel)
        if item is None:
            raise InvalidParameter(f"invalid archive: {rel} not found")
        if isinstance(item, _Spilled):
            return item.path.read_bytes()
        return item

    def json(self, rel: str) -> Any:
        data = self.read_bytes(rel)
        try:
            return gojson.loads(data)
        except ValueError as err:
            raise InvalidParameter(f"invalid archive: {rel}: {err}") from None

    def has(self, rel: str) -> bool:
        try:
            return self.get(rel) is not None
        except InvalidParameter:
            return False


_CHUNK = 1 << 20


def _read_exactly(src: BinaryIO, size: int, name: str) -> bytes:
    data = src.read(size)
    if len(data) != size:
        raise LayerError(f"unexpected EOF in {name!r}")
    return data


def _blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def _verified_blob(archive: _Archive, digest: str) -> Any:
    """A JSON blob of an OCI layout, checked against its digest."""
    import hashlib
    data = archive.read_bytes(_blob_path(digest))
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise InvalidParameter(f"invalid archive: blob {digest} does not match its digest")
    try:
        return gojson.loads(data)
    except ValueError as err:
        raise InvalidParameter(f"invalid archive: blob {digest}: {err}") from None


def _oci_entries(archive: _Archive) -> list[dict[str, Any]]:
    """docker-archive style entries from an OCI layout's index.json."""
    from .store import host_platform
    _, arch, _ = host_platform()
    index = archive.json("index.json")
    entries: list[dict[str, Any]] = []

    def visit(desc: dict[str, Any], names: list[str], depth: int = 0) -> None:
        if depth > 4:
            raise InvalidParameter("invalid archive: index nesting too deep")
        doc = _verified_blob(archive, str(desc.get("digest", "")))
        media = desc.get("mediaType", "") or doc.get("mediaType", "")
        if media in (MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST_LIST) or "manifests" in doc:
            candidates = doc.get("manifests") or []
            chosen = [m for m in candidates if (m.get("platform") or {}).get("os", "linux") == "linux"
                      and (m.get("platform") or {}).get("architecture", arch) == arch]
            if not chosen:
                raise InvalidParameter("no matching manifest for linux/" + arch + " in the manifest list entries")
            visit(chosen[0], names, depth + 1)
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
        previous = store._add_ref(ref, image_id, touch=False)
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
