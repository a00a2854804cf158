"""GET /images?similar_to=<media_id>&distance=<0..16>, embedded, on Redis + RabbitMQ and on NATS: near
copies of a photo found by their perceptual hashes, nearest first, paged; refusals with a JSON
message; a deleted item leaves the search."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3

import pytest
import redis
from PIL import Image

from tests.api.conftest import Api
from tests.api.test_sizes import forget_fields
from tests.harness import NATS_MODE
from tests.unit.test_phash import caption
from thumbnailify.backends.nats.records import Records
from thumbnailify.client.cli import main
from thumbnailify.client.session import Client


@pytest.fixture(params=["embedded", "distributed", NATS_MODE])
def api_mode(request: pytest.FixtureRequest) -> str:
    return request.param


def jpeg(picture: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture
async def library(api: Api, photos: dict[str, bytes]) -> dict[str, str]:
    """coffee.jpg, three near copies of it, and two other photographs, all Completed."""
    coffee = Image.open(io.BytesIO(photos["coffee.jpg"])).convert("RGB")
    width, height = coffee.size
    uploads = {
        "original": photos["coffee.jpg"],
        "re-encoded": jpeg(coffee, quality=35),
        "cropped": jpeg(coffee.crop((15, 10, width - 15, height - 10))),
        "captioned": jpeg(caption(coffee)),
        "astronaut": photos["astronaut.jpg"],
        "rocket": photos["rocket_portrait.jpg"],
    }
    ids = {name: await api.upload(data, "image/jpeg") for name, data in uploads.items()}
    await api.drain()
    return ids


async def similar(api: Api, media_id: str, **params: str) -> dict:
    response = await api.get("/images", params={"similar_to": media_id, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def test_near_copies_are_listed_nearest_first(api: Api, library: dict[str, str]) -> None:
    found = await similar(api, library["original"])
    names = {media_id: name for name, media_id in library.items()}
    listed = [(names[item["media_id"]], item["distance"]) for item in found["items"]]
    assert {name for name, _ in listed} == {"re-encoded", "cropped", "captioned"}, listed
    distances = [distance for _, distance in listed]
    assert distances == sorted(distances) and max(distances) <= 10
    assert found["next"] is None
    item = found["items"][0]
    assert item["state"] == "Completed" and item["phash"] and item["placeholder"]
    exact = await similar(api, library["original"], distance="0")
    assert all(item["distance"] == 0 for item in exact["items"])


async def test_pages_follow_the_cursor(api: Api, library: dict[str, str]) -> None:
    everything = [item["media_id"] for item in (await similar(api, library["original"], distance="16"))["items"]]
    paged: list[str] = []
    cursor = None
    while True:
        more = {"cursor": cursor} if cursor else {}
        page = await similar(api, library["original"], distance="16", limit="1", **more)
        paged += [item["media_id"] for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert paged == everything and len(paged) >= 3


async def kept_hashes(service: Api) -> dict[str, str]:
    """media_id -> perceptual hash, as the store keeps them for the search."""
    if service.mode == NATS_MODE:
        records = Records(service.settings)
        await records.open()
        try:
            rows = await records.perceptual_hashes()
        finally:
            await records.close()
        return {rows[at:at + 36]: rows[at + 36:at + 52] for at in range(0, len(rows), 52)}
    if service.mode != "embedded":
        client = redis.Redis.from_url(service.redis_url, decode_responses=True)
        try:
            rows = client.get(f"{service.env['THUMBNAILIFY_REDIS_PREFIX']}phashes") or ""
        finally:
            client.close()
        assert len(rows) % 52 == 0
        return {rows[at:at + 36]: rows[at + 36:at + 52] for at in range(0, len(rows), 52)}
    with sqlite3.connect(service.settings.path(service.settings.sqlite.path)) as conn:
        found = dict(conn.execute("SELECT media_id, phash FROM media WHERE phash IS NOT NULL"))
    conn.close()
    return found


async def test_a_deleted_item_leaves_the_search(api: Api, library: dict[str, str]) -> None:
    assert (await api.delete(f"/images/{library['cropped']}")).status_code == 204
    found = await similar(api, library["original"])
    assert library["cropped"] not in [item["media_id"] for item in found["items"]]
    assert len(found["items"]) == 2


async def test_the_kept_hashes_follow_completions_and_deletes(api: Api, library: dict[str, str]) -> None:
    """Whichever row a deleted item had (the first, one between, the last), the others stay."""
    records = {media_id: (await api.get(f"/images/{media_id}")).json()["phash"] for media_id in library.values()}
    assert await kept_hashes(api) == records
    order = list(await kept_hashes(api))
    for media_id in (order[0], order[2], order[-1]):
        assert (await api.delete(f"/images/{media_id}")).status_code == 204
        del records[media_id]
        assert await kept_hashes(api) == records
    assert (await api.delete(f"/images/{order[0]}")).status_code == 404  # twice: nothing else goes
    assert await kept_hashes(api) == records


@pytest.mark.parametrize(("params", "status", "fragment"), [
    ({"distance": "17"}, 400, "distance must be a whole number from 0 to 16"),
    ({"distance": "-1"}, 400, "distance must be"),
    ({"distance": "ten"}, 400, "distance must be"),
    ({"distance": ""}, 400, "distance must be"),
    ({"state": "Completed"}, 400, "cannot be combined with state"),
    ({"cursor": "not-ours"}, 400, "cursor"),
])
async def test_bad_queries_are_400(api: Api, library: dict[str, str], params: dict[str, str], status: int,
                                   fragment: str) -> None:
    response = await api.get("/images", params={"similar_to": library["original"], **params})
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert fragment in response.json()["message"]


@pytest.mark.parametrize("media_id", ["5f0e8d4c-3b2a-4c1d-9e8f-7a6b5c4d3e2f", "not-a-media-id", "../../etc/passwd"])
async def test_an_unknown_item_is_404(api: Api, media_id: str) -> None:
    response = await api.get("/images", params={"similar_to": media_id})
    assert response.status_code == 404, response.text
    assert "no such media" in response.json()["message"]


@pytest.mark.parametrize("distance", ["17", "3"])
async def test_a_distance_without_similar_to_is_400(api: Api, distance: str) -> None:
    response = await api.get("/images", params={"distance": distance})
    assert response.status_code == 400, response.text
    assert "similar_to" in response.json()["message"]


async def test_an_item_without_a_hash_is_409(api: Api, photos: dict[str, bytes]) -> None:
    waiting = await api.upload(photos["coffee.jpg"], "image/jpeg")  # not drained: Processing
    response = await api.get("/images", params={"similar_to": waiting})
    assert response.status_code == 409, response.text
    assert "Processing" in response.json()["message"]
    await api.drain()
    forget_fields(api, waiting, "phash")  # as a release before the hashes completed it
    response = await api.get("/images", params={"similar_to": waiting})
    assert response.status_code == 409, response.text
    assert "release before" in response.json()["message"]


async def test_the_client_library_and_the_command_line_list_them(api: Api, library: dict[str, str],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    client = Client(api.url)
    found = await asyncio.to_thread(lambda: list(client.similar(library["original"], 16, page=1)))
    direct = await similar(api, library["original"], distance="16")
    assert [item["media_id"] for item in found] == [item["media_id"] for item in direct["items"]]
    assert all("distance" in item for item in found)
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["similar", library["original"], "--distance", "10", "--url", api.url]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    names = {media_id: name for name, media_id in library.items()}
    assert {names[line[0]] for line in lines} == {"re-encoded", "cropped", "captioned"}
    assert [int(line[1]) for line in lines] == sorted(int(line[1]) for line in lines)
    assert await asyncio.to_thread(main, ["status", library["original"], "--url", api.url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["placeholder"]["blurhash"] and shown["phash"] and shown["metadata"]["format"] == "JPEG"


async def test_the_command_line_refuses_a_distance_out_of_range(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["similar", "5f0e8d4c-3b2a-4c1d-9e8f-7a6b5c4d3e2f", "--distance", "17", "--url", api.url])
    assert exited.value.code == 2
    assert "from 0 to 16" in capsys.readouterr().err
