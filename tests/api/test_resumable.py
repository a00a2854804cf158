"""Resumable uploads (tus 1.0 at /uploads/), in process on the embedded backends: the protocol as
the tus specification states it, the item it ends in, and what a hostile client can send.

(CONTRACT third part: "Resumable uploads (tus 1.0)".) Real tus clients (tuspy, tus-js-client),
cut connections and killed server processes are in tests/system/test_resumable.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
from PIL import Image

from tests.api.conftest import Api, ApiFactory, Reply
from tests.api.test_clients import TENANT_SETTINGS, bearer, new_client
from tests.harness import NATS_MODE
from thumbnailify.clients import Client
from thumbnailify.server.background.sweep import sweep
from thumbnailify.server.resources import RESOURCES, Resources
from thumbnailify.server.resumable import expiry, handlers
from thumbnailify.server.resumable.record import Upload

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {"Content-Type": "application/offset+octet-stream"}
SETTINGS = {"THUMBNAILIFY_SERVER_CORS_ORIGINS": "https://app.example",
            "THUMBNAILIFY_LIMITS_MAX_RESUMABLE_BYTES": "1MiB"}


def photo(seed: int = 1) -> bytes:
    """A JPEG of ~60 KB: big enough to send in several PATCHes."""
    image = Image.effect_noise((200, 150), 40 + seed).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def meta(**values: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items())


# The tests of the store's upload records (create, move the offset by revision, finish, delete,
# expire, bounds) run on the Redis store (with the volume: the distributed mode) and the NATS store
# too; the rest is the server's and runs embedded only.
ON_EVERY_STORE = pytest.mark.parametrize("api_mode", ["embedded", "distributed", NATS_MODE])


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    return await make_api(**SETTINGS)


async def create(api: Api, length: int, metadata: str | None = None, **headers: str) -> Reply:
    sent = TUS | {"Upload-Length": str(length), "Upload-Metadata": meta(filename="cat.jpg", filetype="image/jpeg")}
    if metadata is not None:
        sent["Upload-Metadata"] = metadata
    return await api.request("POST", "/uploads/", headers=sent | headers)


async def created(api: Api, data: bytes, **values: str) -> str:
    reply = await create(api, len(data), meta(**({"filename": "cat.jpg", "filetype": "image/jpeg"} | values)))
    assert reply.status_code == 201, reply.text
    assert reply.headers["Tus-Resumable"] == "1.0.0"
    location = reply.headers["Location"]
    assert location.startswith("/uploads/")
    return location


async def patch(api: Api, location: str, offset: int, data: bytes, **headers: str) -> Reply:
    return await api.request("PATCH", location, data=data,
                             headers=TUS | CHUNK | {"Upload-Offset": str(offset)} | headers)


async def offset_of(api: Api, location: str) -> int:
    reply = await api.request("HEAD", location, headers=TUS)
    assert reply.status_code == 200, reply.status_code
    return int(reply.headers["Upload-Offset"])


async def send_all(api: Api, location: str, data: bytes, pieces: int = 3) -> Reply:
    step = -(-len(data) // pieces)
    reply: Reply | None = None
    for start in range(0, len(data), step):
        reply = await patch(api, location, start, data[start:start + step])
        assert reply.status_code == 204, reply.text
        assert int(reply.headers["Upload-Offset"]) == min(start + step, len(data))
    assert reply is not None
    return reply


def partial_files(api: Api) -> list[str]:
    return api.stored("resumable")


# -- the protocol ---------------------------------------------------------------------------
async def test_options_names_version_extensions_and_limits(api: Api) -> None:
    reply = await api.request("OPTIONS", "/uploads/")
    assert reply.status_code == 204
    assert reply.headers["Tus-Version"] == "1.0.0"
    assert set(reply.headers["Tus-Extension"].split(",")) == {
        "creation", "creation-with-upload", "termination", "expiration", "checksum"}
    assert reply.headers["Tus-Max-Size"] == str(1024 * 1024)
    assert reply.headers["Tus-Checksum-Algorithm"] == "sha256"


@ON_EVERY_STORE
async def test_an_upload_in_chunks_becomes_the_item_a_post_makes(api: Api) -> None:
    data = photo()
    location = await created(api, data)
    head = await api.request("HEAD", location, headers=TUS)
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == ("0", str(len(data)))
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Upload-Metadata"] == meta(filename="cat.jpg", filetype="image/jpeg")
    assert "GMT" in head.headers["Upload-Expires"]
    last = await send_all(api, location, data)
    media_id = last.headers["Thumbnailify-Media-Id"]
    status = await api.get(location)
    assert status.status_code == 200
    assert status.json()["media_id"] == media_id
    assert status.json()["offset"] == status.json()["length"] == len(data)
    done = await api.wait(media_id)
    assert done["state"] == "Completed", done
    assert done["media_type"] == "image/jpeg"
    record = api.record(media_id)
    assert record is not None and record["sha256"] == hashlib.sha256(data).hexdigest()
    assert partial_files(api) == []  # the upload's own bytes are gone once the item has them
    assert {e["state"] for e in done["history"]} >= {"Processing", "Completed"}


@ON_EVERY_STORE
async def test_a_wrong_offset_is_409_and_names_the_right_one(api: Api) -> None:
    data = photo()
    location = await created(api, data)
    assert (await patch(api, location, 0, data[:1000])).status_code == 204
    for wrong in (0, 999, 1001):
        reply = await patch(api, location, wrong, data[wrong:wrong + 10])
        assert reply.status_code == 409, reply.text
        assert reply.headers["Upload-Offset"] == "1000"
        assert "message" in reply.json()
    assert await offset_of(api, location) == 1000


async def test_creation_with_upload_takes_the_first_bytes(api: Api) -> None:
    data = photo()
    reply = await api.request("POST", "/uploads/", data=data[:5000], headers=TUS | CHUNK | {
        "Upload-Length": str(len(data)), "Upload-Metadata": meta(filename="a.jpg", filetype="image/jpeg")})
    assert reply.status_code == 201, reply.text
    assert reply.headers["Upload-Offset"] == "5000"
    last = await patch(api, reply.headers["Location"], 5000, data[5000:])
    assert last.status_code == 204 and "Thumbnailify-Media-Id" in last.headers


async def test_checksums_are_checked_and_a_mismatch_keeps_nothing(api: Api) -> None:
    data = photo()
    location = await created(api, data)
    good = base64.b64encode(hashlib.sha256(data[:2000]).digest()).decode()
    assert (await patch(api, location, 0, data[:2000], **{"Upload-Checksum": f"sha256 {good}"})).status_code == 204
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    reply = await patch(api, location, 2000, data[2000:4000], **{"Upload-Checksum": f"sha256 {wrong}"})
    assert reply.status_code == 460, reply.text
    assert await offset_of(api, location) == 2000
    for bad in ("md5 " + good, "sha256 not*base64", "sha256 " + base64.b64encode(b"short").decode()):
        reply = await patch(api, location, 2000, data[2000:4000], **{"Upload-Checksum": bad})
        assert reply.status_code == 400, (bad, reply.text)
    assert await offset_of(api, location) == 2000


@ON_EVERY_STORE
async def test_termination_removes_the_upload_and_its_bytes(api: Api) -> None:
    data = photo()
    location = await created(api, data)
    await patch(api, location, 0, data[:3000])
    assert partial_files(api) != []
    reply = await api.request("DELETE", location, headers=TUS)
    assert reply.status_code == 204
    assert (await api.request("HEAD", location, headers=TUS)).status_code == 404
    assert (await patch(api, location, 3000, data[3000:])).status_code == 404
    assert partial_files(api) == []


async def test_method_override_for_clients_without_patch(api: Api) -> None:
    data = photo()
    location = await created(api, data)
    reply = await api.request("POST", location, data=data, headers=TUS | CHUNK | {
        "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"})
    assert reply.status_code == 204, reply.text
    assert "Thumbnailify-Media-Id" in reply.headers
    refused = await api.request("POST", location, headers=TUS | {"X-HTTP-Method-Override": "PUT"})
    assert refused.status_code == 400 and "X-HTTP-Method-Override" in refused.json()["message"]


async def test_an_upload_that_is_not_its_declared_type_is_refused_and_removed(api: Api) -> None:
    data = b"<html>" + b"x" * 5000
    location = await created(api, data, filetype="image/png")
    reply = await patch(api, location, 0, data)
    assert reply.status_code == 415, reply.text
    assert "image/png" in reply.json()["message"]
    assert (await api.get(location)).status_code == 404
    assert partial_files(api) == [] and api.stored("raw") == []
    assert (await api.get("/images")).json()["items"] == []


@ON_EVERY_STORE
async def test_an_idempotency_key_in_metadata_gives_the_same_item_again(api: Api) -> None:
    data = photo()
    first = await send_all(api, await created(api, data, idempotency_key="k-1"), data, 1)
    again = await send_all(api, await created(api, data, idempotency_key="k-1"), data, 1)
    assert first.headers["Thumbnailify-Media-Id"] == again.headers["Thumbnailify-Media-Id"]
    second = photo(2)
    other = await patch(api, await created(api, second, idempotency_key="k-1"), 0, second)
    assert other.status_code == 422, other.text
    assert len((await api.get("/images")).json()["items"]) == 1


async def test_cors_lets_a_browser_speak_tus(api: Api) -> None:
    origin = {"Origin": "https://app.example"}
    preflight = await api.request("OPTIONS", "/uploads/x", headers=origin | {
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "tus-resumable, upload-offset, content-type"})
    assert preflight.status_code == 204
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
    for name in ("Tus-Resumable", "Upload-Offset", "Upload-Length", "Upload-Metadata", "Upload-Checksum",
                 "X-HTTP-Method-Override"):
        assert name in preflight.headers["Access-Control-Allow-Headers"]
    reply = await create(api, 100, **origin)
    exposed = reply.headers["Access-Control-Expose-Headers"]
    for name in ("Location", "Tus-Resumable", "Upload-Offset", "Upload-Expires", "Thumbnailify-Media-Id"):
        assert name in exposed


# -- concurrency and cut connections ---------------------------------------------------------
@ON_EVERY_STORE
async def test_of_two_concurrent_patches_one_wins_the_other_is_409(api: Api) -> None:
    data = photo()
    location = await created(api, data)
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield data[:1000]
        await release.wait()
        yield data[1000:2000]

    first = asyncio.create_task(api.request("PATCH", location, data=slow_body(), headers=TUS | CHUNK | {
        "Upload-Offset": "0"}))
    await asyncio.sleep(0.3)  # the first holds the upload's lock now
    second = await patch(api, location, 0, data[:500])
    assert second.status_code == 409, second.text
    assert "another request" in second.json()["message"]
    release.set()
    assert (await first).status_code == 204
    assert await offset_of(api, location) == 2000


async def test_a_patch_cut_off_mid_body_keeps_what_arrived(api: Api) -> None:
    data = photo()
    location = await created(api, data)
    _reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    writer.write((f"PATCH {location} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                  f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                  f"Content-Length: {len(data)}\r\n\r\n").encode() + data[:7000])
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()  # the connection drops with 7000 of the bytes sent
    for _ in range(100):  # the server notices the drop on its next read
        if await offset_of(api, location) == 7000:
            break
        await asyncio.sleep(0.05)
    assert await offset_of(api, location) == 7000
    last = await patch(api, location, 7000, data[7000:])
    assert last.status_code == 204
    record = api.record(last.headers["Thumbnailify-Media-Id"])
    assert record is not None and record["sha256"] == hashlib.sha256(data).hexdigest()


# -- expiry and bounds -------------------------------------------------------------------------
@ON_EVERY_STORE
async def test_expired_uploads_are_410_then_swept_with_their_bytes(make_api: ApiFactory) -> None:
    api = await make_api(THUMBNAILIFY_UPLOADS_RESUMABLE_HOURS="0.0003")  # ~1 s
    data = photo()
    location = await created(api, data)
    await patch(api, location, 0, data[:3000])
    await asyncio.sleep(1.3)
    assert (await api.request("HEAD", location, headers=TUS)).status_code == 410
    assert (await patch(api, location, 3000, data[3000:])).status_code == 410

    async def renew() -> None:
        return None

    counts = await sweep(api.client.app[RESOURCES], renew)
    assert counts["resumable"] == 1
    assert (await api.get(location)).status_code == 404
    assert partial_files(api) == []


# One client's bound (2) and every client's together (3); two clients of their own keys.
BOUNDS = TENANT_SETTINGS | {"THUMBNAILIFY_UPLOADS_MAX_UNFINISHED": "3",
                            "THUMBNAILIFY_UPLOADS_MAX_UNFINISHED_PER_CLIENT": "2"}


async def refused_as_full(api: Api, data: bytes) -> str:
    """A creation past a bound: 503 with Retry-After, and the message that says which."""
    reply = await create(api, len(data))
    assert reply.status_code == 503, reply.text
    assert int(reply.headers["Retry-After"]) > 0
    assert reply.headers["Tus-Resumable"] == "1.0.0"
    return str(reply.json()["message"])


async def finish(api: Api, mine: list[str], data: bytes, _monkeypatch: pytest.MonkeyPatch) -> None:
    await send_all(api, mine[0], data, 1)


async def terminate(api: Api, mine: list[str], _data: bytes, _monkeypatch: pytest.MonkeyPatch) -> None:
    assert (await api.request("DELETE", mine[0], headers=TUS)).status_code == 204


async def expire(api: Api, mine: list[str], _data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep, at a time when the first upload has run out and the ones made after it have not."""
    res = api.client.app[RESOURCES]
    first, second = [await res.store.get_upload(location.rpartition("/")[2]) for location in mine]
    assert first is not None and second is not None
    # Halfway between the two: two creations in a row can be less than a millisecond apart.
    first_expires, second_expires = float(first["expires"]), float(second["expires"])
    assert first_expires < second_expires
    later = (first_expires + second_expires) / 2
    monkeypatch.setattr(expiry, "time", type("Clock", (), {"time": staticmethod(lambda: later)}))

    async def renew() -> None:
        return None

    assert (await sweep(res, renew))["resumable"] == 1
    assert (await api.request("HEAD", mine[0], headers=TUS)).status_code == 404


