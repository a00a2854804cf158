"""Resumable (tus) uploads in the embedded SQLite file: a row per upload, its fields as JSON.

Every change is one transaction, so two server processes can never both create past the bound
or both move one upload's offset.
"""

from __future__ import annotations

import json

from thumbnailify.backends.sqlite.schema import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    fields TEXT NOT NULL,
    expires REAL NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS uploads_by_expiry ON uploads (expires);
"""


class Uploads:
    def __init__(self, db: Database) -> None:
        self.db = db
        with db.transaction() as conn:
            for statement in filter(str.strip, SCHEMA.split(";")):
                conn.execute(statement)

    def create(self, upload_id: str, fields: dict[str, str], expires: float, limit: int) -> bool:
        with self.db.transaction() as conn:
            (unfinished,) = conn.execute("SELECT COUNT(*) FROM uploads WHERE finished = 0").fetchone()
            if unfinished >= limit:
                return False
            conn.execute("INSERT INTO uploads (upload_id, fields, expires) VALUES (?, ?, ?)",
                         (upload_id, json.dumps(fields), expires))
        return True

    def get(self, upload_id: str) -> dict[str, str] | None:
        rows = self.db.query("SELECT fields FROM uploads WHERE upload_id = ?", (upload_id,))
        return json.loads(rows[0][0]) if rows else None

    def update(self, upload_id: str, expected_offset: int, fields: dict[str, str]) -> bool:
        with self.db.transaction() as conn:
            row = conn.execute("SELECT fields FROM uploads WHERE upload_id = ?", (upload_id,)).fetchone()
            if row is None:
                return False
            current: dict[str, str] = json.loads(row[0])
            if current.get("offset") != str(expected_offset):
                return False
            conn.execute("UPDATE uploads SET fields = ?, finished = finished OR ? WHERE upload_id = ?",
                         (json.dumps(current | fields), "media_id" in fields, upload_id))
        return True

    def delete(self, upload_id: str) -> bool:
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,)).rowcount > 0

    def expired(self, before: float, limit: int) -> list[str]:
        rows = self.db.query("SELECT upload_id FROM uploads WHERE expires < ? ORDER BY expires LIMIT ?",
                             (before, limit))
        return [row[0] for row in rows]
