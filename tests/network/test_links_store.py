"""Legacy links in the network store: kept by the child's id, recorded-ness, the child's last name."""
from __future__ import annotations

from pathlib import Path

from engine.network.store import NetworkStore
from engine.network.types import Link
from engine.state import Database


def test_links_are_recorded_removed_and_keep_the_last_name(tmp_path: Path) -> None:
    db = Database(tmp_path / "db")
    try:
        store = NetworkStore(db)
        assert store.links("p" * 64) is None                 # never recorded (an older store)
        g = store.generation
        store.set_links("p" * 64, [Link("db", "c" * 64, "src"), Link("src", "c" * 64, "src")])
        assert store.generation > g                          # DNS answers from it: changed
        assert [link.alias for link in store.links("p" * 64) or []] == ["db", "src"]
        store.note_child_name("c" * 64, "src2")
        assert {link.child_name for link in store.links("p" * 64) or []} == {"src2"}
        store.set_links("p" * 64, [])
        assert store.links("p" * 64) == []                   # recorded, and all removed
        store.delete_attachment("p" * 64)                    # the parent removed: its links go too
        assert store.links("p" * 64) is None
    finally:
        db.close()
