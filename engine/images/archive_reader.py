"""Reading a ``docker load`` tar: its members in one pass, and the OCI layout's index.

The archive's names are never used as paths: regular files are kept by their
cleaned name (in memory, or spilled to the load's scratch directory), links
as aliases resolved inside the archive only.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

from .. import gojson
from ..errors import InvalidParameter
from .layer_streams import LayerError, clean_parts

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"



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
        from .layer_streams import decompressed
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


