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
import platform as _platform
import secrets
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .. import gojson, timeutil
from ..content.store import ContentStore
from ..errors import EngineError, InvalidParameter, NotFound
from ..state.db import Database
from . import reference as refs
from .changes import apply_changes, empty_config
from .layer import ApplyResult, apply_file, apply_layer
from .reference import Reference

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

_EXTRACT_PREFIX = "extract-"
# What image configs written here claim as docker_version (the API level pydockerd speaks).
DOCKER_VERSION = "28.0.0"


@dataclass(frozen=True)
class Image:
    id: str                              # "sha256:<hex>"
    repo_tags: tuple[str, ...]           # familiar: "busybox:latest"
    repo_digests: tuple[str, ...]        # familiar: "busybox@sha256:..."
    created: str                         # RFC 3339 from the config
    config: dict[str, Any] = field(compare=False, hash=False)  # the whole image config JSON
    history: tuple[dict[str, Any], ...] = field(compare=False, hash=False)
    diff_ids: tuple[str, ...] = ()
    chain_ids: tuple[str, ...] = ()
    layer_sizes: tuple[int, ...] = ()
    size: int = 0
    top_chain_id: str | None = None      # snapshot parent for containers
    os: str = ""
    architecture: str = ""
    variant: str = ""
    author: str = ""
    comment: str = ""
    docker_version: str = ""
    parent: str = ""                     # image ID of the parent (builds and commits only)
    last_tag_time: str = ""

    @property
    def short_id(self) -> str:
        return refs.truncate_id(self.id)

    @property
    def container_config(self) -> dict[str, Any]:
        """The config part a container starts from (Cmd, Env, ...)."""
        return dict(self.config.get("config") or {})


@dataclass(frozen=True)
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None
    size: int


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """OCI image spec: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def _valid_parent(image: Image, parent: Image) -> bool:
    """dockerd's rule: the parent's history and layers are a prefix of the child's."""
    if not image.history and not parent.history:
        return True  # history is optional
    if len(parent.history) >= len(image.history) or len(parent.diff_ids) > len(image.diff_ids):
        return False
    return (list(parent.history) == list(image.history[:len(parent.history)])
            and list(parent.diff_ids) == list(image.diff_ids[:len(parent.diff_ids)]))


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) in Go's names."""
    machine = _platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386",
            "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)
    variant = {"armv7l": "v7", "armv6l": "v6"}.get(machine, "")
    return "linux", arch, variant


