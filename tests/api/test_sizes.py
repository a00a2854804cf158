"""Named thumbnail sizes (`thumbnail.sizes`) in process, embedded and on Redis + RabbitMQ, and items
stored before there were any.

CONTRACT.md, second part, "Media": every size from one decode, `?size=` picks one (default the
first), an unknown name is a 400, the status body lists the sizes; each size has its own ETag.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from PIL import Image, ImageSequence, ImageStat

from tests.api.conftest import Api, ApiFactory, Reply
from tests.corpus import animated_gif, fit_size
from tests.harness import NATS_MODE
from thumbnailify.backends.nats.records import Records
from thumbnailify.settings import Settings

SIZES = "default=100x100,large=400x400,tiny=32x32"
BOXES = {"default": 100, "large": 400, "tiny": 32}


@pytest.fixture(params=["embedded", "distributed"])
def api_mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def sized(make_api: ApiFactory) -> Api:
    return await make_api(THUMBNAILIFY_THUMBNAIL_SIZES=SIZES)


async def binary(service: Api, media_id: str, headers: dict[str, str] | None = None, **params: str) -> Reply:
    return await service.get(f"/images/{media_id}/thumbnail", params={"encoding": "binary", **params},
                             headers=headers)


def forget_sizes(service: Api, media_id: str) -> None:
    """Make the record look like one written before `sizes` existed."""
    forget_fields(service, media_id, "sizes")


async def forget_nats_fields(settings: Settings, media_id: str, names: tuple[str, ...]) -> None:
    records = Records(settings)
    await records.open()
    try:
        found = await records.read("records", media_id)
        assert found is not None
        kept = {name: value for name, value in found[0].items() if name not in names}
        assert await records.swap("records", media_id, kept, found[1])
    finally:
        await records.close()


def forget_fields(service: Api, media_id: str, *names: str) -> None:
    """Make the record look like one written before these fields existed."""
    if service.mode == NATS_MODE:
        with ThreadPoolExecutor(1) as pool:  # its own event loop: the test's is running (and waits)
            pool.submit(asyncio.run, forget_nats_fields(service.settings, media_id, names)).result()
        return
    if service.mode != "embedded":
        client = redis.Redis.from_url(service.redis_url, decode_responses=True)
        try:
            client.hdel(f"{service.env['THUMBNAILIFY_REDIS_PREFIX']}media:{media_id}", *names)
        finally:
            client.close()
        return
    paths = ", ".join(f"'$.{name}'" for name in names)
    with sqlite3.connect(service.settings.path(service.settings.sqlite.path)) as conn:
        conn.execute(f"UPDATE media SET record = json_remove(record, {paths}) WHERE media_id = ?", (media_id,))
    conn.close()


async def test_every_size_from_one_upload(sized: Api, photos: dict[str, bytes]) -> None:
    source = Image.open(io.BytesIO(photos["coffee.jpg"])).convert("RGB")
    media_id = await sized.upload(photos["coffee.jpg"], "image/jpeg")
    status = await sized.wait(media_id)
    assert status["state"] == "Completed", status
    want = {name: list(fit_size(*source.size, box)) for name, box in BOXES.items()}
    assert status["sizes"] == want
    assert list(status["sizes"]) == ["default", "large", "tiny"]  # config order
    etags = set()
    for name, (width, height) in want.items():
        response = await binary(sized, media_id, size=name)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "image/jpeg"
        image = Image.open(io.BytesIO(response.content)).convert("RGB")
        assert image.size == (width, height)
        mean, expected = ImageStat.Stat(image).mean, ImageStat.Stat(source).mean
        assert all(abs(a - b) < 12 for a, b in zip(mean, expected, strict=True)), (name, mean, expected)
        etags.add(response.headers["ETag"])
    assert len(etags) == 3
    default = await binary(sized, media_id)
    assert default.content == (await binary(sized, media_id, size="default")).content
    again = await binary(sized, media_id, size="large")
    cached = await binary(sized, media_id, size="large", headers={"If-None-Match": again.headers["ETag"]})
    assert cached.status_code == 304
    folder = sized.media_dir("thumbs") / media_id
    assert sorted(p.name for p in folder.iterdir()) == ["default.jpg", "large.jpg", "tiny.jpg"]


async def test_unknown_size_is_a_400(sized: Api, photos: dict[str, bytes]) -> None:
    media_id = await sized.upload(photos["chelsea.png"], "image/png")
    assert (await sized.wait(media_id))["state"] == "Completed"
    for params in ({"size": "huge"}, {"size": ""}, {"size": "large", "encoding": "binary"}):
        response = await sized.get(f"/images/{media_id}/thumbnail", params=params)
        if params["size"] == "large":
            assert response.status_code == 200
            continue
        assert response.status_code == 400
        assert response.headers["Content-Type"].startswith("application/json")
        assert "default, large, tiny" in response.json()["message"]


async def test_animation_keeps_its_frames_in_every_size(sized: Api) -> None:
    media_id = await sized.upload(animated_gif(), "image/gif")
    assert (await sized.wait(media_id))["state"] == "Completed"
    for name, box in BOXES.items():
        with Image.open(io.BytesIO((await binary(sized, media_id, size=name)).content)) as image:
            assert image.format == "GIF"
            assert image.size == fit_size(200, 150, box)
            assert sum(1 for _ in ImageSequence.Iterator(image)) == 5


async def test_delete_removes_every_size(sized: Api, photos: dict[str, bytes]) -> None:
    media_id = await sized.upload(photos["astronaut.jpg"], "image/jpeg")
    assert (await sized.wait(media_id))["state"] == "Completed"
    assert (sized.media_dir("thumbs") / media_id).is_dir()
    assert (await sized.delete(f"/images/{media_id}")).status_code == 204
    assert sized.files_of(media_id) == []
    assert not (sized.media_dir("thumbs") / media_id).exists()


async def test_item_stored_before_sizes_existed(sized: Api, photos: dict[str, bytes]) -> None:
    """A record without `sizes` and its one thumbnail at thumbs/<id>.<ext> stay readable and removable."""
    media_id = await sized.upload(photos["coffee.jpg"], "image/jpeg")
    assert (await sized.wait(media_id))["state"] == "Completed"
    thumbs = sized.media_dir("thumbs")
    legacy = thumbs / f"{media_id}.jpg"
    (thumbs / media_id / "default.jpg").rename(legacy)
    for other in (thumbs / media_id).iterdir():
        other.unlink()
    (thumbs / media_id).rmdir()
    forget_sizes(sized, media_id)
    assert "sizes" not in (sized.record(media_id) or {"sizes": "?"})
    status = (await sized.get(f"/images/{media_id}")).json()
    assert status["sizes"] == {"default": [100, 67]}
    response = await binary(sized, media_id)
    assert response.status_code == 200 and response.content == legacy.read_bytes()
    assert (await binary(sized, media_id, size="default")).content == legacy.read_bytes()
    assert (await binary(sized, media_id, size="large")).status_code == 400
    assert (await sized.delete(f"/images/{media_id}")).status_code == 204
    assert not legacy.exists()
    assert json.dumps(sized.files_of(media_id), default=str) == "[]"
