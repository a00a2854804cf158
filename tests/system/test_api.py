"""A smoke of the HTTP API against the real processes, per mode: embedded, Redis + RabbitMQ, and
media in a bucket. The whole contract runs in process in every mode (tests/api/test_api.py); this
checks that the launcher, the server and the supervised workers put it together the same way."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import running, service_in
from tests.harness import MODES, S3_MODE, Service

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=[*MODES, S3_MODE])
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