def dumps_go(obj: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, with <, > and & escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


class ImageStore:
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
        self._recover()

    # ================================================================ recovery
    def _recover(self) -> None:
        # Scratch directories of loads a crash interrupted (nothing runs yet at startup).
        for leftover in self.tmp.glob("load-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        layer_rows = {r["chain_id"] for r in self.db.query_sync("SELECT chain_id FROM image_layers")}
        # Half-unpacked layers of an interrupted import/load.
        for info in self.snapshotter.list():
            if info.key.startswith(_EXTRACT_PREFIX) and not self.snapshotter.children(info.key):
                self.snapshotter.remove(info.key)
        # Committed layers whose row was never written: unpack again when needed.
        for info in sorted(self.snapshotter.list(), key=lambda i: -i.id):
            if (info.key.startswith("sha256:") and info.kind == "committed" and info.key not in layer_rows
                    and not self.snapshotter.children(info.key)):
                self.snapshotter.remove(info.key)
        # Layer rows whose snapshot vanished cannot be used; forget them.
        lost = [c for c in layer_rows if not self.snapshotter.exists(c)]
        if lost:
            def _forget(conn: sqlite3.Connection) -> None:
                for c in lost:
                    conn.execute("DELETE FROM image_layers WHERE chain_id = ?", (c,))
            self.db.transaction_sync(_forget)

    # ================================================================ garbage
    def collect_garbage(self, container_keys: Iterable[str] | None = None) -> int:
        """Remove layers no image uses and no snapshot stacks on, as containerd's GC does once
        a lease ended: what a load, pull or import killed half-way left.  Returns the bytes freed.

        With ``container_keys`` (at daemon start, when no ingest runs) it also removes the
        writable snapshots of containers that do not exist and content blobs nothing refers to.
        Without (``image prune`` while the daemon serves) layers registered by an ingest still
        under way in this process are spared: their image is about to be created.
        """
        freed = 0
        with self._lock:
            at_start = container_keys is not None
            if at_start:
                keys = set(container_keys or ())
                for info in self.snapshotter.list():
                    if (info.kind != "committed" and not info.key.startswith(("sha256:", _EXTRACT_PREFIX))
                            and info.key not in keys and not self.snapshotter.children(info.key)):
                        log.info("removing the snapshot of a container that does not exist: %s", info.key[:12])
                        self.snapshotter.remove(info.key)
            used: set[str] = set()
            for r in self.db.query_sync("SELECT chain_ids FROM images"):
                used.update(json.loads(r["chain_ids"]))
            layers = self._layers()
            spared = set() if at_start else set(self._fresh)

            def depth(chain: str) -> int:
                n = 0
                key: str | None = chain
                while key is not None and key in layers and n < 10_000:
                    key = layers[key].parent
                    n += 1
                return n

            orphans = [c for c in layers if c not in used and c not in spared]
            for chain in sorted(orphans, key=depth, reverse=True):   # top layers first
                if self.snapshotter.exists(chain) and self.snapshotter.children(chain):
                    continue  # a container (or a kept layer) still stacks on it
                layer = layers[chain]

                def _del(conn: sqlite3.Connection, chain: str = chain) -> None:
                    conn.execute("DELETE FROM image_layers WHERE chain_id = ?", (chain,))
                self.db.transaction_sync(_del)
                if self.snapshotter.exists(chain):
                    self.snapshotter.remove(chain)
                if not self.db.query_sync("SELECT 1 FROM image_layers WHERE diff_id = ?", (layer.diff_id,)):
                    if self.content.exists(layer.diff_id):
                        freed += self.content.info(layer.diff_id).size
                        self.content.delete(layer.diff_id)
                freed += layer.size
                log.info("removed layer %s, which no image uses", chain[:19])
            if at_start:
                wanted = {r["id"] for r in self.db.query_sync("SELECT id FROM images")}
                wanted.update(r["diff_id"] for r in self.db.query_sync("SELECT diff_id FROM image_layers"))
                for desc in list(self.content.walk()):
                    if desc.digest not in wanted:
                        self.content.delete(desc.digest)
                        freed += desc.size
        return freed

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

    def _layers(self) -> dict[str, Layer]:
        return {r["chain_id"]: Layer(r["chain_id"], r["diff_id"], r["parent"], int(r["size"]))
                for r in self.db.query_sync("SELECT chain_id, diff_id, parent, size FROM image_layers")}

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
        return self._build(rows[0], names, self._layers())

    def list(self) -> list[Image]:
        rows = self.db.query_sync("SELECT * FROM images")
        by_image: dict[str, list[str]] = {}
        for r in self.db.query_sync("SELECT name, image_id FROM image_refs"):
            by_image.setdefault(r["image_id"], []).append(r["name"])
        layers = self._layers()
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

    def layer(self, chain_id: str) -> Layer:
        rows = self.db.query_sync("SELECT * FROM image_layers WHERE chain_id = ?", (chain_id,))
        if not rows:
            raise NotFound(f"layer does not exist: {chain_id}")
        r = rows[0]
        return Layer(r["chain_id"], r["diff_id"], r["parent"], int(r["size"]))

    def children(self, image_id: str) -> builtins.list[str]:
        return [r["id"] for r in self.db.query_sync("SELECT id FROM images WHERE parent = ?", (image_id,))]

    # ================================================================ layers
    def _lowers(self, parent: str | None) -> builtins.list[Path]:
        if parent is None or not hasattr(self.snapshotter, "parent_chain"):
            return []
        return [self.snapshotter.fs_dir(i.key) for i in self.snapshotter.parent_chain(parent)]

    def register_layer(self, stream: BinaryIO, parent: str | None, expected_diff_id: str | None = None,
                       *, verified_file: Path | None = None,
                       progress: Callable[[int], None] | None = None) -> Layer:
        """Unpack a layer tar (any compression) on top of chain ``parent``.

        Stores the uncompressed tar under its diff ID and commits the snapshot
        under its chain ID.  With ``expected_diff_id`` a mismatch is an error.
        ``verified_file``: ``stream`` is this uncompressed tar, open, whose sha256
        the caller computed while writing it and found equal to
        ``expected_diff_id``; it is unpacked without hashing again and moved
        into the content store instead of copied.
        Anything half-made is removed on failure.
        """
        key = f"{_EXTRACT_PREFIX}{secrets.token_hex(8)}"
        self.snapshotter.prepare(key, parent)
        writer = self.content.writer() if verified_file is None else None
        try:
            if writer is None:
                result: ApplyResult = apply_file(stream, self.snapshotter.upper_dir(key),
                                                 self.snapshotter.apply_mode, lowers=self._lowers(parent),
                                                 progress=progress)
            else:
                result = apply_layer(stream, self.snapshotter.upper_dir(key), self.snapshotter.apply_mode,
                                     lowers=self._lowers(parent), sink=writer.write)
            if writer is None:
                assert expected_diff_id is not None
                result = ApplyResult(expected_diff_id, result.size, result.tar_size)
            if expected_diff_id is not None and result.diff_id != expected_diff_id:
                raise InvalidParameter(
                    f"invalid diffID for layer: expected {expected_diff_id!r}, got {result.diff_id!r}")
            if writer is not None:
                writer.commit(result.diff_id)
            else:
                assert verified_file is not None
                self.content.adopt(verified_file, result.diff_id)
            chain = result.diff_id if parent is None else chain_ids([parent, result.diff_id])[-1]
            with self._lock:
                if self.snapshotter.exists(chain):
                    self.snapshotter.remove(key)
                    self._fresh.add(chain)
                    return self.layer(chain)
                self.snapshotter.commit(chain, key)
                self._fresh.add(chain)
                layer = Layer(chain, result.diff_id, parent, result.size)

                def _insert(conn: sqlite3.Connection) -> None:
                    conn.execute("INSERT OR REPLACE INTO image_layers(chain_id, diff_id, parent, size)"
                                 " VALUES(?, ?, ?, ?)", (chain, layer.diff_id, parent, layer.size))
                self.db.transaction_sync(_insert)
                return layer
        except BaseException:
            if writer is not None:
                writer.abort()
            if self.snapshotter.exists(key):
                self.snapshotter.remove(key)
            raise

    def _layer_exists(self, chain: str) -> bool:
        return bool(self.db.query_sync("SELECT 1 FROM image_layers WHERE chain_id = ?", (chain,)))

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
        if not _valid_parent(image, parent):
            raise EngineError(f"image {parent.id} is not a valid parent for {image.id}")

        def _set(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE images SET parent = ? WHERE id = ?", (parent.id, image.id))
        with self._lock:
            self.db.transaction_sync(_set)

    # ================================================================ tags
    def _add_ref(self, ref: Reference, image_id: str, touch: bool = True) -> str | None:
        """Point ``ref`` at ``image_id``; returns the image it pointed at before.
        ``touch`` records the tag time (tag and import do; dockerd's load does not)."""
        name = str(ref)

        def _set(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT image_id FROM image_refs WHERE name = ?", (name,)).fetchone()
            conn.execute("INSERT INTO image_refs(name, image_id) VALUES(?, ?)"
                         " ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id", (name, image_id))
            if touch:
                conn.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (timeutil.now(), image_id))
            return row[0] if row else None
        with self._lock:
            return self.db.transaction_sync(_set)

    @staticmethod
    def parse_tag(repo: str, tag: str = "") -> Reference:
        """What ``POST /images/{name}/tag?repo=&tag=`` accepts, with dockerd's errors."""
        ref = refs.parse_normalized(repo)
        if ref.digest is not None:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        if tag:
            ref = ref.name_only().with_tag(tag)
        ref = ref.with_default_tag()
        if ref.path.rsplit("/", 1)[-1] == "sha256" and ref.path == "library/sha256":
            raise InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
        return ref

    def tag(self, source: str, repo: str, tag: str = "") -> tuple[str, str]:
        """Tag image ``source`` as ``repo[:tag]``; returns (image ID, familiar new name)."""
        ref = self.parse_tag(repo, tag)
        image = self.get(source)
        self._add_ref(ref, image.id)
        return image.id, ref.familiar()

    def untag(self, name: str) -> str:
        """Remove one reference; returns its familiar form."""
        ref = refs.parse_normalized(name).with_default_tag()

        def _del(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM image_refs WHERE name = ?", (str(ref),)).rowcount
        with self._lock:
            if not self.db.transaction_sync(_del):
                raise NotFound(f"No such image: {ref.familiar()}")
        return ref.familiar()

    def references_by_name(self, repository: str) -> builtins.list[tuple[str, Reference]]:
        """(image ID, reference) for every tag and digest of a repository (full name)."""
        rows = self.db.query_sync("SELECT name, image_id FROM image_refs ORDER BY name")
        out = []
        for r in rows:
            ref = refs.parse(r["name"])
            if ref.name == repository:
                out.append((r["image_id"], ref))
        return out

    def references(self, image_id: str) -> builtins.list[Reference]:
        rows = self.db.query_sync("SELECT name FROM image_refs WHERE image_id = ? ORDER BY name", (image_id,))
        return [refs.parse(r["name"]) for r in rows]

    # ================================================================ import
    def import_tar(self, fileobj: BinaryIO, *, repo_tag: str | None = None, changes: Iterable[str] = (),
                   message: str = "", platform: str | None = None, source: str = "-") -> str:
        """``docker import``: one layer from a (maybe compressed) rootfs tar."""
        ref = None
        if repo_tag:
            ref = refs.parse_normalized(repo_tag)
            if ref.digest is not None:
                raise InvalidParameter("cannot import digest reference")
            ref = ref.with_default_tag()
        os_, arch, variant = host_platform()
        if platform:
            parts = platform.split("/")
            if parts[0] and parts[0] != "linux":
                raise InvalidParameter(f'"{platform}": unsupported platform')
            arch = parts[1] if len(parts) > 1 and parts[1] else arch
            variant = parts[2] if len(parts) > 2 else ("" if len(parts) > 1 else variant)
        container_cfg = apply_changes(empty_config(), list(changes))
        layer = self.register_layer(fileobj, None)
        created = timeutil.now()
        comment = message or f"Imported from {source}"
        # dockerd writes the image config's top-level keys sorted (it marshals a map).
        cfg: dict[str, Any] = {
            "architecture": arch,
            "comment": comment,
            "config": container_cfg,
            "container_config": empty_config(),
            "created": created,
            "docker_version": DOCKER_VERSION,
            "history": [{"created": created, "comment": comment}],
            "os": os_,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
        if variant:
            cfg["variant"] = variant
        image_id = self.create_image(dumps_go(cfg))
        if ref is not None:
            self._add_ref(ref, image_id)
        return image_id

    # ================================================================ load / save
    def load(self, fileobj: BinaryIO, progress: Callable[[dict[str, Any]], None] | None = None,
             quiet: bool = False) -> builtins.list[str]:
        """``docker load``; returns the loaded names (familiar tags, or IDs when untagged)."""
        from .archive import load_archive
        return load_archive(self, fileobj, progress or (lambda m: None), quiet)

    def images_to_save(self, names: builtins.list[str]) -> builtins.list[str]:
        """The image IDs ``save(names)`` writes (raises NotFound like it)."""
        from .archive import select_images
        return list(select_images(self, names))

    def save(self, names: builtins.list[str], fileobj: BinaryIO) -> None:
        """``docker save``: docker-archive with OCI layout files."""
        from .archive import save_archive
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

    def _release_layers(self, chains: builtins.list[str]) -> builtins.list[str]:
        """Delete, top down, each layer no image and no snapshot still uses."""
        used: set[str] = set()
        for r in self.db.query_sync("SELECT chain_ids FROM images"):
            used.update(json.loads(r["chain_ids"]))
        removed: list[str] = []
        for chain in reversed(chains):
            if chain in used or not self._layer_exists(chain):
                break
            if self.snapshotter.exists(chain) and self.snapshotter.children(chain):
                break  # a container (or another layer) still stacks on it
            layer = self.layer(chain)

            def _del(conn: sqlite3.Connection, chain: str = chain) -> None:
                conn.execute("DELETE FROM image_layers WHERE chain_id = ?", (chain,))
            self.db.transaction_sync(_del)
            self._fresh.discard(chain)
            if self.snapshotter.exists(chain):
                self.snapshotter.remove(chain)
            if not self.db.query_sync("SELECT 1 FROM image_layers WHERE diff_id = ?", (layer.diff_id,)):
                self.content.delete(layer.diff_id)
            removed.append(chain)
        return removed

    # ================================================================ containers
    def prepare_rootfs(self, container_key: str, image_id: str) -> builtins.list[Any]:
        """A writable snapshot for a container on top of the image's layers."""
        image = self.get(image_id)
        with self._lock:
            mounts: builtins.list[Any] = self.snapshotter.prepare(container_key, image.top_chain_id)
            return mounts

    def remove_rootfs(self, container_key: str) -> None:
        """Drop the container's snapshot, and layers only it still kept alive
        (their image was deleted with ``rmi -f`` while the container existed)."""
        with self._lock:
            if not self.snapshotter.exists(container_key):
                return
            parent = self.snapshotter.stat(container_key).parent
            self.snapshotter.remove(container_key)
            if parent is not None and self._layer_exists(parent):
                chain: list[str] = []
                key: str | None = parent
                while key is not None and self._layer_exists(key):
                    chain.append(key)
                    key = self.layer(key).parent
                self._release_layers(list(reversed(chain)))

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

    # ================================================================ misc
    def layer_tar(self, diff_id: str) -> BinaryIO:
        return self.content.open(diff_id)

    def disk_usage(self) -> int:
        return sum(l.size for l in self._layers().values())

