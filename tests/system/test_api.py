"""The HTTP API end to end against the real service on Redis + RabbitMQ, with media on a volume
and in a bucket (CONTRACT.md, "HTTP API"). The embedded mode runs the same tests in process
(tests/api/test_api.py): behaviour must not differ between the modes."""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from PIL import Image

from tests.conftest import running, service_in
from tests.harness import S3_MODE, Service, wait_until

pytestmark = pytest.mark.timeout(120)
API_MODES = ("distributed", S3_MODE)  # the whole contract holds with media in a bucket too


@pytest.fixture(scope="module", params=API_MODES)
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from running(service_in(request, tmp_path_factory.mktemp(request.param)))


@pytest.fixture(scope="module", params=API_MODES)
def idle_service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from running(service_in(request, tmp_path_factory.mktemp(f"idle-{request.param}"), workers=0))


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_photo_round_trip(service: Service, photos: dict[str, bytes]) -> None:
    for name, data in photos.items():
        content_type = "image/png" if name.endswith(".png") else "image/jpeg"
        response = service.post(data, content_type)
        assert response.status_code == 202, response.text
        body = response.json()
        media_id = body["media_id"]
        assert response.headers["Location"] == f"/images/{media_id}"
        assert uuid.UUID(media_id).version == 4
        assert body["state"] == "Processing" and body["service"] == "webserver"
        assert body["media_type"] == content_type

        status = service.wait(media_id)
        assert status["state"] == "Completed", status
        assert status["http_status"] == 200
        assert status["thumbnail"] == f"/images/{media_id}/thumbnail"
        assert status["service"] == "worker"

        thumb = service.get(f"/images/{media_id}/thumbnail")
        assert thumb.status_code == 200
        assert thumb.headers["Content-Type"] == content_type
        image = decoded(base64.b64decode(thumb.content, validate=True))
        source = decoded(data)
        assert image.format == ("PNG" if content_type == "image/png" else "JPEG")
        assert max(image.size) == 100 and min(image.size) <= 100
        exact = min(100 / source.width, 100 / source.height)
        assert abs(image.width - source.width * exact) <= 1, (name, image.size, source.size)
        assert abs(image.height - source.height * exact) <= 1, (name, image.size, source.size)


def test_small_image_is_not_enlarged(service: Service) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, "PNG")
    media_id = service.upload(buffer.getvalue(), "image/png")
    assert service.wait(media_id)["state"] == "Completed"
    data, content_type = service.thumbnail(media_id)
    assert content_type == "image/png"
    assert decoded(data).size == (40, 30)