FREES = {"finished": finish, "terminated": terminate, "expired": expire}


@ON_EVERY_STORE
@pytest.mark.parametrize("free", list(FREES))
async def test_unfinished_uploads_are_bounded_per_client_and_in_total(
        make_api: ApiFactory, monkeypatch: pytest.MonkeyPatch, free: str) -> None:
    api = await make_api(**SETTINGS, **BOUNDS)
    alice, bob = bearer(await new_client(api, "alice")), bearer(await new_client(api, "bob"))
    data = photo()
    api.headers = alice
    mine = [await created(api, data) for _ in range(2)]
    assert "this client has 2 unfinished uploads, its limit" in await refused_as_full(api, data)
    api.headers = bob
    await created(api, data)  # alice's bound is hers alone
    assert "of all clients together" in await refused_as_full(api, data)  # bob's own is not full, the total is

    api.headers = alice
    await FREES[free](api, mine, data, monkeypatch)
    await created(api, data)  # the place it freed is alice's again
    assert "this client has 2" in await refused_as_full(api, data)
    api.headers = bob
    assert "of all clients together" in await refused_as_full(api, data)


# -- hostile requests: each a clear 4xx, never a 500 -----------------------------------------------
@pytest.mark.parametrize(("headers", "status"), [
    ({"Tus-Resumable": "0.2.2"}, 412),
    ({"Upload-Length": "-1"}, 400),
    ({"Upload-Length": "12abc"}, 400),
    ({"Upload-Length": "99999999999999999999999"}, 400),
    ({"Upload-Length": "0"}, 400),
    ({"Upload-Length": str(1024 * 1024 + 1)}, 413),
    ({"Upload-Defer-Length": "1"}, 400),
    ({"Upload-Metadata": "filename not-base64!,filetype aW1hZ2UvanBlZw=="}, 400),
    ({"Upload-Metadata": meta(filename="a.jpg", filetype="image/jpeg") + ",filename YQ=="}, 400),
    ({"Upload-Metadata": meta(filename="a.jpg", filetype="text/html")}, 415),
    ({"Upload-Metadata": meta(filename="a.jpg")}, 415),
    ({"Upload-Metadata": meta(filename="x" * 300, filetype="image/jpeg")}, 400),
    ({"Upload-Metadata": meta(filename="a\nb.jpg", filetype="image/jpeg")}, 400),
    ({"Upload-Metadata": meta(filename="a.jpg", filetype="image/jpeg", junk="y" * 5000)}, 400),
    ({"Upload-Metadata": meta(filetype="image/jpeg", idempotency_key="\u00e9")}, 400),
    ({"Upload-Metadata": meta(filetype="image/jpeg", callback_url="http://example.com/")}, 400),
])
async def test_hostile_creations(api: Api, headers: dict[str, str], status: int) -> None:
    sent = TUS | {"Upload-Length": "100", "Upload-Metadata": meta(filename="a.jpg", filetype="image/jpeg")}
    reply = await api.request("POST", "/uploads/", headers=sent | headers)
    assert reply.status_code == status, reply.text
    assert reply.json()["message"]
    assert reply.headers["Tus-Resumable"] == "1.0.0"


