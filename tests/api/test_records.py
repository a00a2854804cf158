"""A damaged record in the store (a value of the wrong form): its own GET says what is wrong, and
nothing else is affected (lists, other items, the worker's jobs)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from contextlib import closing

import pytest
import redis

from tests.api.conftest import Api
from tests.api.test_uploads import png, read_events
from thumbnailify import state
from thumbnailify.backends.loader import load_backend
from thumbnailify.record import State
from thumbnailify.server.resources import RESOURCES
from thumbnailify.worker.backends import TABLE

STAMP = "2026-01-01T00:00:00.000Z"
PLANTED = {"media_type": "image/png", "service": "worker", "state": "Error", "message": "planted", "code": "422",
           "created_at": STAMP, "updated_at": STAMP}


def plant(api: Api, media_id: str, record: dict[str, str]) -> None:
    with closing(sqlite3.connect(api.settings.path(api.settings.sqlite.path))) as conn, conn:
        conn.execute("INSERT INTO media (media_id, score, state, record) VALUES (?, ?, ?, ?)",
                     (media_id, time.time(), record["state"], json.dumps(record)))


async def test_an_unreadable_record_is_a_clear_error_and_hides_nothing_else(api: Api) -> None:
    good = await api.upload(png((200, 10, 10)), "image/png")
    assert (await api.wait(good))["state"] == "Completed"
    bad_code, bad_history = str(uuid.uuid4()), str(uuid.uuid4())
    plant(api, bad_code, PLANTED | {"code": "abc"})
    plant(api, bad_history, PLANTED | {"history": "not json"})

    response = await api.get(f"/images/{bad_code}")
    assert response.status_code == 500
    assert response.json() == {
        "message": "this media's record cannot be read: the stored record's code 'abc' is not a whole number"}
    assert "history 'not json' is not JSON" in (await api.get(f"/images/{bad_history}")).json()["message"]

    for query in ("", "?limit=1", "?state=Error", "?state=Completed"):
        listed = await api.get(f"/images{query}")
        assert listed.status_code == 200, listed.text
        assert [item["media_id"] for item in listed.json()["items"]] == ([] if "Error" in query else [good])
        assert listed.json()["next"] is None
    assert (await api.get(f"/images/{good}")).status_code == 200

    assert (await api.delete(f"/images/{bad_code}")).status_code == 204
    assert api.record(bad_code) is None


async def test_a_job_whose_record_cannot_be_read_ends_as_an_error(api: Api) -> None:
    media_id = str(uuid.uuid4())
    plant(api, media_id, PLANTED | {"state": "Processing", "code": "abc"})
    api.media_dir("raw").mkdir(parents=True, exist_ok=True)
    (api.media_dir("raw") / media_id).write_bytes(png((10, 200, 10)))
    await api.client.app[RESOURCES].publisher.publish(media_id, "image/png")
    await api.drain()
    status = await api.get(f"/images/{media_id}")
    assert status.status_code == 422, status.text  # the Error's own code replaced the broken one
    assert status.json()["state"] == "Error"
    assert "code 'abc' is not a whole number" in status.json()["message"]


@pytest.mark.parametrize("api_mode", ["embedded", "distributed"])
async def test_a_job_whose_history_cannot_be_read_still_ends(api_mode: str, api: Api) -> None:
    """The worker's own write of the outcome starts the history anew rather than fail on it, in the
    Redis script as in SQLite: the item ends as an Error instead of staying Processing."""
    media_id = str(uuid.uuid4())
    planted = PLANTED | {"state": "Processing", "history": "not json"}
    if api_mode == "embedded":
        plant(api, media_id, planted)
    else:
        client = redis.Redis.from_url(api.redis_url)
        client.hset(f"{api.env['THUMBNAILIFY_REDIS_PREFIX']}media:{media_id}", mapping=planted)
        client.close()
    store = load_backend(TABLE, "store", api.settings.backends.store)(api.settings)
    assert store.transition(media_id, State.PROCESSING, state.failed(422, "cannot decode", state.now()))
    status = await api.get(f"/images/{media_id}")
    assert status.status_code == 422, status.text
    assert status.json()["state"] == "Error" and status.json()["message"] == "cannot decode"
    assert [entry["state"] for entry in status.json()["history"]] == ["Error"]  # the unreadable one dropped


async def test_an_event_stream_skips_a_change_it_cannot_read(api: Api) -> None:
    bad = str(uuid.uuid4())
    seen: list[tuple[str, dict]] = []
    async with api.client.get("/events") as response:  # subscribed once the headers are back
        with closing(sqlite3.connect(api.settings.path(api.settings.sqlite.path))) as conn, conn:
            conn.execute("INSERT INTO changes (media_id, record, at) VALUES (?, ?, ?)",
                         (bad, json.dumps(PLANTED | {"history": "not json"}), time.time()))
        good = await api.upload(png((10, 10, 200)), "image/png")
        await api.wait(good)

        async def listen() -> None:
            async for name, body in read_events(response):
                seen.append((name, body))
                if body.get("media_id") == good and body.get("state") == "Completed":
                    return

        await asyncio.wait_for(listen(), 10)
    states = [body["state"] for _, body in seen if body["media_id"] == good]
    assert states[0] == "Processing" and states[-1] == "Completed", states
    assert bad not in [body["media_id"] for _, body in seen]
