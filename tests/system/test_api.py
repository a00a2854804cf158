"""A smoke of the HTTP API against the real processes, per mode: embedded, Redis + RabbitMQ,
media in a bucket, and NATS JetStream. The whole contract runs in process in every mode (tests/api/test_api.py); this
checks that the launcher, the server and the supervised workers put it together the same way."""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from PIL import Image

from tests.conftest import running, service_in
from tests.harness import MODES, NATS_MODE, S3_MODE, Service

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=[*MODES, S3_MODE, NATS_MODE])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    yield from running(service_in(request, tmp_path))


def test_upload_thumbnail_list_delete(service: Service, photos: dict[str, bytes]) -> None:
    ids = []
    for name, data in photos.items():
        content_type = "image/png" if name.endswith(".png") else "image/jpeg"
        media_id = service.upload(data, content_type)
        assert uuid.UUID(media_id).version == 4
        status = service.wait(media_id)
        assert status["state"] == "Completed" and status["service"] == "worker", status
        thumb = service.get(f"/images/{media_id}/thumbnail")
        assert thumb.status_code == 200 and thumb.headers["Content-Type"] == content_type
        image = Image.open(io.BytesIO(base64.b64decode(thumb.content, validate=True)))
        assert max(image.size) == 100
        ids.append(media_id)
    listed = [item["media_id"] for item in service.get("/images", params={"limit": 100}).json()["items"]]
    assert listed == ids[::-1]  # newest first
    service.wait_uploads_removed()
    for media_id in ids:
        assert service.delete(f"/images/{media_id}").status_code == 204
        assert service.get(f"/images/{media_id}").status_code == 404
        assert service.files_of(media_id) == [] and not service.indexed(media_id)


@pytest.fixture
def redis_service(tmp_path: Path) -> Iterator[Service]:
    yield from running(Service("distributed", tmp_path, workers=0, video_workers=0))


def test_an_unreadable_record_in_redis_is_a_clear_error_and_hides_nothing_else(redis_service: Service) -> None:
    """A hash edited by hand (a code that is not a number): its own GET says so, lists skip it."""
    service = redis_service
    bad, prefix = str(uuid.uuid4()), service.env["THUMBNAILIFY_REDIS_PREFIX"]
    stamp = "2026-01-01T00:00:00.000Z"
    client = redis.Redis.from_url(service.redis_url, decode_responses=True)
    try:
        client.hset(f"{prefix}media:{bad}", mapping={
            "media_type": "image/png", "service": "worker", "state": "Error", "message": "planted", "code": "abc",
            "created_at": stamp, "updated_at": stamp})
        client.zadd(f"{prefix}index", {bad: time.time()})
        client.zadd(f"{prefix}index:Error", {bad: time.time()})
        response = service.get(f"/images/{bad}")
        assert response.status_code == 500
        assert response.json()["message"] == (
            "this media's record cannot be read: the stored record's code 'abc' is not a whole number")
        for query in ("", "?state=Error", "?limit=1"):
            listed = service.get(f"/images{query}")
            assert listed.status_code == 200, listed.text
            assert bad not in [item["media_id"] for item in listed.json()["items"]]
        assert service.delete(f"/images/{bad}").status_code == 204
        assert not service.indexed(bad)
    finally:
        client.delete(f"{prefix}media:{bad}")
        client.zrem(f"{prefix}index", bad)
        client.zrem(f"{prefix}index:Error", bad)
        client.close()