async def test_creation_refusals_are_in_the_words_a_post_gets(api: Api) -> None:
    """The page sends every file by tus: what it shows a person is this message."""
    text = await create(api, 100, meta(filename="notes.txt", filetype="text/plain"))
    post = await api.request("POST", "/images", params={"encoding": "binary"}, data=b"words",
                             headers={"Content-Type": "text/plain"})
    assert (text.status_code, post.status_code) == (415, 415)
    assert text.json()["message"] == post.json()["message"]
    assert text.json()["message"].startswith("'text/plain' isn't a photo or video this service takes; send one of "
                                             "image/jpeg, ")
    big = await create(api, 1024 * 1024 + 1)
    assert big.status_code == 413
    assert big.json()["message"] == "the file is too large: the limit is 1 MB"
    assert big.headers["Tus-Max-Size"] == str(1024 * 1024)  # the exact figure for programs


async def test_a_10_kb_filename_is_a_400_from_the_http_layer(api: Api) -> None:
    """Its Upload-Metadata (13 KB of base64) is past the HTTP parser's 8190 bytes a header may
    have: a JSON 400 as for any malformed request, before any tus handler (so without
    Tus-Resumable), and nothing kept."""
    reply = await create(api, 100, meta(filename="x" * 10_000, filetype="image/jpeg"))
    assert reply.status_code == 400, reply.text
    assert reply.json()["message"]
    assert partial_files(api) == []
    assert (await create(api, 100)).status_code == 201  # the server goes on


