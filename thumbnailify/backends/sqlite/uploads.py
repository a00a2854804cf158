"""Resumable (tus) uploads in the embedded SQLite file: a row per upload, its fields as JSON, and
its client (`owner`) as a column of its own for the per-client bound.

Every change is one transaction, so two server processes can never both create past a bound
or both move one upload's offset.
"""

from __future__ import annotations

import json

from thumbnailify.backends.sqlite.schema import Database, migrate
from thumbnailify.record import DEFAULT_OWNER
from thumbnailify.upload_bounds import Full, UploadBounds

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    fields TEXT NOT NULL,
    expires REAL NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS uploads_by_expiry ON uploads (expires);
"""
# The owner column came after the table: a file from before gets it from each row's fields.
MIGRATIONS = {
    ("uploads", "owner"): f"ALTER TABLE uploads ADD COLUMN owner TEXT NOT NULL DEFAULT '{DEFAULT_OWNER}'",
}
BACKFILL = "UPDATE uploads SET owner = coalesce(json_extract(fields, '$.owner'), owner)"
INDEXES = "CREATE INDEX IF NOT EXISTS uploads_unfinished ON uploads (owner) WHERE finished = 0"


class Uploads:
    def __init__(self, db: Database) -> None:
        self.db = db
        with db.transaction() as conn:
            for statement in filter(str.strip, SCHEMA.split(";")):
                conn.execute(statement)
            if migrate(conn, MIGRATIONS):
                conn.execute(BACKFILL)
            conn.execute(INDEXES)

    def create(self, upload_id: str, fields: dict[str, str], expires: float, bounds: UploadBounds) -> Full | None:
        owner = fields["owner"]
        with self.db.transaction() as conn:
            (mine,) = conn.execute("SELECT COUNT(*) FROM uploads WHERE finished = 0 AND owner = ?",
                                   (owner,)).fetchone()
            if mine >= bounds.per_client:
                return Full.CLIENT
            (unfinished,) = conn.execute("SELECT COUNT(*) FROM uploads WHERE finished = 0").fetchone()
            if unfinished >= bounds.total:
                return Full.TOTAL
            conn.execute("INSERT INTO uploads (upload_id, fields, expires, owner) VALUES (?, ?, ?, ?)",
                         (upload_id, json.dumps(fields), expires, owner))
        return None

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
