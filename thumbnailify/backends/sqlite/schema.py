"""The embedded backends: state and job queue in one local SQLite file, no server process.

Both are synchronous; the worker calls them directly and the server through a thread. The file
survives restarts, and a job is only deleted when acked, so a killed service loses nothing: a
claimed job whose lease runs out is handed out again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thumbnailify.clients import Quota, QuotaExceeded
from thumbnailify.lanes import LANES, LanePicker, Priority, lane_of
from thumbnailify.record import DEFAULT_OWNER, Fields, MediaRecord, State, mapping, readable
from thumbnailify.state import append_history, history_entry

SCHEMA = """
CREATE TABLE IF NOT EXISTS media (
    media_id TEXT PRIMARY KEY,
    score REAL NOT NULL,
    state TEXT NOT NULL,
    record TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT 'default',
    phash TEXT  -- the record's perceptual hash, beside it for a similarity search to read alone
);
CREATE INDEX IF NOT EXISTS media_by_score ON media (score DESC, media_id DESC);
CREATE INDEX IF NOT EXISTS media_by_state ON media (state, score DESC, media_id DESC);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    media_id TEXT NOT NULL,
    media_type TEXT NOT NULL,
    enqueued REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    deliveries INTEGER NOT NULL DEFAULT 0,
    owner INTEGER NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    dead_at REAL NOT NULL DEFAULT 0,
    queue TEXT NOT NULL DEFAULT 'image',
    lane TEXT NOT NULL DEFAULT 'normal',  -- thumbnailify.lanes: high, normal or bulk
    client TEXT NOT NULL DEFAULT 'default'  -- whose job: clients take turns within a lane
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (dead, lease_until, id);
CREATE TABLE IF NOT EXISTS served (  -- when each client was last served in a queue's lane
    queue TEXT NOT NULL,
    lane TEXT NOT NULL,
    client TEXT NOT NULL,
    turn INTEGER NOT NULL,
    PRIMARY KEY (queue, lane, client)
);
CREATE TABLE IF NOT EXISTS content (
    key TEXT PRIMARY KEY,
    media_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    media_id TEXT NOT NULL,
    record TEXT,
    at REAL NOT NULL,
    owner TEXT NOT NULL DEFAULT 'default'
);
CREATE TABLE IF NOT EXISTS usage (
    name TEXT PRIMARY KEY,
    items INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_expiry ON requests (expires);
CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
"""
# Columns added since the first release, for files created before them (whose jobs are all
# photos, whose media all belong to the default client).
MIGRATIONS = {
    ("jobs", "dead_at"): "ALTER TABLE jobs ADD COLUMN dead_at REAL NOT NULL DEFAULT 0",
    ("jobs", "queue"): "ALTER TABLE jobs ADD COLUMN queue TEXT NOT NULL DEFAULT 'image'",
    ("jobs", "lane"): "ALTER TABLE jobs ADD COLUMN lane TEXT NOT NULL DEFAULT 'normal'",
    ("jobs", "client"): "ALTER TABLE jobs ADD COLUMN client TEXT NOT NULL DEFAULT 'default'",
    ("media", "owner"): "ALTER TABLE media ADD COLUMN owner TEXT NOT NULL DEFAULT 'default'",
    ("changes", "owner"): "ALTER TABLE changes ADD COLUMN owner TEXT NOT NULL DEFAULT 'default'",
    ("media", "phash"): "ALTER TABLE media ADD COLUMN phash TEXT",
}
# Indexes of columns a migration may add, made once they exist. The perceptual hashes' index holds
# the media_id and owner as well, so a similarity search reads the index alone, not 100,000
# records' JSON (70 ms -> 20 ms at 100,000).
INDEXES = """
CREATE INDEX IF NOT EXISTS media_by_owner ON media (owner, score DESC, media_id DESC);
CREATE INDEX IF NOT EXISTS media_phash ON media (phash, media_id) WHERE phash IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_by_lane ON jobs (queue, lane, dead, client, id);
"""


class Database:
    """One SQLite file; a connection per thread, WAL so readers never wait for the writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connection()
        conn.executescript(SCHEMA)  # executescript commits on its own
        migrate(conn, MIGRATIONS)
        conn.executescript(INDEXES)  # after the migrations: they may add the columns indexed
        # A lane none of ours (a row written by hand or by a tool) would never be claimed: normal.
        conn.execute(f"UPDATE jobs SET lane = 'normal' WHERE lane NOT IN ({','.join('?' * len(LANES))})", LANES)

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._connection().execute(sql, params).fetchall()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def migrate(conn: sqlite3.Connection, migrations: dict[tuple[str, str], str]) -> bool:
    """Each (table, column) migration's SQL, run if the table lacks the column; whether any ran."""
    ran = False
    for (table, column), sql in migrations.items():
        if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(sql)
            ran = True
    return ran


def decoded(text: str) -> object:
    """A row's record from its JSON; a row that is not JSON stays its text, which is no record
    (thumbnailify.record.mapping refuses it)."""
    try:
        loaded: object = json.loads(text)
    except ValueError:
        return text
    return loaded


def _log_change(conn: sqlite3.Connection, media_id: str, record: str | None, owner: str) -> None:
    """Every change goes to the changes table in its own transaction; servers stream it from there."""
    conn.execute("INSERT INTO changes (media_id, record, at, owner) VALUES (?, ?, ?, ?)",
                 (media_id, record, time.time(), owner))


def _count(conn: sqlite3.Connection, record: MediaRecord, quota: Quota | None) -> None:
    """One more item of record.owner's, checked against `quota` (QuotaExceeded: nothing changed)."""
    if record.owner is None:
        return
    row = conn.execute("SELECT items, bytes FROM usage WHERE name = ?", (record.owner,)).fetchone()
    items, used = row if row else (0, 0)
    size = record.size or 0
    if quota is not None and quota.items and items + 1 > quota.items:
        raise QuotaExceeded("items", quota.items)
    if quota is not None and quota.bytes and used + size > quota.bytes:
        raise QuotaExceeded("bytes", quota.bytes)
    conn.execute("INSERT OR REPLACE INTO usage (name, items, bytes) VALUES (?, ?, ?)",
                 (record.owner, items + 1, used + size))


def _uncount(conn: sqlite3.Connection, stored: object) -> None:
    """The usage a deleted record counted (records from before clients counted none)."""
    if not isinstance(stored, dict) or not stored.get("owner"):
        return
    try:
        size = int(stored.get("bytes") or 0)
    except ValueError:
        size = 0
    conn.execute("UPDATE usage SET items = MAX(items - 1, 0), bytes = MAX(bytes - ?, 0) WHERE name = ?",
                 (size, stored["owner"]))


class SQLiteStore:
    """Media records, keyed by media_id and ordered by creation time for listing."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ping(self) -> None:
        self.db.query("SELECT 1")

    def create(self, media_id: str, record: MediaRecord, score: float, quota: Quota | None = None) -> None:
        stored = record.stored()
        text = json.dumps(stored | {"history": append_history(stored, history_entry(stored, record.state))})
        with self.db.transaction() as conn:
            _count(conn, record, quota)
            conn.execute(
                "INSERT INTO media (media_id, score, state, record, owner) VALUES (?, ?, ?, ?, ?)",
                (media_id, score, record.state, text, record.client),
            )
            _log_change(conn, media_id, text, record.client)

    def get(self, media_id: str) -> MediaRecord | None:
        """The record; UnreadableRecord when its row cannot be read as one."""
        rows = self.db.query("SELECT record FROM media WHERE media_id = ?", (media_id,))
        return MediaRecord.from_stored(mapping(decoded(rows[0][0]))) if rows else None

    def delete(self, media_id: str) -> bool:
        with self.db.transaction() as conn:
            row = conn.execute("DELETE FROM media WHERE media_id = ? RETURNING record, owner", (media_id,)).fetchone()
            if row is not None:
                _uncount(conn, decoded(row[0]))
                _log_change(conn, media_id, None, row[1])
            return row is not None

    def transition(self, media_id: str, expected_state: State, fields: Fields) -> bool:
        """Apply fields only if the record exists and is still in expected_state."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT record FROM media WHERE media_id = ? AND state = ?",
                (media_id, expected_state),
            ).fetchone()
            if row is None:
                return False
            record = json.loads(row[0])
            history = append_history(record, history_entry(fields, expected_state))
            text = json.dumps(record | fields | {"history": history})
            conn.execute(
                "UPDATE media SET state = ?, record = ?, phash = COALESCE(NULLIF(?, ''), phash) WHERE media_id = ?",
                (fields.get("state", expected_state), text, fields.get("phash"), media_id),
            )
            _log_change(conn, media_id, text, str(record.get("owner") or DEFAULT_OWNER))
            return True

    def changes_after(self, last_id: int, limit: int) -> list[tuple[int, str, str | None, str]]:
        """(id, media_id, record JSON or None when deleted, owner) of changes after last_id, oldest first."""
        return self.db.query(
            "SELECT id, media_id, record, owner FROM changes WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
        )

    def last_change(self) -> int:
        return int(self.db.query("SELECT COALESCE(MAX(id), 0) FROM changes")[0][0])

    def prune_changes(self, older_than: float) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM changes WHERE at < ?", (older_than,))

    def add_attempt(self, media_id: str, delivery_token: str) -> int:
        """Count one more delivery of an existing record, once per delivery; 0 when the record is gone."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT record FROM media WHERE media_id = ?", (media_id,)).fetchone()
            if row is None:
                return 0
            record = json.loads(row[0])
            attempts = int(record.get("attempts", "0"))
            if record.get("counted_delivery") == delivery_token:
                return attempts
            attempts += 1
            record["attempts"] = str(attempts)
            record["counted_delivery"] = delivery_token
            conn.execute(
                "UPDATE media SET record = ? WHERE media_id = ?", (json.dumps(record), media_id)
            )
            return attempts

    def set_fields(self, media_id: str, fields: Fields) -> bool:
        """Fields beside the state (a webhook's progress), on a record that still exists."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT record FROM media WHERE media_id = ?", (media_id,)).fetchone()
            if row is None:
                return False
            conn.execute("UPDATE media SET record = ? WHERE media_id = ?", (json.dumps(json.loads(row[0]) | fields),
                                                                          media_id))
            return True

    def find_content(self, key: str) -> str | None:
        rows = self.db.query("SELECT media_id FROM content WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def remember_content(self, key: str, media_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO content (key, media_id) VALUES (?, ?)", (key, media_id))

    def page(
        self, limit: int, after: tuple[float, str] | None, state: State | None, owner: str | None = None
    ) -> list[tuple[str, float, MediaRecord]]:
        """Newest first, strictly after the (score, media_id) cursor, optionally one state; a
        record that cannot be read is skipped (logged), the page filled from the rows after it."""
        found: list[tuple[str, float, MediaRecord]] = []
        while len(found) < limit:
            rows = self._rows(limit, after, state, owner)
            for media_id, score, text in rows:
                record = readable(media_id, decoded(text))
                if record is not None:
                    found.append((media_id, score, record))
            if len(rows) < limit:
                break
            after = (rows[-1][1], rows[-1][0])
        return found[:limit]

    def _rows(self, limit: int, after: tuple[float, str] | None, state: State | None,
              owner: str | None) -> list[tuple[Any, ...]]:
        where: list[str] = []
        params: list[object] = []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if after is not None:
            where.append("(score, media_id) < (?, ?)")
            params.extend(after)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        sql = "SELECT media_id, score, record FROM media"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY score DESC, media_id DESC LIMIT ?"
        return self.db.query(sql, (*params, limit))

    def perceptual_hashes(self) -> str:
        """Every item's media_id and perceptual hash, one string (see server.backends.Store)."""
        rows = self.db.query("SELECT group_concat(media_id || phash, '') FROM media INDEXED BY media_phash "
                             "WHERE phash IS NOT NULL")
        return str(rows[0][0] or "")

    def created_before(self, score: float, limit: int) -> list[str]:
        rows = self.db.query("SELECT media_id FROM media WHERE score < ? ORDER BY score LIMIT ?", (score, limit))
        return [media_id for (media_id,) in rows]

    def reserve_request(self, key: str, marker: str, seconds: float) -> str | None:
        """Put marker under an Idempotency-Key unless it holds something: None, or what it holds."""
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM requests WHERE expires <= ?", (now,))
            row = conn.execute("SELECT value FROM requests WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return str(row[0])
            conn.execute("INSERT INTO requests (key, value, expires) VALUES (?, ?, ?)", (key, marker, now + seconds))
            return None

    def save_request(self, key: str, value: str, seconds: float) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO requests (key, value, expires) VALUES (?, ?, ?)",
                         (key, value, time.time() + seconds))

    def release_request(self, key: str, marker: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM requests WHERE key = ? AND value = ?", (key, marker))

    def acquire_lock(self, name: str, owner: str, seconds: float) -> bool:
        """Take the named lock unless another owner holds it unexpired; extend it if it is ours."""
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM locks WHERE name = ? AND (expires <= ? OR owner = ?)", (name, now, owner))
            return conn.execute(
                "INSERT OR IGNORE INTO locks (name, owner, expires) VALUES (?, ?, ?)", (name, owner, now + seconds)
            ).rowcount > 0

    def release_lock(self, name: str, owner: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner))


# The queries of a claim, each on the index of lanes (which the planner would not always pick: the
# index of ready jobs would make a lane's check walk every other lane's jobs).
READY_IN_LANE = ("SELECT 1 FROM jobs INDEXED BY jobs_by_lane"
                 " WHERE queue = :queue AND lane = :lane AND dead = 0 AND lease_until <= :now LIMIT 1")
# The client of a lane served longest ago (never: first) that has a ready job there. Its clients
# are found one index seek each (a skip scan), not by reading every job of the lane.
NEXT_CLIENT = """
WITH RECURSIVE waiting(client) AS (
    SELECT (SELECT client FROM jobs INDEXED BY jobs_by_lane
            WHERE queue = :queue AND lane = :lane AND dead = 0 ORDER BY client LIMIT 1)
    UNION ALL
    SELECT (SELECT client FROM jobs INDEXED BY jobs_by_lane
            WHERE queue = :queue AND lane = :lane AND dead = 0 AND client > waiting.client ORDER BY client LIMIT 1)
    FROM waiting WHERE waiting.client IS NOT NULL
)
SELECT waiting.client FROM waiting
LEFT JOIN served ON served.queue = :queue AND served.lane = :lane AND served.client = waiting.client
WHERE waiting.client IS NOT NULL AND EXISTS (
    SELECT 1 FROM jobs INDEXED BY jobs_by_lane WHERE queue = :queue AND lane = :lane AND dead = 0
    AND client = waiting.client AND lease_until <= :now)
ORDER BY COALESCE(served.turn, 0), waiting.client LIMIT 1
"""


@dataclass(frozen=True)
class ClaimedJob:
    job_id: int
    media_id: str
    media_type: str
    deliveries: int
    lane: Priority
    client: str


@dataclass(frozen=True)
class DeadJob:
    job_id: int
    media_id: str
    media_type: str
    reason: str
    lane: Priority
    client: str


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SQLiteQueue:
    """A durable FIFO with leases: claim hands a job out, ack deletes it, a lapsed lease returns it.

    One table holds every queue, named by the kind of job (image, video, webhook). Embedded means
    one machine, so a job held by a process that no longer exists (a worker killed mid-job) is
    handed out again at once rather than when its lease runs out. A deferred job is one leased to
    nobody (owner 0) until its time.

    Jobs wait in lanes (thumbnailify.lanes); `claim` serves the lanes as its picker says and,
    within a lane, the client served longest ago (its oldest job), so no client's backlog holds
    up another's jobs by more than one job per client ahead of it.
    """

    def __init__(self, db: Database, lease_seconds: float, queue: str) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self.queue = queue

    def put(self, media_id: str, media_type: str, lane: Priority = Priority.NORMAL,
            client: str = DEFAULT_OWNER) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (media_id, media_type, enqueued, queue, lane, client) VALUES (?, ?, ?, ?, ?, ?)",
                (media_id, media_type, time.time(), self.queue, lane_of(lane), client),
            )

    def claim(self, picker: LanePicker) -> ClaimedJob | None:
        now = time.time()
        with self.db.transaction() as conn:
            ready = [lane for lane in LANES if conn.execute(READY_IN_LANE, {"queue": self.queue, "lane": lane,
                                                                             "now": now}).fetchone()]
            lane = picker.pick(ready)
            if lane is None:
                return None
            where = {"queue": self.queue, "lane": lane, "now": now}
            (client,) = conn.execute(NEXT_CLIENT, where).fetchone()
            row = conn.execute(
                "UPDATE jobs SET lease_until = :lease, deliveries = deliveries + 1, owner = :pid WHERE id = ("
                " SELECT id FROM jobs INDEXED BY jobs_by_lane WHERE queue = :queue AND lane = :lane AND dead = 0"
                " AND client = :client AND lease_until <= :now ORDER BY id LIMIT 1)"
                " RETURNING id, media_id, media_type, deliveries, lane, client",
                where | {"client": client, "lease": now + self.lease_seconds, "pid": os.getpid()},
            ).fetchone()
            conn.execute(
                "INSERT INTO served (queue, lane, client, turn) VALUES (:queue, :lane, :client, (SELECT"
                " COALESCE(MAX(turn), 0) + 1 FROM served WHERE queue = :queue AND lane = :lane))"
                " ON CONFLICT (queue, lane, client) DO UPDATE SET turn = excluded.turn", where | {"client": client})
        job_id, media_id, media_type, deliveries, stored_lane, owner = row
        return ClaimedJob(job_id, media_id, media_type, deliveries, lane_of(stored_lane), owner)

    def ack(self, job_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def defer(self, job_id: int, seconds: float) -> None:
        """Hand the job out again in `seconds`, not before."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE jobs SET lease_until = ?, owner = 0 WHERE id = ?", (time.time() + seconds, job_id))

    def dead_letter(self, job_id: int, reason: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET dead = 1, reason = ?, dead_at = ? WHERE id = ?", (reason, time.time(), job_id)
            )

    def prune_dead(self, max_length: int, max_age: float) -> int:
        """Remove dead letters older than max_age seconds and all but the newest max_length (0: no bound)."""
        with self.db.transaction() as conn:
            removed = 0
            if max_age > 0:
                removed += conn.execute(
                    "DELETE FROM jobs WHERE dead = 1 AND queue = ? AND dead_at < ?",
                    (self.queue, time.time() - max_age),
                ).rowcount
            if max_length > 0:
                removed += conn.execute(
                    "DELETE FROM jobs WHERE dead = 1 AND queue = ? AND id NOT IN"
                    " (SELECT id FROM jobs WHERE dead = 1 AND queue = ? ORDER BY id DESC LIMIT ?)",
                    (self.queue, self.queue, max_length),
                ).rowcount
            return removed

    def dead_jobs(self) -> list[DeadJob]:
        rows = self.db.query(
            "SELECT id, media_id, media_type, reason, lane, client FROM jobs WHERE dead = 1 AND queue = ? ORDER BY id",
            (self.queue,),
        )
        return [DeadJob(job_id, media_id, media_type, reason, lane_of(lane), client)
                for job_id, media_id, media_type, reason, lane, client in rows]

    def revive(self, job_id: int) -> None:
        """Put a dead letter back at the end of the queue as a fresh job."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "DELETE FROM jobs WHERE id = ? AND dead = 1 RETURNING media_id, media_type, queue, lane, client",
                (job_id,),
            ).fetchone()
            if row is not None:
                conn.execute(
                    "INSERT INTO jobs (media_id, media_type, queue, lane, client, enqueued) VALUES (?, ?, ?, ?, ?, ?)",
                    (*row, time.time()),
                )

    def release_orphans(self) -> int:
        """Hand out again the jobs whose claiming process has died."""
        held = self.db.query(
            "SELECT DISTINCT owner FROM jobs WHERE dead = 0 AND owner != 0 AND lease_until > ?", (time.time(),)
        )
        dead_owners = [owner for (owner,) in held if not _alive(owner)]
        if not dead_owners:
            return 0
        marks = ",".join("?" * len(dead_owners))
        with self.db.transaction() as conn:
            return conn.execute(
                f"UPDATE jobs SET lease_until = 0 WHERE dead = 0 AND owner IN ({marks})", dead_owners
            ).rowcount

    def depth(self) -> int:
        return int(self.db.query("SELECT COUNT(*) FROM jobs WHERE dead = 0 AND queue = ?", (self.queue,))[0][0])


def release_all(db: Database) -> int:
    """Hand out again every claimed job of every queue (deferred ones keep their time); only safe
    when no worker runs."""
    with db.transaction() as conn:
        return conn.execute("UPDATE jobs SET lease_until = 0 WHERE dead = 0 AND owner != 0").rowcount
