"""``docker pull``: manifest (list) -> config -> layers (3 at a time) -> image + tag.

Every blob is hashed while it streams to a private ingest file and is used
only after its digest matched; a layer is then unpacked with the image
store's ``register_layer`` (which checks the diff ID).  Nothing unverified is
ever registered, and an interrupted pull leaves only ``ingest-*`` files that
the content store removes at start-up.
"""
from __future__ import annotations

import hashlib
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from .. import gojson
from ..errors import EngineError, InvalidParameter, NotFound
from ..images import reference as refs
from ..images.progress import ProgressReader
from ..images.reference import Reference
from ..images.store import ImageStore, chain_ids, host_platform
from . import client as C
from .auth import AuthConfig
from .client import RegistryClient, RegistryConfig, RegistryError, RegistryUnauthorized
from .metadata import BlobMetadata, BlobSource
from .progress import Emit, Meter, message, status

MAX_CONCURRENT_DOWNLOADS = 3
_MANIFEST_MAX = 4 << 20
_INGEST_PREFIX = "ingest-pull-"
_SPOOL_IN_MEMORY = 64 << 20


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_platform(text: str) -> Platform | None:
    if not text:
        return None
    parts = text.lower().split("/")
    if len(parts) > 3:
        raise InvalidParameter(f'"{text}": cannot parse platform specifier: invalid argument')
    if not all(parts):
        raise InvalidParameter(f'"{text}": unknown operating system or architecture: invalid argument')
    if len(parts) == 1:
        _os, arch, var = host_platform()
        return Platform(parts[0], arch, var) if parts[0] == "linux" else Platform(parts[0], arch)
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(parts[1], parts[1])
    return Platform(parts[0], arch, parts[2] if len(parts) == 3 else "")


def default_platform() -> Platform:
    return Platform(*host_platform())


class NotFoundError(RegistryError, NotFound):
    pass


def translate_pull_error(err: Exception, ref: Reference) -> Exception:
    """dockerd's translatePullError: unknown manifest / repository -> 404 with its words."""
    if isinstance(err, RegistryError) and err.code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN", "DENIED"):
        if err.code == "MANIFEST_UNKNOWN":
            return NotFoundError(f"manifest for {ref.familiar()} not found: {err.message}", 404, err.code)
        return NotFoundError(f"pull access denied for {ref.familiar_name()}, repository does not exist or "
                             f"may require 'docker login': {err.message}", 404, err.code)
    if isinstance(err, RegistryUnauthorized):
        return RegistryError(err.message, 401, err.code)  # dockerd: an unknown error (500), not a 401
    return err


def fetch_manifest(cli: RegistryClient, repo: str, ref_or_digest: str, scopes: tuple[str, ...]
                   ) -> tuple[bytes, str, str]:
    """(body, media type, digest) of a manifest; a digest reference is verified."""
    # dockerd asks for a tag with HEAD first; its errors name that request.
    resp = cli.request("GET", f"/v2/{repo}/manifests/{ref_or_digest}", scopes,
                       headers={"Accept": C.MANIFEST_ACCEPT},
                       shown_verb="Get" if ref_or_digest.startswith("sha256:") else "Head")
    cli.check(resp)
    body = resp.content
    if len(body) > _MANIFEST_MAX:
        raise EngineError(f"manifest too big: {len(body)} bytes")
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if ref_or_digest.startswith("sha256:") and actual != ref_or_digest:
        raise EngineError(f"manifest verification failed for digest {ref_or_digest}")
    media = resp.headers.get("Content-Type", "").split(";")[0].strip()
    try:
        doc = gojson.loads(body)
    except ValueError:
        raise EngineError("failed to parse manifest: invalid JSON") from None
    media = doc.get("mediaType") or media
    if media not in (C.MEDIA_DOCKER_MANIFEST, C.MEDIA_OCI_MANIFEST, C.MEDIA_DOCKER_LIST, C.MEDIA_OCI_INDEX):
        if doc.get("schemaVersion") == 2 and "manifests" in doc:
            media = C.MEDIA_OCI_INDEX
        elif doc.get("schemaVersion") == 2 and "layers" in doc:
            media = C.MEDIA_OCI_MANIFEST
        elif doc.get("schemaVersion") == 1:
            raise InvalidParameter(
                "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 "
                "support has been removed. Suggest the author of "
                "this image to push it with a newer Docker version")
        else:
            raise EngineError(f"unsupported manifest media type and no default available: {media}")
    return body, media, actual


