"""Clients' pure parts: keys, the token bucket (a clock going backwards among them), and the
embedded store's bucket and key rotation under a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from thumbnailify.backends.sqlite.clients import Clients
from thumbnailify.backends.sqlite.schema import Database
from thumbnailify.clients import Client, key_hash, new_key, refill, take, valid_name
from thumbnailify.lanes import Priority


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_keys_are_random_and_only_their_hash_is_a_lookup_key() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100 and all(key.startswith("tfy_") and len(key) == 47 for key in keys)
    key = next(iter(keys))
    assert key_hash(key) == key_hash(key) and len(key_hash(key)) == 64 and key not in key_hash(key)
    assert key_hash("\udcff") != key_hash("?")  # a non-UTF-8 header's bytes hash as they came


@pytest.mark.parametrize(("name", "ok"), [("alice", True), ("a.b-c_d9", True), ("x" * 63, True), ("x" * 64, False),
                                          ("Alice", False), ("", False), ("-a", False), ("a/b", False),
                                          ("a b", False), ("é", False)])
def test_client_names(name: str, ok: bool) -> None:
    assert valid_name(name) is ok


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    assert refill(0.0, 100.0, 101.5, 2.0, 5.0) == (3.0, 101.5)
    assert refill(4.0, 100.0, 200.0, 2.0, 5.0) == (5.0, 200.0)
    assert take(3.0, 2.0).allowed and take(3.0, 2.0).remaining == 2.0
    empty = take(0.25, 2.0)
    assert not empty.allowed and empty.remaining == 0.25 and empty.retry_after == pytest.approx(0.375)


def test_a_clock_going_backwards_adds_nothing_and_keeps_the_bucket_time() -> None:
    tokens, at = refill(0.5, 100.0, 40.0, 2.0, 5.0)  # 60 s back
    assert (tokens, at) == (0.5, 100.0)
    # Back to 100.5: only the half second past the last counted time refills, never the 60 s.
    assert refill(tokens, at, 100.5, 2.0, 5.0) == (1.5, 100.5)


@pytest.fixture
def clients(tmp_path: Path) -> tuple[Clients, Clock]:
    clock = Clock(1000.0)
    return Clients(Database(tmp_path / "state.db"), clock), clock


def test_the_embedded_bucket_under_a_clock_that_goes_backwards(clients: tuple[Clients, Clock]) -> None:
    store, clock = clients
    assert store.take_token("alice", 1.0, 2.0).allowed
    assert store.take_token("alice", 1.0, 2.0).allowed
    assert not store.take_token("alice", 1.0, 2.0).allowed
    clock.now = 500.0  # stepped back by eight minutes
    refused = store.take_token("alice", 1.0, 2.0)
    assert not refused.allowed and refused.remaining == 0.0 and refused.retry_after == 1.0
    clock.now = 1000.5  # a half second after the last counted time: half a token
    assert not store.take_token("alice", 1.0, 2.0).allowed
    clock.now = 1001.0
    assert store.take_token("alice", 1.0, 2.0).allowed
    assert store.take_token("bob", 1.0, 2.0).allowed  # a bucket of its own


def test_embedded_rotation_keeps_the_old_key_for_its_grace(clients: tuple[Clients, Clock]) -> None:
    store, clock = clients
    client = Client("alice", datetime(2026, 1, 1, tzinfo=UTC), quota_items=3, rate=0.5, priority=Priority.BULK)
    assert store.add(client, "old")
    assert not store.add(client, "other")
    assert store.by_key("old") == client
    assert store.rotate("alice", "new", 60.0)
    assert store.by_key("old") == client and store.by_key("new") == client
    clock.now += 61
    assert store.by_key("old") is None and store.by_key("new") == client
    assert store.revoke("alice")
    assert store.by_key("new") is None and store.get("alice") is not None and store.get("alice").revoked
    assert not store.rotate("alice", "newer", 60.0)
    assert not store.revoke("nobody") and store.by_key("nothing") is None


def test_an_embedded_file_from_before_clients_gives_its_media_to_the_default_client(tmp_path: Path) -> None:
    import sqlite3

    from thumbnailify.backends.sqlite.schema import SQLiteStore
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE media (media_id TEXT PRIMARY KEY, score REAL NOT NULL, state TEXT NOT NULL, record TEXT NOT NULL);
        CREATE TABLE changes (id INTEGER PRIMARY KEY AUTOINCREMENT, media_id TEXT NOT NULL, record TEXT,
                              at REAL NOT NULL);
    """)
    record = ('{"media_type": "image/png", "state": "Completed", "service": "worker", "message": "m", "code": "200",'
              ' "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z", "bytes": "10"}')
    old.execute("INSERT INTO media VALUES ('m1', 1.0, 'Completed', ?)", (record,))
    old.commit()
    old.close()
    store = SQLiteStore(Database(path))
    assert [media_id for media_id, _, _ in store.page(10, None, None, "default")] == ["m1"]
    assert store.page(10, None, None, "alice") == []
    assert store.delete("m1")
    assert Clients(store.db).usage("default").items == 0  # never counted, never uncounted


def test_the_admin_key_cannot_be_the_api_key() -> None:
    from thumbnailify.settings import ConfigError, load_settings
    with pytest.raises(ConfigError, match=r"must differ from auth\.api_key"):
        load_settings({"THUMBNAILIFY_AUTH_API_KEY": "same", "THUMBNAILIFY_AUTH_ADMIN_KEY": "same"})
    assert load_settings({"THUMBNAILIFY_AUTH_ADMIN_KEY": "adm"}).auth.enabled
    assert not load_settings({}).auth.enabled
