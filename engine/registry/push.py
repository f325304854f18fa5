"""``docker push``: layers (5 at a time), config, manifest, for one tag or every tag of a repository.

A layer is stored locally as its uncompressed tar; pushing gzips it on the fly
(PATCH with a streamed body, then PUT ``?digest=``), hashing what is sent.
Blobs the registry already has are skipped ("Layer already exists") and blobs
known in a sibling repository are mounted ("Mounted from"), using the record
of where each layer came from (``metadata``).
"""
from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import NotFound
from ..images import reference as refs
from ..images.reference import Reference
from ..images.store import Image, ImageStore
from . import client as C
from . import distribution
from .auth import AuthConfig
from .client import RegistryClient, RegistryConfig, RegistryUnauthorized
from .metadata import BlobMetadata, BlobSource
from .progress import Emit, Meter, message, status

MAX_CONCURRENT_UPLOADS = 5
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PushedBlob:
    digest: str
    size: int
    media_type: str


_location = distribution.upload_location
_with_digest = distribution.with_digest


class Pusher:
    def __init__(self, images: ImageStore, metadata: BlobMetadata, config: RegistryConfig) -> None:
        self.images = images
        self.metadata = metadata
        self.config = config

    # -- blobs ------------------------------------------------------------------------
    def _blob_exists(self, cli: RegistryClient, repo: str, digest: str, scopes: tuple[str, ...]) -> int | None:
        return distribution.blob_size(cli, repo, digest, scopes)

    def _try_mount(self, cli: RegistryClient, repo: str, src: BlobSource) -> bool:
        return distribution.try_mount(cli, repo, src.digest, src.repository)

    def upload_bytes(self, cli: RegistryClient, repo: str, data: bytes, scopes: tuple[str, ...]) -> str:
        """Monolithic upload: POST, then PUT ?digest= with the whole body."""
        return distribution.upload_bytes(cli, repo, data, scopes)

    def _upload_layer(self, cli: RegistryClient, repo: str, diff_id: str, short: str, total: int,
                      scopes: tuple[str, ...], emit: Emit) -> PushedBlob:
        """Chunked upload of the gzipped layer: POST, PATCH (streamed), PUT ?digest=."""
        resp = cli.check(cli.request("POST", f"/v2/{repo}/blobs/uploads/", scopes))
        loc = _location(cli, resp.headers.get("Location"))
        h = hashlib.sha256()
        size = 0
        meter = Meter(emit, short, "Pushing", total)

        def body() -> Iterator[bytes]:
            nonlocal size
            comp = zlib.compressobj(6, zlib.DEFLATED, 31)
            with self.images.layer_tar(diff_id) as f:
                while True:
                    chunk = f.read(_CHUNK)
                    if not chunk:
                        break
                    meter.add(len(chunk))
                    out = comp.compress(chunk)
                    if out:
                        h.update(out)
                        size += len(out)
                        yield out
            out = comp.flush()
            h.update(out)
            size += len(out)
            yield out

        resp = cli.check(cli.request("PATCH", loc, scopes, content=body(),
                                     headers={"Content-Type": "application/octet-stream"}))
        loc = _location(cli, resp.headers.get("Location") or loc)
        digest = "sha256:" + h.hexdigest()
        cli.check(cli.request("PUT", _with_digest(loc, digest), scopes))
        return PushedBlob(digest, size, C.MEDIA_DOCKER_LAYER)

    def _push_layer(self, cli: RegistryClient, ref: Reference, diff_id: str, emit: Emit,
                    layer_size: int = 0) -> PushedBlob:
        repo = ref.path
        scopes = C.push_scope(repo)
        short = refs.truncate_id(diff_id)
        sources = [s for s in self.metadata.sources(diff_id) if s.registry == ref.domain]
        # Known in this repository: the registry may still have it.
        for src in sources:
            if src.repository == repo:
                size = self._blob_exists(cli, repo, src.digest, scopes)
                if size is not None:
                    status(emit, short, "Layer already exists")
                    return PushedBlob(src.digest, src.size or size, src.media_type)
        for src in sources:
            if src.repository != repo and self._try_mount(cli, repo, src):
                status(emit, short, f"Mounted from {src.repository}")
                self.metadata.add(BlobSource(diff_id, src.digest, src.media_type, src.size, ref.domain, repo))
                return PushedBlob(src.digest, src.size, src.media_type)
        # dockerd's total is the layer's size as the image reports it (its content), not the tar's.
        total = layer_size or self.images.content.info(diff_id).size
        blob = self._upload_layer(cli, repo, diff_id, short, total, scopes, emit)
        self.metadata.add(BlobSource(diff_id, blob.digest, blob.media_type, blob.size, ref.domain, repo))
        status(emit, short, "Pushed")
        return blob

    # -- images -----------------------------------------------------------------------
    def push_tag(self, cli: RegistryClient, ref: Reference, image: Image, emit: Emit) -> tuple[str, int]:
        diff_ids = list(image.diff_ids)
        shorts = [refs.truncate_id(d) for d in diff_ids]
        # dockerd lists layers top down.
        order = list(reversed(range(len(diff_ids))))
        for i in order:
            status(emit, shorts[i], "Preparing")
        for i in order[MAX_CONCURRENT_UPLOADS:]:
            status(emit, shorts[i], "Waiting")
        blobs: list[PushedBlob | None] = [None] * len(diff_ids)
        with ThreadPoolExecutor(max_workers=MAX_CONCURRENT_UPLOADS) as pool:
            sizes = list(image.layer_sizes) + [0] * len(diff_ids)
            futures = {i: pool.submit(self._push_layer, cli, ref, diff_ids[i], emit, sizes[i]) for i in order}
            for i in order:
                blobs[i] = futures[i].result()
        scopes = C.push_scope(ref.path)
        config_bytes = self.images.content.read_bytes(image.id)
        config_digest = self.upload_bytes(cli, ref.path, config_bytes, scopes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": C.MEDIA_DOCKER_MANIFEST,
            "config": {"mediaType": C.MEDIA_DOCKER_CONFIG, "size": len(config_bytes), "digest": config_digest},
            "layers": [{"mediaType": b.media_type, "size": b.size, "digest": b.digest}
                       for b in blobs if b is not None],
        }
        body = json.dumps(manifest, indent=3).encode()
        tag = ref.tag or refs.DEFAULT_TAG
        resp = cli.check(cli.request("PUT", f"/v2/{ref.path}/manifests/{tag}", scopes, content=body,
                                     headers={"Content-Type": C.MEDIA_DOCKER_MANIFEST}))
        digest = resp.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()
        self.images._add_ref(Reference(ref.domain, ref.path, None, digest), image.id)  # noqa: SLF001
        message(emit, "", f"{tag}: digest: {digest} size: {len(body)}")
        emit({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(body)}})
        return digest, len(body)

    def push(self, ref: Reference, auth: AuthConfig, emit: Emit) -> None:
        """Push ``ref`` (one tag) or every tag of its repository."""
        store = self.images
        message(emit, "", f"The push refers to repository [{ref.name}]")
        if ref.tag is not None:
            targets = [(ref, store.get(str(ref)))] if store.exists(str(ref)) else []
        else:
            targets = []
            for image in store.list():
                for t in image.repo_tags:
                    r = refs.parse_normalized(t)
                    if r.name == ref.name and r.tag is not None:
                        targets.append((r, image))
            targets.sort(key=lambda x: x[0].tag or "")
        if not targets:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name()}")
        with RegistryClient(ref.domain, auth, self.config) as cli:
            cli.ping()
            try:
                for r, image in targets:
                    self.push_tag(cli, r, image, emit)
            except RegistryUnauthorized as err:
                # dockerd's push reports a refused token without the request it was for.
                m = re.match(r'^\w+ "[^"]*": (.*)$', err.message, re.S)
                raise RegistryUnauthorized(m.group(1) if m else err.message, 401, err.code) from None