def select_platform(entries: list[dict[str, Any]], want: Platform) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for e in entries:
        p = e.get("platform") or {}
        if p.get("os") != want.os or p.get("architecture") != want.architecture:
            continue
        variant = p.get("variant") or ""
        if want.variant and variant and variant != want.variant:
            continue
        if want.variant and variant == want.variant:
            return e
        if best is None:
            best = e
    return best


@dataclass
class _Download:
    index: int
    digest: str
    size: int
    media_type: str
    short: str
    cancelled: bool = False


class Puller:
    def __init__(self, images: ImageStore, metadata: BlobMetadata, config: RegistryConfig) -> None:
        self.images = images
        self.metadata = metadata
        self.config = config

    def _spool(self) -> IO[bytes]:
        # Small blobs stay in memory; bigger ones go to an already-unlinked file under the data
        # root's scratch dir, so that nothing is left behind whatever happens to the process.
        return tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY, dir=str(self.images.content.tmp),
                                             prefix=_INGEST_PREFIX)

    def _download(self, cli: RegistryClient, repo: str, scopes: tuple[str, ...], d: _Download,
                  emit: Emit) -> IO[bytes]:
        f = self._spool()
        h = hashlib.sha256()
        meter: Meter | None = None
        try:
            for total, chunk in cli.iter_blob(repo, d.digest, scopes):
                if d.cancelled:
                    raise EngineError("context canceled")
                if meter is None:
                    meter = Meter(emit, d.short, "Downloading", d.size or total)
                f.write(chunk)
                h.update(chunk)
                meter.add(len(chunk))
            status(emit, d.short, "Verifying Checksum")
            if "sha256:" + h.hexdigest() != d.digest:
                raise EngineError(f"filesystem layer verification failed for digest {d.digest}")
            status(emit, d.short, "Download complete")
            f.seek(0)
            return f
        except BaseException:
            f.close()
            raise

    def _fetch_small_blob(self, cli: RegistryClient, repo: str, scopes: tuple[str, ...], digest: str) -> bytes:
        data = b"".join(chunk for _, chunk in cli.iter_blob(repo, digest, scopes))
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise EngineError(f"image config verification failed for digest {digest}")
        return data

    def pull(self, ref: Reference, auth: AuthConfig, emit: Emit, platform: Platform | None = None) -> str:
        """Pull one tag or digest; returns the familiar reference pulled."""
        want = platform or default_platform()
        repo = ref.path
        scopes = C.pull_scope(repo)
        target = ref.digest or ref.tag or refs.DEFAULT_TAG
        with RegistryClient(ref.domain, auth, self.config) as cli:
            try:
                body, media, digest = fetch_manifest(cli, repo, target, scopes)
            except Exception as err:  # noqa: BLE001 - translate_pull_error gives every failure dockerd's words
                raise translate_pull_error(err, ref) from None
            message(emit, target, f"Pulling from {ref.path}")
            doc = gojson.loads(body)
            if media in (C.MEDIA_DOCKER_LIST, C.MEDIA_OCI_INDEX):
                # Like dockerd, a list without our platform is reported inside the stream.
                entry = select_platform(doc.get("manifests") or [], want)
                if entry is None:
                    raise NotFoundError(f"no matching manifest for {want} in the manifest list entries", 404, "")
                body, media, _ = fetch_manifest(cli, repo, entry["digest"], scopes)
                doc = gojson.loads(body)
            image_id = self._pull_manifest(cli, ref, repo, scopes, doc, emit)
        return self._finish(ref, image_id, digest, emit)

    def _pull_manifest(self, cli: RegistryClient, ref: Reference, repo: str, scopes: tuple[str, ...],
                       doc: dict[str, Any], emit: Emit) -> str:
        config_desc = doc.get("config") or {}
        layers = [l for l in (doc.get("layers") or []) if not l.get("urls")]
        store = self.images
        config_digest = str(config_desc.get("digest") or "")
        if store.exists(config_digest):
            # dockerd: the image is already here, nothing to download.
            return config_digest
        config_bytes = self._fetch_small_blob(cli, repo, scopes, config_digest)
        cfg = gojson.loads(config_bytes)
        diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(layers):
            raise EngineError("layers from manifest don't match image configuration")
        chains = chain_ids(diff_ids)
        downloads: list[_Download | None] = []
        for i, l in enumerate(layers):
            short = refs.truncate_id(str(l.get("digest") or ""))
            if store._layer_exists(chains[i]):  # noqa: SLF001 - the store's own existence check
                status(emit, short, "Already exists")
                downloads.append(None)
                continue
            downloads.append(_Download(i, str(l["digest"]), int(l.get("size") or 0),
                                       str(l.get("mediaType") or ""), short))
        todo = [d for d in downloads if d is not None]
        for d in todo:
            status(emit, d.short, "Pulling fs layer")
        for d in todo[MAX_CONCURRENT_DOWNLOADS:]:
            status(emit, d.short, "Waiting")
        pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_DOWNLOADS)
        futures: dict[int, Future[IO[bytes]]] = {d.index: pool.submit(self._download, cli, repo, scopes, d, emit)
                                            for d in todo}
        try:
            parent: str | None = None
            for i, entry in enumerate(downloads):
                if entry is None:
                    parent = chains[i]
                    continue
                d = entry
                blob = futures[i].result()
                try:
                    reader = ProgressReader(blob, d.size, d.short, "Extracting", emit)  # type: ignore[arg-type]  # a spooled file is a binary reader
                    layer = store.register_layer(reader, parent, expected_diff_id=diff_ids[i])  # type: ignore[arg-type]  # ProgressReader reads like BinaryIO
                    reader.finish()
                finally:
                    blob.close()
                parent = layer.chain_id
                self.metadata.add(BlobSource(diff_ids[i], d.digest, d.media_type, d.size, ref.domain, repo))
                status(emit, d.short, "Pull complete")
        except BaseException:
            for d in todo:
                d.cancelled = True
            for f in futures.values():
                f.cancel()
            pool.shutdown(wait=True)
            for f in futures.values():
                if f.done() and not f.cancelled() and f.exception() is None:
                    f.result().close()
            raise
        pool.shutdown(wait=True)
        return store.create_image(config_bytes)

    def _finish(self, ref: Reference, image_id: str, manifest_digest: str, emit: Emit) -> str:
        store = self.images
        updated = False
        if ref.tag is not None or ref.digest is None:
            tagged = ref if ref.tag is not None else ref.with_default_tag()
            tagged = Reference(tagged.domain, tagged.path, tagged.tag, None)
            previous = store._add_ref(tagged, image_id)  # noqa: SLF001
            updated = previous != image_id
        by_digest = Reference(ref.domain, ref.path, None, manifest_digest)
        previous = store._add_ref(by_digest, image_id)  # noqa: SLF001
        if ref.tag is None and ref.digest is not None:
            updated = previous != image_id
        message(emit, "", f"Digest: {manifest_digest}")
        shown = ref.familiar() if (ref.tag or ref.digest) else ref.with_default_tag().familiar()
        if updated:
            message(emit, "", f"Status: Downloaded newer image for {shown}")
        else:
            message(emit, "", f"Status: Image is up to date for {shown}")
        return shown

