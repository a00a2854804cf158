"""The HTTP API end to end, in process (CONTRACT.md, "HTTP API"), in every mode: embedded, on
Redis + RabbitMQ, with media in a bucket, and on NATS JetStream. Behaviour must not differ between the modes.

tests/system/test_api.py runs a smoke of the same contract against the real processes per mode.
"""

from __future__ import annotations

import base64
import io
import uuid

import pytest
from PIL import Image

from tests.api.conftest import API_MODES, Api
from tests.harness import NATS_MODE, S3_MODE


@pytest.fixture(params=API_MODES)
def api_mode(request: pytest.FixtureRequest) -> str:
    return request.param


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_photo_round_trip(api: Api, photos: dict[str, bytes]) -> None:
    for name, data in photos.items():
        content_type = "image/png" if name.endswith(".png") else "image/jpeg"
        response = await api.post(data, content_type)
        assert response.status_code == 202, response.text
        body = response.json()
        media_id = body["media_id"]
        assert response.headers["Location"] == f"/images/{media_id}"
        assert uuid.UUID(media_id).version == 4
        assert body["state"] == "Processing" and body["service"] == "webserver"
        assert body["media_type"] == content_type

        status = await api.wait(media_id)
        assert status["state"] == "Completed", status
        assert status["http_status"] == 200
        assert status["thumbnail"] == f"/images/{media_id}/thumbnail"
        assert status["service"] == "worker"

        thumb = await api.get(f"/images/{media_id}/thumbnail")
        assert thumb.status_code == 200
        assert thumb.headers["Content-Type"] == content_type
        image = decoded(base64.b64decode(thumb.content, validate=True))
        source = decoded(data)
        assert image.format == ("PNG" if content_type == "image/png" else "JPEG")
        assert max(image.size) == 100 and min(image.size) <= 100
        exact = min(100 / source.width, 100 / source.height)
        assert abs(image.width - source.width * exact) <= 1, (name, image.size, source.size)
        assert abs(image.height - source.height * exact) <= 1, (name, image.size, source.size)


async def test_small_image_is_not_enlarged(api: Api) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, "PNG")
    media_id = await api.upload(buffer.getvalue(), "image/png")
    assert (await api.wait(media_id))["state"] == "Completed"
    data, content_type = await api.thumbnail(media_id)
    assert content_type == "image/png"
    assert decoded(data).size == (40, 30)


