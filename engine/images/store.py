"""The image store: images, their tags, and their layers.

- An image is its config JSON; its ID is ``sha256:`` + the hash of those exact
  bytes, which are kept in the content store.
- A layer is an uncompressed tar, kept in the content store under its diff ID
  (so ``save`` reproduces it byte for byte), and unpacked once per chain ID
  into a committed snapshot named after the chain ID.
- Tags and digests ("references") map full names to image IDs.

All methods block (disk, tar, SQLite); the engine calls them in threads.
Metadata changes run in SQLite transactions; blobs and snapshots are written
before the rows that point at them, so a crash leaves unreferenced data that
the constructor removes, never rows that point at nothing.
"""
from __future__ import annotations

import builtins
import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from .. import gojson, timeutil
from ..content.store import ContentStore
from ..errors import EngineError, InvalidParameter, NotFound
from ..state.db import Database
from . import reference as refs
from .gc import collect_garbage, recover
from .layer_index import LayerIndex
from .model import DOCKER_VERSION as DOCKER_VERSION
from .model import Image as Image
from .model import Layer as Layer
from .model import chain_ids as chain_ids
from .model import dumps_go as dumps_go
from .model import host_platform as host_platform
from .model import valid_parent
from .reference import Reference
from .tags import ReferenceIndex

log = logging.getLogger(__name__)

_MIGRATIONS = [
    """
    CREATE TABLE image_layers (
        chain_id TEXT PRIMARY KEY,
        diff_id TEXT NOT NULL,
        parent TEXT,
        size INTEGER NOT NULL
    );
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        parent TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL,
        chain_ids TEXT NOT NULL,
        last_tag_time TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE image_refs (
        name TEXT PRIMARY KEY,
        image_id TEXT NOT NULL
    );
    CREATE INDEX image_refs_by_image ON image_refs(image_id);
    """,
]



