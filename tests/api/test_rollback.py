"""An upload answered 503 keeps nothing, even when its job was delivered after all."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.server.resources import RESOURCES


async def test_a_job_delivered_despite_a_lost_confirm_leaves_no_thumbnail(
        api: Api, photos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue took the job but its confirm never arrived: the server answers 503 and rolls back.
    A worker that ran the job in between must not leave a thumbnail nobody can name."""
    publisher = api.client.app[RESOURCES].publisher
    publish = publisher.publish

    async def publish_then_lose_the_confirm(media_id: str, media_type: str) -> None:
        await publish(media_id, media_type)
        assert await api.drain() == 1  # a worker finished it before the server heard back
        raise BackendUnavailable("queue", "the confirm was lost")

    monkeypatch.setattr(publisher, "publish", publish_then_lose_the_confirm)
    response = await api.post(photos["coffee.jpg"], "image/jpeg")
    assert response.status_code == 503, response.text
    assert (await api.get("/images")).json()["items"] == []
    assert api.stored("raw") == [] and api.stored("thumbs") == []
