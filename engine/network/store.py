"""The network tables in the SQLite store: networks, per-container attachments, addresses.

``addresses`` has one row per handed-out address, keyed by (network, address):
the database itself refuses to hand the same address out twice.
"""
from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import Any

from ..state import Database
from .types import Endpoint, EndpointSettings, IPAMConfig, Link, Network, PortBinding

MIGRATIONS = [
    """
    CREATE TABLE networks (id TEXT PRIMARY KEY, name TEXT NOT NULL, data TEXT NOT NULL);
    CREATE TABLE net_attachments (
        container_id TEXT NOT NULL, network_id TEXT NOT NULL, seq INTEGER NOT NULL,
        settings TEXT NOT NULL, endpoint TEXT, PRIMARY KEY (container_id, network_id));
    CREATE TABLE net_addresses (
        network_id TEXT NOT NULL, address TEXT NOT NULL, container_id TEXT NOT NULL,
        PRIMARY KEY (network_id, address));
    CREATE TABLE net_ports (container_id TEXT PRIMARY KEY, data TEXT NOT NULL);
    """,
    """
    CREATE TABLE net_links (
        parent_id TEXT NOT NULL, seq INTEGER NOT NULL, alias TEXT NOT NULL, child_id TEXT NOT NULL,
        child_name TEXT NOT NULL, PRIMARY KEY (parent_id, alias));
    """,
]


def _dump(obj: Any) -> str:
    return json.dumps(dataclasses.asdict(obj))


def network_from(data: dict[str, Any]) -> Network:
    ipam = tuple(IPAMConfig(**c) for c in data.pop("ipam", []))
    return Network(ipam=ipam, **data)


def settings_from(data: dict[str, Any]) -> EndpointSettings:
    for key in ("aliases", "links", "link_local_ips"):
        data[key] = tuple(data.get(key) or ())
    return EndpointSettings(**data)


class NetworkStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("network", MIGRATIONS)
        # attachments are read on every DNS question: kept in memory, refreshed after each write
        self._attachments: list[tuple[str, str, int, EndpointSettings, Endpoint | None]] | None = None

    def load_networks(self) -> list[Network]:
        return [network_from(json.loads(r["data"])) for r in self.db.query_sync("SELECT data FROM networks")]

    def save_network(self, n: Network) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO networks(id, name, data) VALUES(?,?,?)", (n.id, n.name, _dump(n)))
        self.db.transaction_sync(tx)

    def delete_network(self, nid: str) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM networks WHERE id = ?", (nid,))
            conn.execute("DELETE FROM net_addresses WHERE network_id = ?", (nid,))
        self.db.transaction_sync(tx)
        self._attachments = None

    # attachments: (container, network) -> settings (+ the live endpoint while running)
    def attachments(self) -> list[tuple[str, str, int, EndpointSettings, Endpoint | None]]:
        if self._attachments is None:
            self._attachments = self._load_attachments()
        return list(self._attachments)

    def _load_attachments(self) -> list[tuple[str, str, int, EndpointSettings, Endpoint | None]]:
        out = []
        for r in self.db.query_sync(
                "SELECT container_id, network_id, seq, settings, endpoint FROM net_attachments ORDER BY seq"):
            ep = Endpoint(**json.loads(r["endpoint"])) if r["endpoint"] else None
            out.append((r["container_id"], r["network_id"], int(r["seq"]),
                        settings_from(json.loads(r["settings"])), ep))
        return out

    def put_attachment(self, cid: str, nid: str, seq: int, s: EndpointSettings, ep: Endpoint | None) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO net_attachments VALUES(?,?,?,?,?)",
                         (cid, nid, seq, _dump(s), _dump(ep) if ep else None))
        self.db.transaction_sync(tx)
        self._attachments = None

    def delete_attachment(self, cid: str, nid: str | None = None) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            if nid is None:
                conn.execute("DELETE FROM net_attachments WHERE container_id = ?", (cid,))
                conn.execute("DELETE FROM net_addresses WHERE container_id = ?", (cid,))
                conn.execute("DELETE FROM net_ports WHERE container_id = ?", (cid,))
                conn.execute("DELETE FROM net_links WHERE parent_id = ?", (cid,))
            else:
                conn.execute("DELETE FROM net_attachments WHERE container_id = ? AND network_id = ?", (cid, nid))
                conn.execute("DELETE FROM net_addresses WHERE container_id = ? AND network_id = ?", (cid, nid))
        self.db.transaction_sync(tx)
        self._attachments = None

    def addresses(self, nid: str) -> set[str]:
        return {r["address"] for r in self.db.query_sync(
            "SELECT address FROM net_addresses WHERE network_id = ?", (nid,))}

    def take_address(self, nid: str, address: str, cid: str) -> bool:
        """Record an address as handed out; False when it already is."""
        def tx(conn: sqlite3.Connection) -> bool:
            try:
                conn.execute("INSERT INTO net_addresses VALUES(?,?,?)", (nid, address, cid))
            except sqlite3.IntegrityError:
                return False
            return True
        return self.db.transaction_sync(tx)

    def release_addresses(self, cid: str, nid: str | None = None) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            if nid is None:
                conn.execute("DELETE FROM net_addresses WHERE container_id = ?", (cid,))
            else:
                conn.execute("DELETE FROM net_addresses WHERE container_id = ? AND network_id = ?", (cid, nid))
        self.db.transaction_sync(tx)

    def ports(self, cid: str) -> list[PortBinding]:
        rows = self.db.query_sync("SELECT data FROM net_ports WHERE container_id = ?", (cid,))
        return [PortBinding(**p) for p in json.loads(rows[0]["data"])] if rows else []

    def set_ports(self, cid: str, ports: list[PortBinding]) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            if ports:
                conn.execute("INSERT OR REPLACE INTO net_ports VALUES(?,?)",
                             (cid, json.dumps([dataclasses.asdict(p) for p in ports])))
            else:
                conn.execute("DELETE FROM net_ports WHERE container_id = ?", (cid,))
        self.db.transaction_sync(tx)

    def links(self, parent_id: str) -> list[Link] | None:
        """The parent's links; None when none were ever recorded (a container of an older store)."""
        rows = self.db.query_sync("SELECT alias, child_id, child_name FROM net_links WHERE parent_id = ? "
                                  "ORDER BY seq", (parent_id,))
        if not rows:
            return None
        # the row with seq -1 only says the links were recorded (all of them may have been removed)
        return [Link(alias=r["alias"], child_id=r["child_id"], child_name=r["child_name"]) for r in rows
                if r["alias"]]

    def set_links(self, parent_id: str, links: list[Link]) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM net_links WHERE parent_id = ?", (parent_id,))
            conn.execute("INSERT INTO net_links VALUES(?,?,?,?,?)", (parent_id, -1, "", "", ""))
            for seq, link in enumerate(links):
                conn.execute("INSERT OR REPLACE INTO net_links VALUES(?,?,?,?,?)",
                             (parent_id, seq, link.alias, link.child_id, link.child_name))
        self.db.transaction_sync(tx)

    def note_child_name(self, child_id: str, name: str) -> None:
        """A removed child's last name, which its parents' links keep showing (as dockerd's do)."""
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE net_links SET child_name = ? WHERE child_id = ?", (name, child_id))
        self.db.transaction_sync(tx)
