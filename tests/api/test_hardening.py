"""The server under hostile clients, in process: compressed and padded bodies refused before they
cost anything, private thumbnails behind a key, parsed conditional requests and cursors, CORS for
listed origins only, a non-UTF-8 Authorization header. What needs slow clients on a real socket
server, real processes or an outage stays in tests/system/test_hardening.py.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import uuid

import pytest
from PIL import Image

from tests.api.conftest import Api, ApiFactory, raw_request

# As tests/system/test_hardening.py's `keyed` service: an API key, a CORS origin, short upload timeouts and
# room for one upload.
KEYED_SETTINGS = {
    "THUMBNAILIFY_AUTH_API_KEY": "k3y",
    "THUMBNAILIFY_SERVER_CORS_ORIGINS": "https://app.example,http://127.0.0.1:9",
    "THUMBNAILIFY_LIMITS_UPLOAD_IDLE_TIMEOUT": "1.5",
    "THUMBNAILIFY_LIMITS_UPLOAD_TIMEOUT": "6",
    "THUMBNAILIFY_LIMITS_UPLOAD_MEMORY": "400KiB",
    "THUMBNAILIFY_SERVER_KEEPALIVE_TIMEOUT": "2",
}


def small_png(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
async def keyed(make_api: ApiFactory) -> Api:
    service = await make_api(**KEYED_SETTINGS)
    service.headers["Authorization"] = "Bearer k3y"
    return service


# -- compressed bodies and blank padding cost nothing -----------------------------------------
async def test_compressed_bodies_are_refused_before_inflating(keyed: Api) -> None:
    bomb = gzip.compress(b"\n" * (64 << 20) + base64.b64encode(small_png()), 9)
    for encoding in ("gzip", "deflate", "br", "GZIP"):
        response = await keyed.post(bomb, "image/png", raw=True, headers={"Content-Encoding": encoding})
        assert response.status_code == 415, response.text
        assert "Content-Encoding" in response.json()["message"]
    unauthorised = await keyed.request("POST", "/images", data=bomb, headers={
        "Content-Type": "image/png", "Content-Encoding": "gzip", "Authorization": "Bearer nope"})
    assert unauthorised.status_code == 401
    assert list(keyed.media_dir("raw").iterdir()) == []


async def test_blank_padding_is_capped_by_the_decoded_limit(make_api: ApiFactory) -> None:
    limit = 1 << 20
    service = await make_api(THUMBNAILIFY_LIMITS_MAX_UPLOAD_BYTES=str(limit))
    padded = b"\n" * (3 * limit) + base64.b64encode(small_png())
    response = await service.post(padded, "image/png", raw=True)
    assert response.status_code == 413, response.text
    assert "too large" in response.json()["message"]
    declared = await raw_request(service.port, "POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                               f"Content-Length: {3 * limit}\r\n\r\n")
    assert declared[0] == 413  # told by Content-Length alone, nothing read
    line_broken = base64.encodebytes(small_png() + bytes(limit - 10_000))  # CLI-style lines still fit
    assert (await service.post(line_broken, "image/png", raw=True)).status_code == 202


# -- thumbnails behind a key stay out of shared caches ----------------------------------------
async def test_thumbnails_behind_a_key_are_private(keyed: Api) -> None:
    media_id = await keyed.upload(small_png(), "image/png")
    assert (await keyed.wait(media_id))["state"] == "Completed"
    response = await keyed.get(f"/images/{media_id}/thumbnail", params={"encoding": "binary"})
    assert response.headers["Cache-Control"].startswith("private")
    assert "public" not in response.headers["Cache-Control"]


# -- conditional requests, cursors, CORS --------------------------------------------------------
async def test_if_none_match_is_parsed_not_substring_matched(keyed: Api) -> None:
    media_id = await keyed.upload(small_png(), "image/png")
    await keyed.wait(media_id)
    path = f"/images/{media_id}/thumbnail"
    tag = f"{media_id}-default"
    for header, status in [("*", 304), (f'"other", "{tag}"', 304), (f'W/"{tag}"', 304),
                           (f'"x{tag}x"', 200), (f'"{tag[:-1]}"', 200), (f'"{media_id}-large"', 200)]:
        response = await keyed.get(path, params={"encoding": "binary"}, headers={"If-None-Match": header})
        assert response.status_code == status, header


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_a_cursor_holding_a_non_number_is_400(keyed: Api, value: str) -> None:
    cursor = base64.urlsafe_b64encode(f'[{value}, "{uuid.uuid4()}"]'.encode()).decode()
    response = await keyed.get("/images", params={"cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json()["message"]


async def test_cors_for_listed_origins_only(keyed: Api) -> None:
    preflight = await keyed.request("OPTIONS", "/images", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type", "Authorization": ""})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    listed = await keyed.get("/images", headers={"Origin": "https://app.example"})
    assert listed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Location" in listed.headers["Access-Control-Expose-Headers"]
    no_key = await keyed.get("/images", headers={"Origin": "https://app.example", "Authorization": "Bearer wrong"})
    assert no_key.status_code == 401
    assert no_key.headers["Access-Control-Allow-Origin"] == "https://app.example"  # the page can read why
    other = await keyed.get("/images", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    other_preflight = await keyed.request("OPTIONS", "/images", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in other_preflight.headers


# -- hostile headers ----------------------------------------------------------------------------
async def test_a_non_utf8_authorization_header_is_401(keyed: Api) -> None:
    status, _, payload = await raw_request(keyed.port, b"GET /images HTTP/1.1\r\nHost: x\r\n"
                                                       b"Authorization: Bearer \xff\xfe\xc3\x28\r\n\r\n")
    assert status == 401
    assert json.loads(payload) == {"message": "missing or wrong API key"}