def test_binary_thumbnail_is_cacheable(service: Service, photos: dict[str, bytes]) -> None:
    media_id = service.upload(photos["coffee.jpg"], "image/jpeg")
    service.wait(media_id)
    response = service.get(f"/images/{media_id}/thumbnail", params={"encoding": "binary"})
    assert response.status_code == 200
    assert response.content.startswith(b"\xff\xd8\xff")
    etag = response.headers["ETag"]
    assert "max-age" in response.headers["Cache-Control"]
    again = service.get(
        f"/images/{media_id}/thumbnail", params={"encoding": "binary"}, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304
    assert service.get(f"/images/{media_id}/thumbnail", params={"encoding": "hex"}).status_code == 400


def test_line_broken_base64_is_accepted(service: Service, photos: dict[str, bytes]) -> None:
    body = base64.encodebytes(photos["chelsea.png"])  # 76-column lines, as the base64 CLI prints
    assert b"\n" in body
    response = service.post(body, "image/png", raw=True)
    assert response.status_code == 202, response.text
    assert service.wait(response.json()["media_id"])["state"] == "Completed"


def test_jpg_alias_and_parameters(service: Service, photos: dict[str, bytes]) -> None:
    response = service.post(photos["coffee.jpg"], "IMAGE/JPG; charset=binary")
    assert response.status_code == 202, response.text
    assert response.json()["media_type"] == "image/jpeg"


def test_delete_removes_every_trace(service: Service, photos: dict[str, bytes]) -> None:
    media_id = service.upload(photos["astronaut.jpg"], "image/jpeg")
    assert service.wait(media_id)["state"] == "Completed"
    # The worker removes the upload just after it records Completed (retention.raw_hours: 0).
    wait_until(lambda: [p.parent.name for p in service.files_of(media_id)] == ["thumbs"], 10, "the upload removed")
    assert service.record(media_id) is not None
    response = service.delete(f"/images/{media_id}")
    assert response.status_code == 204
    assert service.files_of(media_id) == []
    assert service.record(media_id) is None
    assert not service.indexed(media_id)
    assert service.get(f"/images/{media_id}").status_code == 404
    assert service.get(f"/images/{media_id}/thumbnail").status_code == 404
    assert service.delete(f"/images/{media_id}").status_code == 404


def test_processing_state_and_conflict(idle_service: Service, photos: dict[str, bytes]) -> None:
    media_id = idle_service.upload(photos["coffee.jpg"], "image/jpeg")
    response = idle_service.get(f"/images/{media_id}")
    assert response.status_code == 202
    body = response.json()
    assert body["state"] == "Processing" and "thumbnail" not in body
    assert body["created_at"].endswith("Z")
    thumb = idle_service.get(f"/images/{media_id}/thumbnail")
    assert thumb.status_code == 409
    assert "Processing" in thumb.json()["message"]
    assert [p.parent.name for p in idle_service.files_of(media_id)] == ["raw"]
    assert idle_service.delete(f"/images/{media_id}").status_code == 204
    assert idle_service.files_of(media_id) == []


def test_error_state_answers_with_worker_code(service: Service, photos: dict[str, bytes]) -> None:
    truncated = photos["chelsea.png"][:400]
    media_id = service.upload(truncated, "image/png")
    status = service.wait(media_id)
    assert status["state"] == "Error", status
    assert status["http_status"] == 422
    assert status["message"]
    assert service.get(f"/images/{media_id}/thumbnail").status_code == 409
    assert service.files_of(media_id) == []  # nothing to keep of a refused upload


def test_list_newest_first_with_pagination(idle_service: Service, photos: dict[str, bytes]) -> None:
    ids = [idle_service.upload(photos["coffee.jpg"], "image/jpeg") for _ in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        response = idle_service.get("/images", params=params)
        assert response.status_code == 200
        page = response.json()
        assert len(page["items"]) <= 3
        seen += [item["media_id"] for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    ours = [media_id for media_id in seen if media_id in ids]
    assert ours == list(reversed(ids))
    assert len(seen) == len(set(seen))
    processing = idle_service.get("/images", params={"state": "Processing", "limit": 1000}).json()["items"]
    assert set(ids) <= {item["media_id"] for item in processing}
    assert idle_service.get("/images", params={"state": "Completed"}).json() == {"items": [], "next": None}


def test_list_by_state(service: Service, photos: dict[str, bytes]) -> None:
    done = service.upload(photos["coffee.jpg"], "image/jpeg")
    failed = service.upload(photos["chelsea.png"][:300], "image/png")
    assert service.wait(done)["state"] == "Completed" and service.wait(failed)["state"] == "Error"

    def listed(state: str) -> set[str]:
        items = service.get("/images", params={"state": state, "limit": 1000}).json()["items"]
        assert {item["state"] for item in items} <= {state}
        return {item["media_id"] for item in items}

    assert done in listed("Completed") and done not in listed("Error") | listed("Processing")
    assert failed in listed("Error") and failed not in listed("Completed") | listed("Processing")
    assert service.delete(f"/images/{failed}").status_code == 204
    assert failed not in listed("Error")


@pytest.mark.parametrize(
    ("params", "status"),
    [({"limit": 0}, 400), ({"limit": 1001}, 400), ({"limit": "x"}, 400), ({"state": "Done"}, 400),
     ({"cursor": "not-a-cursor"}, 400), ({"limit": 1000}, 200)],
)
def test_list_rejects_bad_queries(service: Service, params: dict, status: int) -> None:
    response = service.get("/images", params=params)
    assert response.status_code == status
    if status == 400:
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["message"]


def test_client_errors(service: Service, photos: dict[str, bytes]) -> None:
    png = photos["chelsea.png"]
    unpadded = base64.b64encode(png + b"\0" * (len(png) % 3 == 0)).rstrip(b"=")
    cases = [
        (service.post(png, None), 400, "Content-Type"),
        (service.post(b"", "image/png", raw=True), 400, "empty"),
        (service.post(b"\n\n", "image/png", raw=True), 400, "empty"),
        (service.post(b"iVBORw0KGgo*", "image/png", raw=True), 400, "base64"),
        (service.post(unpadded, "image/png", raw=True), 400, "padding"),
        (service.post(png, "image/tiff"), 415, "image/tiff"),
        (service.post(png, "text/plain"), 415, "text/plain"),
        (service.post(png, "image/jpeg"), 415, "image/png"),
        (service.post(b"%!PS-Adobe-3.0\n%%EOF\n", "image/jpeg"), 415, "postscript"),
        (service.get("/images/not-a-uuid"), 404, "no such media"),
        (service.get(f"/images/{uuid.uuid4()}"), 404, "no such media"),
        (service.get(f"/images/{uuid.uuid4()}/thumbnail"), 404, "no such media"),
        (service.delete(f"/images/{uuid.uuid4()}"), 404, "no such media"),
        (service.get("/images/../../etc/passwd"), 404, ""),
        (service.get("/nowhere"), 404, ""),
        (service.http.put(f"{service.url}/images"), 405, ""),
    ]
    for response, status, fragment in cases:
        assert response.status_code == status, (response.request.method, response.request.url, response.text)
        assert response.headers["Content-Type"].startswith("application/json")
        assert fragment.lower() in response.json()["message"].lower()


def test_too_large_upload_is_refused_early(service: Service) -> None:
    limit = 20 * 1024 * 1024
    body = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(limit))
    response = service.post(body, "image/png", raw=True)
    assert response.status_code == 413
    assert "too large" in response.json()["message"]
    assert service.stored("raw") == []


def test_operations_endpoints(service: Service) -> None:
    assert service.get("/health").json() == {"status": "ok", "sizes": {"default": [100, 100]}}
    ready = service.get("/ready")
    assert ready.status_code == 200
    expected = {"distributed": ["redis", "rabbitmq", "files"], S3_MODE: ["redis", "rabbitmq", "s3"]}[service.mode]
    assert ready.json()["backends"] == expected
    metrics = service.get("/metrics")
    assert metrics.status_code == 200
    assert "thumbnailify_http_requests_total" in metrics.text
    assert service.get("/openapi.json").json()["openapi"].startswith("3.1")


def test_every_answer_says_nosniff(service: Service, photos: dict[str, bytes]) -> None:
    """A browser never guesses a type: not for a thumbnail, a status, an error or an operation."""
    media_id = service.upload(photos["coffee.jpg"], "image/jpeg")
    service.wait(media_id)
    answers = [
        service.get(f"/images/{media_id}/thumbnail", params={"encoding": "binary"}),
        service.get(f"/images/{media_id}/thumbnail"),
        service.get(f"/images/{media_id}"),
        service.get("/images"),
        service.get("/images/not-an-id"),
        service.post(b"<html><script>alert(1)</script>", "text/html"),
        service.get("/metrics"),
        service.get("/ready"),
        service.get("/"),
    ]
    assert [(a.status_code, a.headers.get("X-Content-Type-Options")) for a in answers] == [
        (status, "nosniff") for status in (200, 200, 200, 200, 404, 415, 200, 200, 200)
    ]
    with service.http.get(f"{service.url}/images/{media_id}/events", stream=True, timeout=30) as events:
        assert events.headers.get("X-Content-Type-Options") == "nosniff"


def test_an_unreadable_record_in_redis_is_a_clear_error_and_hides_nothing_else(service: Service) -> None:
    """A hash edited by hand (a code that is not a number): its own GET says so, lists skip it."""
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