async def test_hostile_patches(api: Api) -> None:
    data = photo()
    location = await created(api, data)
    cases: list[tuple[dict[str, str], bytes, int]] = [
        ({"Upload-Offset": "-5"}, b"x", 400),
        ({"Upload-Offset": "zero"}, b"x", 400),
        ({"Upload-Offset": "0", "Content-Type": "application/octet-stream"}, b"x", 415),
        ({"Upload-Offset": "0", "Content-Encoding": "gzip"}, b"x", 415),
        ({"Upload-Offset": "0", "Tus-Resumable": "2.0.0"}, b"x", 412),
        ({"Upload-Offset": "0"}, data + b"more", 413),
    ]
    for headers, body, status in cases:
        reply = await api.request("PATCH", location, data=body, headers=TUS | CHUNK | headers)
        assert reply.status_code == status, (headers, reply.text)
        assert reply.json()["message"]
    missing = await api.request("PATCH", location, data=b"x", headers=TUS | CHUNK)
    assert missing.status_code == 400
    assert await offset_of(api, location) == 0


async def test_bytes_past_the_length_in_a_chunked_body_are_refused(api: Api) -> None:
    data = photo()
    location = await created(api, data)

    async def too_long() -> AsyncIterator[bytes]:
        yield data
        yield b"past the end"

    reply = await api.request("PATCH", location, data=too_long(), headers=TUS | CHUNK | {"Upload-Offset": "0"})
    assert reply.status_code == 413, reply.text
    assert await offset_of(api, location) == 0


