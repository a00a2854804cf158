"""Clients in the embedded SQLite file: a row per client, a row per key hash, the usage counters
(kept by the media store's create and delete, in their transactions) and the rate buckets.

Every change is one transaction, so server processes on one machine share buckets and counters.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from thumbnailify.backends.sqlite.schema import Database
from thumbnailify.clients import Client, Grant, Usage, refill, take

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS client_keys (
    hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    expires REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS client_keys_by_name ON client_keys (name);
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    at REAL NOT NULL
);
"""
NEVER = 0.0  # a key's `expires` while it is the client's current one


class Clients:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock  # the machine's: every process of the embedded mode shares it
        with db.transaction() as conn:
            for statement in filter(str.strip, SCHEMA.split(";")):
                conn.execute(statement)

    def add(self, client: Client, key_hash: str) -> bool:
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM clients WHERE name = ?", (client.name,)).fetchone():
                return False
            conn.execute("INSERT INTO clients (name, record) VALUES (?, ?)", (client.name, json.dumps(client.stored())))
            conn.execute("INSERT INTO client_keys (hash, name) VALUES (?, ?)", (key_hash, client.name))
        return True

    def by_key(self, key_hash: str) -> Client | None:
        rows = self.db.query(
            "SELECT c.record FROM client_keys k JOIN clients c ON c.name = k.name"
            " WHERE k.hash = ? AND (k.expires = ? OR k.expires > ?)", (key_hash, NEVER, self.clock()))
        client = Client.from_stored(json.loads(rows[0][0])) if rows else None
        return None if client is None or client.revoked else client

    def get(self, name: str) -> Client | None:
        rows = self.db.query("SELECT record FROM clients WHERE name = ?", (name,))
        return Client.from_stored(json.loads(rows[0][0])) if rows else None

    def all(self) -> list[Client]:
        return [Client.from_stored(json.loads(text)) for (text,) in
                self.db.query("SELECT record FROM clients ORDER BY name")]

    def revoke(self, name: str) -> bool:
        with self.db.transaction() as conn:
            row = conn.execute("SELECT record FROM clients WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            conn.execute("UPDATE clients SET record = ? WHERE name = ?",
                         (json.dumps(json.loads(row[0]) | {"revoked": "1"}), name))
            conn.execute("DELETE FROM client_keys WHERE name = ?", (name,))
        return True

    def rotate(self, name: str, key_hash: str, grace_seconds: float) -> bool:
        now = self.clock()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT record FROM clients WHERE name = ?", (name,)).fetchone()
            if row is None or Client.from_stored(json.loads(row[0])).revoked:
                return False
            conn.execute("DELETE FROM client_keys WHERE name = ? AND expires != ? AND expires <= ?", (name, NEVER, now))
            # The current key (and any still in its grace) ends `grace_seconds` from now, or sooner.
            conn.execute("UPDATE client_keys SET expires = ? WHERE name = ? AND (expires = ? OR expires > ?)",
                         (now + grace_seconds, name, NEVER, now + grace_seconds))
            if grace_seconds == 0:
                conn.execute("DELETE FROM client_keys WHERE name = ?", (name,))
            conn.execute("INSERT INTO client_keys (hash, name) VALUES (?, ?)", (key_hash, name))
        return True

    def usage(self, name: str) -> Usage:
        rows = self.db.query("SELECT items, bytes FROM usage WHERE name = ?", (name,))
        return Usage(*rows[0]) if rows else Usage(0, 0)

    def take_token(self, name: str, rate: float, burst: float) -> Grant:
        now = self.clock()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT tokens, at FROM buckets WHERE name = ?", (name,)).fetchone()
            tokens, at = refill(row[0], row[1], now, rate, burst) if row else (burst, now)
            grant = take(tokens, rate)
            conn.execute("INSERT OR REPLACE INTO buckets (name, tokens, at) VALUES (?, ?, ?)",
                         (name, grant.remaining, at))
        return grant
