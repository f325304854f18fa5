"""The image store's layers: rows of ``image_layers``, their snapshots and tars, and the
containers' writable snapshots on top of them (a part of ``ImageStore``)."""
from __future__ import annotations

import builtins
import json
import secrets
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ..content.store import ContentStore
from ..errors import InvalidParameter, NotFound
from ..state.db import Database
from .gc import EXTRACT_PREFIX
from .layer import ApplyResult, apply_file, apply_layer
from .model import Image, Layer, chain_ids


class LayerIndex:
    """Layer methods of ``ImageStore``; ``get`` is the store's."""

    db: Database
    content: ContentStore
    snapshotter: Any
    _lock: threading.RLock
    _fresh: set[str]

    def get(self, ref_or_id: str) -> Image:
        raise NotImplementedError

    def layers(self) -> dict[str, Layer]:
        return {r["chain_id"]: Layer(r["chain_id"], r["diff_id"], r["parent"], int(r["size"]))
                for r in self.db.query_sync("SELECT chain_id, diff_id, parent, size FROM image_layers")}

    def layer(self, chain_id: str) -> Layer:
        rows = self.db.query_sync("SELECT * FROM image_layers WHERE chain_id = ?", (chain_id,))
        if not rows:
            raise NotFound(f"layer does not exist: {chain_id}")
        r = rows[0]
        return Layer(r["chain_id"], r["diff_id"], r["parent"], int(r["size"]))

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
        key = f"{EXTRACT_PREFIX}{secrets.token_hex(8)}"
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

    def layer_tar(self, diff_id: str) -> BinaryIO:
        return self.content.open(diff_id)

    def disk_usage(self) -> int:
        return sum(l.size for l in self.layers().values())