@pytest.mark.parametrize("upload_id", [
    "00000000-0000-4000-8000-000000000000",  # well formed, never created
    "not-an-id", "..%2F..%2Fstate.db", "3F2504E0-4F89-41D3-9A0C-0305E82C3301",
])
async def test_unknown_ids_and_path_tricks_are_404(api: Api, upload_id: str) -> None:
    for method in ("HEAD", "PATCH", "DELETE", "GET"):
        reply = await api.request(method, f"/uploads/{upload_id}", data=b"x" if method == "PATCH" else None,
                                  headers=TUS | CHUNK | {"Upload-Offset": "0"})
        assert reply.status_code == 404, (method, reply.text)
    assert partial_files(api) == []


async def test_a_patch_that_trickles_is_cut_at_the_idle_timeout_and_keeps_what_arrived(
        make_api: ApiFactory) -> None:
    api = await make_api(THUMBNAILIFY_LIMITS_UPLOAD_IDLE_TIMEOUT="0.5")
    data = photo()
    location = await created(api, data)

    async def trickle() -> AsyncIterator[bytes]:
        yield data[:4000]
        await asyncio.sleep(3)  # silent past the idle timeout
        yield data[4000:]

    with contextlib.suppress(aiohttp.ClientError):  # the server answers 408 and closes the connection
        reply = await api.request("PATCH", location, data=trickle(), headers=TUS | CHUNK | {"Upload-Offset": "0"})
        assert reply.status_code == 408, reply.text
    assert await offset_of(api, location) == 4000
    assert (await patch(api, location, 4000, data[4000:])).status_code == 204


