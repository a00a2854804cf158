"""What a media library needs from the API: each item's file name and size, the list searched by
name or by content (SHA-256), and messages a person can read. In process on the embedded backends."""

from __future__ import annotations

import hashlib
import io

from PIL import Image
from urllib3 import encode_multipart_formdata

from tests.api.conftest import Api, ApiFactory


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, "PNG")
    return buffer.getvalue()


async def send(api: Api, data: bytes, filename: str | None = None) -> dict:
    params = {"encoding": "binary"} | ({"filename": filename} if filename else {})
    response = await api.request("POST", "/images", params=params, data=data, headers={"Content-Type": "image/png"})
    assert response.status_code == 202, response.text
    return response.json()


async def listed(api: Api, **params: str) -> list[dict]:
    response = await api.get("/images", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_the_status_names_the_file_and_its_size(api: Api) -> None:
    data = png((10, 200, 30))
    accepted = await send(api, data, "Beach day.png")
    assert (accepted["filename"], accepted["bytes"]) == ("Beach day.png", len(data))
    done = await api.wait(accepted["media_id"])
    assert (done["filename"], done["bytes"]) == ("Beach day.png", len(data))
    anonymous = await send(api, png((1, 2, 3)))
    assert "filename" not in anonymous and anonymous["bytes"] > 0
    body, content_type = encode_multipart_formdata([("file", ("from a form.png", data, "image/png"))])
    form = await api.request("POST", "/images", data=body, headers={"Content-Type": content_type})
    listed_form = (await api.get(f"/images/{form.json()['items'][0]['media_id']}")).json()
    assert (listed_form["filename"], listed_form["bytes"]) == ("from a form.png", len(data))


async def test_a_filename_with_control_characters_is_refused(api: Api) -> None:
    for bad in ("evil\nname.png", "x" * 256):
        response = await api.request("POST", "/images", params={"encoding": "binary", "filename": bad},
                                     data=png((1, 1, 1)), headers={"Content-Type": "image/png"})
        assert response.status_code == 400 and "filename" in response.json()["message"]
    assert await listed(api) == []


async def test_the_list_is_searched_by_part_of_a_name_in_any_case(api: Api) -> None:
    names = ["IMG_0001.png", "holiday-beach.png", "Beach sunset.png", "cat.png"]
    ids = {name: (await send(api, png((index, 9, 9)), name))["media_id"] for index, name in enumerate(names)}
    found = await listed(api, filename="beach")
    assert [item["media_id"] for item in found] == [ids["Beach sunset.png"], ids["holiday-beach.png"]]
    assert await listed(api, filename="nothing like it") == []
    # Paged like the list: a cursor goes on from the last match.
    first = (await api.get("/images", params={"filename": "beach", "limit": 1})).json()
    assert [item["media_id"] for item in first["items"]] == [ids["Beach sunset.png"]]
    rest = await listed(api, filename="beach", cursor=first["next"])
    assert [item["media_id"] for item in rest] == [ids["holiday-beach.png"]]


async def test_the_list_finds_exact_copies_by_sha256(api: Api) -> None:
    data = png((200, 100, 50))
    first = await send(api, data, "a.png")
    await send(api, png((1, 100, 50)), "other.png")
    second = await send(api, data, "copy of a.png")
    digest = hashlib.sha256(data).hexdigest()
    found = await listed(api, sha256=digest.upper())
    assert [item["media_id"] for item in found] == [second["media_id"], first["media_id"]]
    assert await listed(api, sha256="0" * 64) == []
    response = await api.get("/images", params={"sha256": "abc"})
    assert response.status_code == 400 and "sha256" in response.json()["message"]


async def test_refusals_are_in_words_a_person_reads(make_api: ApiFactory) -> None:
    api = await make_api(THUMBNAILIFY_LIMITS_MAX_UPLOAD_BYTES=str(2 * 1024 * 1024))
    text = await api.request("POST", "/images", params={"encoding": "binary"}, data=b"hello",
                             headers={"Content-Type": "text/plain; charset=utf-8"})
    assert text.status_code == 415
    assert text.json()["message"].startswith("'text/plain' isn't a photo or video this service takes")
    words = await api.request("POST", "/images", params={"encoding": "binary"}, data=b"these are words\n" * 8,
                              headers={"Content-Type": "image/jpeg"})
    assert words.status_code == 415
    assert words.json()["message"] == "the file is not image/jpeg: its first bytes look like text"
    big = await api.request("POST", "/images", params={"encoding": "binary", "filename": "big.png"},
                            data=png((1, 1, 1)) + bytes(3 * 1024 * 1024), headers={"Content-Type": "image/png"})
    assert big.status_code == 413
    assert "too large" in big.json()["message"] and "2 MB" in big.json()["message"]
    assert "bytes" not in big.json()["message"]
