"""The state store's side of resumable uploads, on each store the server can run with (SQLite
in a file, the shared Redis under a prefix of its own): the bound on unfinished uploads, the
offset moved only from where it is, finished uploads no longer counted, expiry and removal.
(The HTTP side on both is in tests/api/test_resumable.py and tests/system/test_resumable.py.)"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from tests.harness import REDIS_URL
from thumbnailify.backends.redis.aio import RedisStore
from thumbnailify.backends.sqlite.aio_store import SQLiteStore
from thumbnailify.server.backends import Store
from thumbnailify.settings import load_settings


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    settings = load_settings({"THUMBNAILIFY_SQLITE_PATH": str(tmp_path / "state.db"),
                              "THUMBNAILIFY_REDIS_URL": REDIS_URL, "THUMBNAILIFY_REDIS_PREFIX": prefix})
    opened: Store = SQLiteStore(settings) if request.param == "sqlite" else RedisStore(settings)
    await opened.open()
    yield opened
    await opened.close()
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def fields(offset: int = 0) -> dict[str, str]:
    return {"length": "100", "offset": str(offset), "filetype": "image/jpeg", "expires": "0"}


async def test_the_bound_counts_unfinished_uploads_only(store: Store) -> None:
    later = time.time() + 3600
    ids = [str(uuid.uuid4()) for _ in range(3)]
    assert await store.create_upload(ids[0], fields(), later, 2)
    assert await store.create_upload(ids[1], fields(), later, 2)
    assert not await store.create_upload(ids[2], fields(), later, 2)
    assert await store.get_upload(ids[2]) is None
    assert await store.update_upload(ids[0], 0, {"offset": "100"})
    assert await store.update_upload(ids[0], 100, {"media_id": "m"})  # finished: no longer counted
    assert await store.create_upload(ids[2], fields(), later, 2)


async def test_the_offset_moves_only_from_where_it_is(store: Store) -> None:
    upload_id = str(uuid.uuid4())
    assert await store.create_upload(upload_id, fields(), time.time() + 3600, 10)
    assert await store.update_upload(upload_id, 0, {"offset": "40"})
    assert not await store.update_upload(upload_id, 0, {"offset": "80"})  # a second writer from the old offset
    found = await store.get_upload(upload_id)
    assert found is not None and found["offset"] == "40" and found["filetype"] == "image/jpeg"
    assert not await store.update_upload(str(uuid.uuid4()), 0, {"offset": "1"})  # none such


async def test_expired_uploads_are_listed_then_deleted(store: Store) -> None:
    now = time.time()
    old, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    assert await store.create_upload(old, fields(), now - 10, 10)
    assert await store.create_upload(fresh, fields(), now + 3600, 10)
    assert await store.expired_uploads(now, 100) == [old]
    assert await store.delete_upload(old)
    assert not await store.delete_upload(old)
    assert await store.expired_uploads(now, 100) == []
    assert await store.get_upload(old) is None
    assert await store.create_upload(str(uuid.uuid4()), fields(), now + 3600, 2)  # the deleted one freed its place
