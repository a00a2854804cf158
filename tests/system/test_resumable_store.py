"""The state store's side of resumable uploads, on each store the server can run with (SQLite
in a file, the shared Redis under a prefix of its own, the shared NATS under a stream of its own):
the bounds on unfinished uploads (one client's and every client's), the offset moved only from
where it is, finished uploads no longer counted, expiry and removal.
(The HTTP side is in tests/api/test_resumable.py and tests/system/test_resumable.py.)"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis

from tests.harness import NATS_URL, REDIS_URL, on_nats, remove_nats_stream
from thumbnailify.backends.nats.aio import NatsStore
from thumbnailify.backends.nats.records import encode
from thumbnailify.backends.redis.aio import RedisStore
from thumbnailify.backends.sqlite.aio_store import SQLiteStore
from thumbnailify.backends.sqlite.schema import Database
from thumbnailify.backends.sqlite.uploads import Uploads
from thumbnailify.server.backends import Store
from thumbnailify.settings import load_settings
from thumbnailify.upload_bounds import Full, UploadBounds

STORES = {"sqlite": SQLiteStore, "redis": RedisStore, "nats": NatsStore}
ROOMY = UploadBounds(total=10, per_client=10)


def store_env(tmp_path: Path) -> dict[str, str]:
    """Each store's settings, under names of the test's own."""
    tag = f"test-{uuid.uuid4().hex[:10]}"
    return {"THUMBNAILIFY_SQLITE_PATH": str(tmp_path / "state.db"), "THUMBNAILIFY_REDIS_URL": REDIS_URL,
            "THUMBNAILIFY_REDIS_PREFIX": f"{tag}:", "THUMBNAILIFY_NATS_SERVERS": NATS_URL,
            "THUMBNAILIFY_NATS_STREAM": tag}


@pytest.fixture(params=list(STORES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    env = store_env(tmp_path)
    opened: Store = STORES[request.param](load_settings(env))
    await opened.open()
    yield opened
    await opened.close()
    tag = env["THUMBNAILIFY_NATS_STREAM"]
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{tag}:*"))
        if keys:
            client.delete(*keys)
        client.close()
    elif request.param == "nats":
        on_nats(env, remove_nats_stream)


def fields(owner: str = "alice", offset: int = 0) -> dict[str, str]:
    return {"length": "100", "offset": str(offset), "filetype": "image/jpeg", "expires": "0", "owner": owner}


async def finish(store: Store, upload_id: str) -> None:
    assert await store.update_upload(upload_id, 0, {"offset": "100"})
    assert await store.update_upload(upload_id, 100, {"media_id": "m"})


async def terminate(store: Store, upload_id: str) -> None:
    assert await store.delete_upload(upload_id)


async def expire(store: Store, upload_id: str) -> None:
    """As the sweep does (server/resumable/expiry.py): what ran out is listed, then removed."""
    assert await store.expired_uploads(time.time(), 100) == [upload_id]
    assert await store.delete_upload(upload_id)


FREES: dict[str, Callable[[Store, str], Awaitable[None]]] = {
    "finished": finish, "terminated": terminate, "expired": expire}


@pytest.mark.parametrize("free", list(FREES))
async def test_the_bounds_count_unfinished_uploads_per_client_and_in_total(store: Store, free: str) -> None:
    bounds = UploadBounds(total=3, per_client=2)
    now = time.time()
    alice = [str(uuid.uuid4()) for _ in range(3)]
    bob = [str(uuid.uuid4()) for _ in range(2)]
    # Only alice's first upload has run out (for the "expired" case): the sweep frees it alone.
    assert await store.create_upload(alice[0], fields("alice"), now - 10 if free == "expired" else now + 3600,
                                     bounds) is None
    assert await store.create_upload(alice[1], fields("alice"), now + 3600, bounds) is None
    assert await store.create_upload(alice[2], fields("alice"), now + 3600, bounds) is Full.CLIENT
    assert await store.get_upload(alice[2]) is None  # a refused creation keeps nothing
    assert await store.create_upload(bob[0], fields("bob"), now + 3600, bounds) is None  # alice's bound is hers
    assert await store.create_upload(bob[1], fields("bob"), now + 3600, bounds) is Full.TOTAL  # bob's own is not full
    assert await store.get_upload(bob[1]) is None

    await FREES[free](store, alice[0])
    assert await store.create_upload(alice[2], fields("alice"), now + 3600, bounds) is None
    assert await store.create_upload(str(uuid.uuid4()), fields("alice"), now + 3600, bounds) is Full.CLIENT
    assert await store.create_upload(bob[1], fields("bob"), now + 3600, bounds) is Full.TOTAL


async def test_the_offset_moves_only_from_where_it_is(store: Store) -> None:
    upload_id = str(uuid.uuid4())
    assert await store.create_upload(upload_id, fields(), time.time() + 3600, ROOMY) is None
    assert await store.update_upload(upload_id, 0, {"offset": "40"})
    assert not await store.update_upload(upload_id, 0, {"offset": "80"})  # a second writer from the old offset
    found = await store.get_upload(upload_id)
    assert found == fields(offset=40)  # the fields as written, nothing of the store's own
    assert not await store.update_upload(str(uuid.uuid4()), 0, {"offset": "1"})  # none such


async def test_expired_uploads_are_listed_then_deleted(store: Store) -> None:
    now = time.time()
    old, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    assert await store.create_upload(old, fields(), now - 10, ROOMY) is None
    assert await store.create_upload(fresh, fields(), now + 3600, ROOMY) is None
    assert await store.expired_uploads(now, 100) == [old]
    assert await store.delete_upload(old)
    assert not await store.delete_upload(old)
    assert await store.expired_uploads(now, 100) == []
    assert await store.get_upload(old) is None
    assert await store.get_upload(fresh) is not None


def test_an_uploads_table_from_before_the_per_client_bound_counts_each_rows_client(tmp_path: Path) -> None:
    """A SQLite file whose uploads table has no owner column: opened, each unfinished row counts
    against the client its fields name (rows from before clients: the default one)."""
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE uploads (upload_id TEXT PRIMARY KEY, fields TEXT NOT NULL, expires REAL NOT NULL,"
                " finished INTEGER NOT NULL DEFAULT 0)")
    rows = [("a1", fields("alice")), ("a2", fields("alice")), ("d1", {"length": "1", "offset": "0"})]
    old.executemany("INSERT INTO uploads (upload_id, fields, expires) VALUES (?, ?, ?)",
                    [(upload_id, json.dumps(values), time.time() + 3600) for upload_id, values in rows])
    old.commit()
    old.close()
    uploads = Uploads(Database(path))
    later = time.time() + 3600
    one_each = UploadBounds(total=10, per_client=1)
    assert uploads.create(str(uuid.uuid4()), fields("alice"), later, UploadBounds(10, 2)) is Full.CLIENT
    assert uploads.create(str(uuid.uuid4()), fields("default"), later, one_each) is Full.CLIENT
    assert uploads.create(str(uuid.uuid4()), fields("bob"), later, one_each) is None
    assert uploads.delete("a1")
    assert uploads.create(str(uuid.uuid4()), fields("alice"), later, UploadBounds(10, 2)) is None


async def test_a_nats_upload_from_before_the_per_client_bound_counts_until_it_goes(tmp_path: Path) -> None:
    """Written by a release before it: `open.<id>`, and no `_open` in the record. It counts in the
    total, and its removal takes that key (else it would count for ever)."""
    env = store_env(tmp_path)
    store = NatsStore(load_settings(env))
    try:
        await store.open()
        upload_id = str(uuid.uuid4())
        kept = store.records.kv["uploads"]
        await kept.put(f"upload.{upload_id}", encode(fields("alice") | {"_expires": repr(time.time() + 3600)}))
        await kept.put(f"open.{upload_id}", b"")
        only_one = UploadBounds(total=1, per_client=1)
        assert await store.create_upload(str(uuid.uuid4()), fields("bob"), time.time() + 3600, only_one) is Full.TOTAL
        await terminate(store, upload_id)
        assert await store.create_upload(str(uuid.uuid4()), fields("bob"), time.time() + 3600, only_one) is None
    finally:
        await store.close()
        on_nats(env, remove_nats_stream)