class ImageStore(LayerIndex, ReferenceIndex):
    def __init__(self, db: Database, content: ContentStore, snapshotter: Any, tmp: Path) -> None:
        self.db = db
        self.content = content
        self.snapshotter = snapshotter
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._configs: dict[str, dict[str, Any]] = {}
        # Layers registered by this process that no image has used yet (an ingest under way):
        # the garbage collector of `image prune` leaves them alone.
        self._fresh: set[str] = set()
        db.migrate("images", _MIGRATIONS)
        recover(self)

    def collect_garbage(self, container_keys: Iterable[str] | None = None) -> int:
        """Remove layers no image uses (see gc.collect_garbage); returns the bytes freed."""
        with self._lock:
            return collect_garbage(self, container_keys)

    def in_flight_layers(self) -> set[str]:
        """Layers registered by this process that no image uses yet (an ingest under way)."""
        with self._lock:
            return set(self._fresh)

    # ================================================================ reading
    def _config(self, image_id: str) -> dict[str, Any]:
        cfg = self._configs.get(image_id)
        if cfg is None:
            data = self.content.read_bytes(image_id)
            # The image ID is the config's digest: check it before trusting the bytes.
            if "sha256:" + hashlib.sha256(data).hexdigest() != image_id:
                raise EngineError(f"image config {image_id} is corrupted in the store")
            cfg = gojson.loads(data)
            self._configs[image_id] = cfg
        return cfg

    def _build(self, row: sqlite3.Row, names: list[str], layers: dict[str, Layer]) -> Image:
        image_id = row["id"]
        cfg = self._config(image_id)
        chains = tuple(json.loads(row["chain_ids"]))
        sizes = tuple(layers[c].size if c in layers else 0 for c in chains)
        tags: builtins.list[str] = []
        digests: builtins.list[str] = []
        for n in sorted(names):
            r = refs.parse(n)
            (digests if r.digest else tags).append(r.familiar())
        rootfs = cfg.get("rootfs") or {}
        return Image(
            id=image_id, repo_tags=tuple(tags), repo_digests=tuple(digests),
            created=cfg.get("created") or row["created"] or timeutil.ZERO_TIME,
            config=cfg, history=tuple(cfg.get("history") or ()),
            diff_ids=tuple(rootfs.get("diff_ids") or ()), chain_ids=chains, layer_sizes=sizes,
            size=sum(sizes), top_chain_id=chains[-1] if chains else None,
            os=cfg.get("os", "") or "", architecture=cfg.get("architecture", "") or "",
            variant=cfg.get("variant", "") or "", author=cfg.get("author", "") or "",
            comment=cfg.get("comment", "") or "", docker_version=cfg.get("docker_version", "") or "",
            parent=row["parent"] or "", last_tag_time=row["last_tag_time"] or "",
        )

    def _image_by_id(self, image_id: str) -> Image | None:
        rows = self.db.query_sync("SELECT * FROM images WHERE id = ?", (image_id,))
        if not rows:
            return None
        names = [r["name"] for r in self.db.query_sync("SELECT name FROM image_refs WHERE image_id = ?", (image_id,))]
        return self._build(rows[0], names, self.layers())

    def list(self) -> list[Image]:
        rows = self.db.query_sync("SELECT * FROM images")
        by_image: dict[str, list[str]] = {}
        for r in self.db.query_sync("SELECT name, image_id FROM image_refs"):
            by_image.setdefault(r["image_id"], []).append(r["name"])
        layers = self.layers()
        return [self._build(r, by_image.get(r["id"], []), layers) for r in rows]

    def _resolve(self, ref_or_id: str) -> tuple[str | None, Reference | None]:
        """(image ID or None, the parsed reference if the input was a name)."""
        if refs.is_full_id(ref_or_id):
            full = ref_or_id if ref_or_id.startswith("sha256:") else "sha256:" + ref_or_id
            rows = self.db.query_sync("SELECT id FROM images WHERE id = ?", (full,))
            return (rows[0]["id"] if rows else None), None
        ref = refs.parse_normalized(ref_or_id)
        rows = self.db.query_sync("SELECT image_id FROM image_refs WHERE name = ?", (str(ref.with_default_tag()),))
        if rows:
            return rows[0]["image_id"], ref
        if refs.is_id_prefix(ref_or_id):
            hexpart = ref_or_id[len("sha256:"):] if ref_or_id.startswith("sha256:") else ref_or_id
            rows = self.db.query_sync("SELECT id FROM images WHERE id LIKE ?", ("sha256:" + hexpart + "%",))
            if len(rows) == 1:
                return rows[0]["id"], ref
        return None, ref

    def _not_found(self, ref_or_id: str, ref: Reference | None) -> NotFound:
        if ref is None:
            hexpart = ref_or_id[len("sha256:"):] if ref_or_id.startswith("sha256:") else ref_or_id
            return NotFound(f"No such image: sha256:{hexpart}")
        return NotFound(f"No such image: {ref.with_default_tag().familiar()}")

    def get(self, ref_or_id: str) -> Image:
        """By name (``busybox``, ``docker.io/library/busybox:latest``, ``x@sha256:..``),
        full ID (with or without ``sha256:``) or a unique ID prefix."""
        image_id, ref = self._resolve(ref_or_id)
        image = self._image_by_id(image_id) if image_id else None
        if image is None:
            raise self._not_found(ref_or_id, ref)
        return image

    def exists(self, ref_or_id: str) -> bool:
        try:
            return self._resolve(ref_or_id)[0] is not None
        except InvalidParameter:
            return False

    def children(self, image_id: str) -> builtins.list[str]:
        return [r["id"] for r in self.db.query_sync("SELECT id FROM images WHERE parent = ?", (image_id,))]

    def child_configs(self, image_id: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        """(ID, config JSON) of the images whose parent is ``image_id`` ("" for none): the build
        cache's one query per step, without building whole records."""
        out = []
        for r in self.db.query_sync("SELECT id FROM images WHERE parent = ?", (image_id,)):
            try:
                out.append((r["id"], self._config(r["id"])))
            except NotFound:
                continue   # deleted meanwhile
        return out

    # ================================================================ images
    def create_image(self, config_bytes: bytes, *, parent: str = "") -> str:
        """Register an image whose layers are already registered; returns its ID."""
        try:
            cfg = gojson.loads(config_bytes)
        except ValueError as err:
            raise InvalidParameter(f"invalid image config: {err}") from None
        diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
        history = cfg.get("history") or []
        if sum(1 for h in history if isinstance(h, dict) and not h.get("empty_layer")) > len(diff_ids):
            raise EngineError("too many non-empty layers in History section")  # dockerd's image store check
        chains = chain_ids(diff_ids)
        for c in chains:
            if not self._layer_exists(c):
                raise InvalidParameter(f"image config references a layer that is not present: {c}")
        desc = self.content.ingest(config_bytes)
        image_id = desc.digest

        def _insert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR IGNORE INTO images(id, parent, created, chain_ids) VALUES(?, ?, ?, ?)",
                         (image_id, parent, cfg.get("created") or "", json.dumps(chains)))
        with self._lock:
            self.db.transaction_sync(_insert)
            self._fresh.difference_update(chains)   # used by an image now
        return image_id

    def set_parent(self, image_id: str, parent_id: str) -> None:
        """Record ``parent_id`` as the parent of ``image_id`` (load of a saved build chain)."""
        image, parent = self.get(image_id), self.get(parent_id)
        if not valid_parent(image, parent):
            raise EngineError(f"image {parent.id} is not a valid parent for {image.id}")

        def _set(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE images SET parent = ? WHERE id = ?", (parent.id, image.id))
        with self._lock:
            self.db.transaction_sync(_set)

    # ================================================================ import
    def import_tar(self, fileobj: BinaryIO, *, repo_tag: str | None = None, changes: Iterable[str] = (),
                   message: str = "", platform: str | None = None, source: str = "-") -> str:
        """``docker import``: one layer from a (maybe compressed) rootfs tar."""
        from .importer import import_tar
        return import_tar(self, fileobj, repo_tag=repo_tag, changes=changes, message=message,
                          platform=platform, source=source)

    # ================================================================ load / save
    def load(self, fileobj: BinaryIO, progress: Callable[[dict[str, Any]], None] | None = None,
             quiet: bool = False) -> builtins.list[str]:
        """``docker load``; returns the loaded names (familiar tags, or IDs when untagged)."""
        from .archive import load_archive
        return load_archive(self, fileobj, progress or (lambda m: None), quiet)

    def images_to_save(self, names: builtins.list[str]) -> builtins.list[str]:
        """The image IDs ``save(names)`` writes (raises NotFound like it)."""
        from .archive_save import select_images
        return list(select_images(self, names))

    def save(self, names: builtins.list[str], fileobj: BinaryIO) -> None:
        """``docker save``: docker-archive with OCI layout files."""
        from .archive_save import save_archive
        save_archive(self, names, fileobj)

    # ================================================================ delete
    def remove(self, name: str, *, force: bool = False, noprune: bool = False,
               users: Callable[[str], builtins.list[tuple[str, bool]]] | None = None) -> builtins.list[dict[str, str]]:
        """``docker rmi``: dockerd's untag-or-delete rules and conflict messages."""
        from .remove import remove_image
        with self._lock:
            return remove_image(self, name, force=force, prune=not noprune, users=users or (lambda _i: []))

    def _delete_image(self, image_id: str) -> builtins.list[str]:
        """Forget the image and release its layers; returns removed layer chain IDs."""
        image = self._image_by_id(image_id)
        if image is None:
            return []

        def _del(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM image_refs WHERE image_id = ?", (image_id,))
            conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
        self.db.transaction_sync(_del)
        self._configs.pop(image_id, None)
        if not self._config_in_use(image_id):
            self.content.delete(image_id)
        return self._release_layers(list(image.chain_ids))

    def _config_in_use(self, digest: str) -> bool:
        return bool(self.db.query_sync("SELECT 1 FROM images WHERE id = ?", (digest,)))

    # ================================================================ filters
    def filter_predicate(self, flt: dict[str, builtins.list[str]]) -> Callable[[Image], bool]:
        """``GET /images/json?filters=``: dangling, label, before, since, reference."""
        from .filters import build_predicate
        return build_predicate(self, flt)

    def list_filtered(self, flt: dict[str, builtins.list[str]], *, all_: bool = False, shared_size: bool = False,
                      containers: Callable[[str], int] | None = None) -> builtins.list[Any]:
        """``GET /images/json``: filtered rows with the names each is listed under."""
        from .filters import list_images
        return list_images(self, flt, all_=all_, shared_size=shared_size, containers=containers)

    def prune(self, flt: dict[str, builtins.list[str]], users: Callable[[str], builtins.list[tuple[str, bool]]]) -> Any:
        """``POST /images/prune``; returns a PruneReport.  Layers no image uses any more (an
        ingest that failed half-way) are collected too."""
        from .prune import prune_images
        with self._lock:
            report = prune_images(self, flt, users)
            self.collect_garbage()
            return report