async def test_an_upload_whose_bytes_were_lost_is_a_503_never_zeros(api: Api) -> None:
    data = photo()
    location = await created(api, data)
    await patch(api, location, 0, data[:3000])
    (api.media_dir("resumable") / location.rpartition("/")[2]).unlink()  # the volume lost the file
    reply = await patch(api, location, 3000, data[3000:])
    assert reply.status_code == 503, reply.text
    assert reply.json()["message"] == "files is unavailable, try again later"
    assert api.stored("raw") == []


async def test_the_finish_runs_within_the_patchs_upload_slot(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The finish runs the bytes through the upload chain again (a buffer per upload, a bucket's
    parts): it counts against limits.upload_memory as the PATCH that brought the last bytes does."""
    slots_taken: list[int] = []
    real = handlers.finish

    async def noted(res: Resources, upload: Upload, client: Client) -> str:
        slots_taken.append(res.upload_slots.in_flight)
        return await real(res, upload, client)

    monkeypatch.setattr(handlers, "finish", noted)
    data = photo()
    location = await created(api, data)
    assert (await patch(api, location, 0, data[:20_000])).status_code == 204
    reply = await patch(api, location, 20_000, data[20_000:])
    assert reply.status_code == 204, reply.text
    assert slots_taken == [1]
    assert (await api.wait(reply.headers["Thumbnailify-Media-Id"]))["state"] == "Completed"
    assert api.client.app[RESOURCES].upload_slots.in_flight == 0