async def test_binary_thumbnail_is_cacheable(api: Api, photos: dict[str, bytes]) -> None:
    media_id = await api.upload(photos["coffee.jpg"], "image/jpeg")
    await api.wait(media_id)
    response = await api.get(f"/images/{media_id}/thumbnail", params={"encoding": "binary"})
    assert response.status_code == 200
    assert response.content.startswith(b"\xff\xd8\xff")
    etag = response.headers["ETag"]
    assert "max-age" in response.headers["Cache-Control"]
    again = await api.get(
        f"/images/{media_id}/thumbnail", params={"encoding": "binary"}, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304
    assert (await api.get(f"/images/{media_id}/thumbnail", params={"encoding": "hex"})).status_code == 400


async def test_line_broken_base64_is_accepted(api: Api, photos: dict[str, bytes]) -> None:
    body = base64.encodebytes(photos["chelsea.png"])  # 76-column lines, as the base64 CLI prints
    assert b"\n" in body
    response = await api.post(body, "image/png", raw=True)
    assert response.status_code == 202, response.text
    assert (await api.wait(response.json()["media_id"]))["state"] == "Completed"


async def test_jpg_alias_and_parameters(api: Api, photos: dict[str, bytes]) -> None:
    response = await api.post(photos["coffee.jpg"], "IMAGE/JPG; charset=binary")
    assert response.status_code == 202, response.text
    assert response.json()["media_type"] == "image/jpeg"


async def test_delete_removes_every_trace(api: Api, photos: dict[str, bytes]) -> None:
    media_id = await api.upload(photos["astronaut.jpg"], "image/jpeg")
    assert (await api.wait(media_id))["state"] == "Completed"
    # The worker removed the upload just after it recorded Completed (retention.raw_hours: 0).
    assert [p.parent.name for p in api.files_of(media_id)] == ["thumbs"]
    assert api.record(media_id) is not None and api.indexed(media_id)
    response = await api.delete(f"/images/{media_id}")
    assert response.status_code == 204
    assert api.files_of(media_id) == []
    assert api.record(media_id) is None
    assert not api.indexed(media_id)
    assert (await api.get(f"/images/{media_id}")).status_code == 404
    assert (await api.get(f"/images/{media_id}/thumbnail")).status_code == 404
    assert (await api.delete(f"/images/{media_id}")).status_code == 404


async def test_processing_state_and_conflict(api: Api, photos: dict[str, bytes]) -> None:
    media_id = await api.upload(photos["coffee.jpg"], "image/jpeg")  # no drain: the job waits
    response = await api.get(f"/images/{media_id}")
    assert response.status_code == 202
    body = response.json()
    assert body["state"] == "Processing" and "thumbnail" not in body
    assert body["created_at"].endswith("Z")
    thumb = await api.get(f"/images/{media_id}/thumbnail")
    assert thumb.status_code == 409
    assert "Processing" in thumb.json()["message"]
    assert [p.parent.name for p in api.files_of(media_id)] == ["raw"]
    assert (await api.delete(f"/images/{media_id}")).status_code == 204
    assert api.files_of(media_id) == []


async def test_error_state_answers_with_worker_code(api: Api, photos: dict[str, bytes]) -> None:
    truncated = photos["chelsea.png"][:400]
    media_id = await api.upload(truncated, "image/png")
    status = await api.wait(media_id)
    assert status["state"] == "Error", status
    assert status["http_status"] == 422
    assert status["message"]
    assert (await api.get(f"/images/{media_id}/thumbnail")).status_code == 409
    assert api.files_of(media_id) == []  # nothing to keep of a refused upload


async def test_list_newest_first_with_pagination(api: Api, photos: dict[str, bytes]) -> None:
    ids = [await api.upload(photos["coffee.jpg"], "image/jpeg") for _ in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        response = await api.get("/images", params=params)
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
    processing = (await api.get("/images", params={"state": "Processing", "limit": 1000})).json()["items"]
    assert set(ids) <= {item["media_id"] for item in processing}
    assert (await api.get("/images", params={"state": "Completed"})).json() == {"items": [], "next": None}


async def test_list_by_state(api: Api, photos: dict[str, bytes]) -> None:
    done = await api.upload(photos["coffee.jpg"], "image/jpeg")
    failed = await api.upload(photos["chelsea.png"][:300], "image/png")
    assert (await api.wait(done))["state"] == "Completed" and (await api.wait(failed))["state"] == "Error"

    async def listed(state: str) -> set[str]:
        items = (await api.get("/images", params={"state": state, "limit": 1000})).json()["items"]
        assert {item["state"] for item in items} <= {state}
        return {item["media_id"] for item in items}

    assert done in await listed("Completed") and done not in await listed("Error") | await listed("Processing")
    assert failed in await listed("Error") and failed not in await listed("Completed") | await listed("Processing")
    assert (await api.delete(f"/images/{failed}")).status_code == 204
    assert failed not in await listed("Error")


@pytest.mark.parametrize(
    ("params", "status"),
    [({"limit": 0}, 400), ({"limit": 1001}, 400), ({"limit": "x"}, 400), ({"state": "Done"}, 400),
     ({"cursor": "not-a-cursor"}, 400), ({"limit": 1000}, 200)],
)
async def test_list_rejects_bad_queries(api: Api, params: dict, status: int) -> None:
    response = await api.get("/images", params=params)
    assert response.status_code == status
    if status == 400:
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["message"]


async def test_client_errors(api: Api, photos: dict[str, bytes]) -> None:
    png = photos["chelsea.png"]
    unpadded = base64.b64encode(png + b"\0" * (len(png) % 3 == 0)).rstrip(b"=")
    cases = [
        ("no Content-Type", await api.post(png, None), 400, "Content-Type"),
        ("empty", await api.post(b"", "image/png", raw=True), 400, "empty"),
        ("blank", await api.post(b"\n\n", "image/png", raw=True), 400, "empty"),
        ("bad base64", await api.post(b"iVBORw0KGgo*", "image/png", raw=True), 400, "base64"),
        ("unpadded", await api.post(unpadded, "image/png", raw=True), 400, "padding"),
        ("tiff", await api.post(png, "image/tiff"), 415, "image/tiff"),
        ("text", await api.post(png, "text/plain"), 415, "text/plain"),
        ("png as jpeg", await api.post(png, "image/jpeg"), 415, "image/png"),
        ("postscript", await api.post(b"%!PS-Adobe-3.0\n%%EOF\n", "image/jpeg"), 415, "postscript"),
        ("not a uuid", await api.get("/images/not-a-uuid"), 404, "no such media"),
        ("unknown", await api.get(f"/images/{uuid.uuid4()}"), 404, "no such media"),
        ("unknown thumbnail", await api.get(f"/images/{uuid.uuid4()}/thumbnail"), 404, "no such media"),
        ("delete unknown", await api.delete(f"/images/{uuid.uuid4()}"), 404, "no such media"),
        ("dot dot", await api.get("/images/../../etc/passwd"), 404, ""),
        ("nowhere", await api.get("/nowhere"), 404, ""),
        ("PUT", await api.request("PUT", "/images"), 405, ""),
    ]
    for case, response, status, fragment in cases:
        assert response.status_code == status, (case, response.text)
        assert response.headers["Content-Type"].startswith("application/json")
        assert fragment.lower() in response.json()["message"].lower()


async def test_too_large_upload_is_refused_early(api: Api) -> None:
    limit = 20 * 1024 * 1024
    body = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(limit))
    response = await api.post(body, "image/png", raw=True)
    assert response.status_code == 413
    assert "too large" in response.json()["message"]
    assert api.stored("raw") == []


async def test_operations_endpoints(api: Api) -> None:
    assert (await api.get("/health")).json() == {
        "status": "ok", "sizes": {"default": [100, 100]}, "thumbnail_types": {"default": None}}
    ready = await api.get("/ready")
    assert ready.status_code == 200
    expected = {"embedded": ["sqlite", "sqlite", "files"], "distributed": ["redis", "rabbitmq", "files"],
                S3_MODE: ["redis", "rabbitmq", "s3"], NATS_MODE: ["nats", "nats", "files"]}[api.mode]
    assert ready.json()["backends"] == expected
    metrics = await api.get("/metrics")
    assert metrics.status_code == 200
    assert "thumbnailify_http_requests_total" in metrics.text
    assert (await api.get("/openapi.json")).json()["openapi"].startswith("3.1")


async def test_every_answer_says_nosniff(api: Api, photos: dict[str, bytes]) -> None:
    """A browser never guesses a type: not for a thumbnail, a status, an error or an operation."""
    media_id = await api.upload(photos["coffee.jpg"], "image/jpeg")
    await api.wait(media_id)
    answers = [
        await api.get(f"/images/{media_id}/thumbnail", params={"encoding": "binary"}),
        await api.get(f"/images/{media_id}/thumbnail"),
        await api.get(f"/images/{media_id}"),
        await api.get("/images"),
        await api.get("/images/not-an-id"),
        await api.post(b"<html><script>alert(1)</script>", "text/html"),
        await api.get("/metrics"),
        await api.get("/ready"),
        await api.get("/"),
    ]
    assert [(a.status_code, a.headers.get("X-Content-Type-Options")) for a in answers] == [
        (status, "nosniff") for status in (200, 200, 200, 200, 404, 415, 200, 200, 200)
    ]
    async with api.client.get(f"/images/{media_id}/events") as events:
        assert events.headers.get("X-Content-Type-Options") == "nosniff"
