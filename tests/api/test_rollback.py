"""An upload answered 503 keeps nothing, even when its job was delivered after all."""

from __future__ import annotations

import asyncio

import pytest

from tests.api.conftest import Api
from thumbnailify.lanes import Priority
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.server.resources import RESOURCES


async def test_a_job_delivered_despite_a_lost_confirm_leaves_no_thumbnail(
        api: Api, photos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue took the job but its confirm never arrived: the server answers 503 and rolls back.
    A worker that ran the job in between must not leave a thumbnail nobody can name."""
    publisher = api.client.app[RESOURCES].publisher
    publish = publisher.publish

    async def publish_then_lose_the_confirm(media_id: str, media_type: str, lane: Priority, client: str) -> None:
        await publish(media_id, media_type, lane, client)
        assert await api.drain() == 1  # a worker finished it before the server heard back
        raise BackendUnavailable("queue", "the confirm was lost")

    monkeypatch.setattr(publisher, "publish", publish_then_lose_the_confirm)
    response = await api.post(photos["coffee.jpg"], "image/jpeg")
    assert response.status_code == 503, response.text
    assert (await api.get("/images")).json()["items"] == []
    assert api.stored("raw") == [] and api.stored("thumbs") == []


async def test_a_record_written_as_the_store_went_away_is_removed_once_it_is_back(
        api: Api, photos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """The store applied the new record but its reply was lost, and it is still out when the server
    rolls back: the upload is a 503, and the record goes as soon as the store answers again."""
    store = api.client.app[RESOURCES].store
    create, delete = store.create, store.delete
    outage = {"deletes_refused": 0}

    async def create_then_lose_the_reply(*args: object) -> None:
        await create(*args)  # type: ignore[arg-type]
        raise BackendUnavailable("store", "the reply was lost")

    async def delete_while_out(media_id: str) -> bool:
        if outage["deletes_refused"] < 2:  # the store is out for the rollback and its first retry
            outage["deletes_refused"] += 1
            raise BackendUnavailable("store", "connection refused")
        return await delete(media_id)

    monkeypatch.setattr(store, "create", create_then_lose_the_reply)
    monkeypatch.setattr(store, "delete", delete_while_out)
    response = await api.post(photos["coffee.jpg"], "image/jpeg")
    assert response.status_code == 503, response.text
    assert len((await api.get("/images")).json()["items"]) == 1  # still there while the store is out
    for _ in range(50):
        if not (await api.get("/images")).json()["items"]:
            break
        await asyncio.sleep(0.1)
    assert (await api.get("/images")).json()["items"] == []
    assert outage["deletes_refused"] == 2
    assert api.stored("raw") == [] and api.stored("thumbs") == []
