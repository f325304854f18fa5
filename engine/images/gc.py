"""Recovery at open and garbage collection of the image store's layers and blobs."""
from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import ImageStore

log = logging.getLogger(__name__)

# The snapshot keys of layers being unpacked (an import, load or pull under way).
EXTRACT_PREFIX = "extract-"


def recover(store: ImageStore) -> None:
    """At open: drop what a crash left half-made (scratch dirs, unfinished extractions, rows
    whose snapshot vanished, snapshots whose row was never written)."""
    # Scratch directories of loads a crash interrupted (nothing runs yet at startup).
    for leftover in store.tmp.glob("load-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    layer_rows = {r["chain_id"] for r in store.db.query_sync("SELECT chain_id FROM image_layers")}
    # Half-unpacked layers of an interrupted import/load.
    for info in store.snapshotter.list():
        if info.key.startswith(EXTRACT_PREFIX) and not store.snapshotter.children(info.key):
            store.snapshotter.remove(info.key)
    # Committed layers whose row was never written: unpack again when needed.
    for info in sorted(store.snapshotter.list(), key=lambda i: -i.id):
        if (info.key.startswith("sha256:") and info.kind == "committed" and info.key not in layer_rows
                and not store.snapshotter.children(info.key)):
            store.snapshotter.remove(info.key)
    # Layer rows whose snapshot vanished cannot be used; forget them.
    lost = [c for c in layer_rows if not store.snapshotter.exists(c)]
    if lost:
        def _forget(conn: sqlite3.Connection) -> None:
            for c in lost:
                conn.execute("DELETE FROM image_layers WHERE chain_id = ?", (c,))
        store.db.transaction_sync(_forget)


def collect_garbage(store: ImageStore, container_keys: Iterable[str] | None = None) -> int:
    """Remove layers no image uses and no snapshot stacks on, as containerd's GC does once
    a lease ended: what a load, pull or import killed half-way left.  Returns the bytes freed.

    With ``container_keys`` (at daemon start, when no ingest runs) it also removes the
    writable snapshots of containers that do not exist and content blobs nothing refers to.
    Without (``image prune`` while the daemon serves) layers registered by an ingest still
    under way in this process are spared: their image is about to be created.
    The caller holds the store's lock.
    """
    freed = 0
    at_start = container_keys is not None
    if at_start:
        keys = set(container_keys or ())
        for info in store.snapshotter.list():
            if (info.kind != "committed" and not info.key.startswith(("sha256:", EXTRACT_PREFIX))
                    and info.key not in keys and not store.snapshotter.children(info.key)):
                log.info("removing the snapshot of a container that does not exist: %s", info.key[:12])
                store.snapshotter.remove(info.key)
    used: set[str] = set()
    for r in store.db.query_sync("SELECT chain_ids FROM images"):
        used.update(json.loads(r["chain_ids"]))
    layers = store.layers()
    spared = set() if at_start else store.in_flight_layers()

    def depth(chain: str) -> int:
        n = 0
        key: str | None = chain
        while key is not None and key in layers and n < 10_000:
            key = layers[key].parent
            n += 1
        return n

    orphans = [c for c in layers if c not in used and c not in spared]
    for chain in sorted(orphans, key=depth, reverse=True):   # top layers first
        if store.snapshotter.exists(chain) and store.snapshotter.children(chain):
            continue  # a container (or a kept layer) still stacks on it
        layer = layers[chain]

        def _del(conn: sqlite3.Connection, chain: str = chain) -> None:
            conn.execute("DELETE FROM image_layers WHERE chain_id = ?", (chain,))
        store.db.transaction_sync(_del)
        if store.snapshotter.exists(chain):
            store.snapshotter.remove(chain)
        if not store.db.query_sync("SELECT 1 FROM image_layers WHERE diff_id = ?", (layer.diff_id,)):
            if store.content.exists(layer.diff_id):
                freed += store.content.info(layer.diff_id).size
                store.content.delete(layer.diff_id)
        freed += layer.size
        log.info("removed layer %s, which no image uses", chain[:19])
    if at_start:
        wanted = {r["id"] for r in store.db.query_sync("SELECT id FROM images")}
        wanted.update(r["diff_id"] for r in store.db.query_sync("SELECT diff_id FROM image_layers"))
        for desc in list(store.content.walk()):
            if desc.digest not in wanted:
                store.content.delete(desc.digest)
                freed += desc.size
    return freed
