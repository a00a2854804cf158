"""Upload forms, idempotent retries, history and live events, in process, embedded and on Redis +
RabbitMQ: behaviour must not differ between the modes.

(CONTRACT second part: "Uploads", "History and live status"; webhook URLs refused at POST time.)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis
from PIL import Image
from urllib3 import encode_multipart_formdata

from tests.api.conftest import Api, ApiFactory, Reply
from tests.harness import NATS_MODE, REDIS_URL
from thumbnailify.backends.redis.layout import events_channel
from thumbnailify.server.events import hub as hub_module
from thumbnailify.server.resources import RESOURCES

UPLOAD_SETTINGS = {"THUMBNAILIFY_WEBHOOKS_SECRET": "whsec",
                   "THUMBNAILIFY_WEBHOOKS_ALLOWED_HOSTS": "127.0.0.1:9,*.example.com,[64:ff9b::a9fe:a9fe]",
                   "THUMBNAILIFY_LIMITS_MAX_FILES": "3"}


def png(color: tuple[int, int, int], size: tuple[int, int] = (120, 80)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (160, 90), color).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(params=["embedded", "distributed", NATS_MODE])
def api_mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def svc(make_api: ApiFactory) -> Api:
    return await make_api(**UPLOAD_SETTINGS)


async def listed_ids(service: Api) -> set[str]:
    return {item["media_id"] for item in (await service.get("/images", params={"limit": 1000})).json()["items"]}


async def nothing_kept(service: Api, before: set[str]) -> None:
    assert await listed_ids(service) == before
    raw = service.media_dir("raw")
    assert {p.name for p in raw.iterdir()} <= before  # only uploads still being made


def form(files: list, data: dict | None = None) -> tuple[bytes, str]:
    """A multipart body as requests' `files=` and `data=` make it (the fields, then the files), with
    a boundary of its own each time; and its Content-Type."""
    fields = [*(data or {}).items(),
              *((name, value[1]) if value[0] is None else (name, value) for name, value in files)]
    return encode_multipart_formdata(fields)


async def post_form(service: Api, files: list, data: dict | None = None, *, headers: dict | None = None) -> Reply:
    body, content_type = form(files, data)
    return await service.request("POST", "/images", data=body, headers={"Content-Type": content_type} | (headers or {}))


# -- binary ---------------------------------------------------------------------------------
async def test_binary_upload_round_trip(svc: Api) -> None:
    data = jpeg((200, 40, 40))
    response = await svc.request("POST", "/images", params={"encoding": "binary"}, data=data,
                                 headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert response.headers["Location"] == f"/images/{body['media_id']}"
    assert (await svc.wait(body["media_id"]))["state"] == "Completed"
    thumb, content_type = await svc.thumbnail(body["media_id"])
    assert content_type == "image/jpeg" and Image.open(io.BytesIO(thumb)).size == (100, 56)


async def test_binary_upload_has_the_same_checks(svc: Api) -> None:
    before = await listed_ids(svc)

    async def post(data: bytes, content_type: str, **params: str) -> Reply:
        return await svc.request("POST", "/images", params={"encoding": "binary", **params}, data=data,
                                 headers={"Content-Type": content_type})

    cases = [
        (await post(b"", "image/png"), 400, "empty"),
        (await post(png((1, 2, 3)), "image/jpeg"), 415, "image/png"),
        (await post(base64.b64encode(png((1, 2, 3))), "image/png"), 415, "text"),  # base64 sent as binary
        (await post(png((1, 2, 3)) + bytes(21 << 20), "image/png"), 413, "too large"),
        (await post(png((1, 2, 3)), "image/png", encoding="hex"), 400, "encoding"),
    ]
    for response, status, fragment in cases:
        assert response.status_code == status, response.text
        assert fragment in response.json()["message"]
    await nothing_kept(svc, before)


# -- multipart ------------------------------------------------------------------------------
async def test_multipart_upload_of_several_files_answers_in_part_order(svc: Api) -> None:
    files = [("file", ("red.png", png((220, 20, 20)), "image/png")),
             ("file", ("green.jpg", jpeg((20, 220, 20)), "image/jpeg")),
             ("file", ("blue.png", png((20, 20, 220)), "image/png"))]
    response = await post_form(svc, files)
    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert [item["filename"] for item in items] == ["red.png", "green.jpg", "blue.png"]
    assert [item["media_type"] for item in items] == ["image/png", "image/jpeg", "image/png"]
    assert [item["sha256"] for item in items] == [hashlib.sha256(f[1][1]).hexdigest() for f in files]
    for item in items:
        assert (await svc.wait(item["media_id"]))["state"] == "Completed"
    newest_first = [i["media_id"] for i in (await svc.get("/images", params={"limit": 3})).json()["items"]]
    assert newest_first == [item["media_id"] for item in reversed(items)]


@pytest.mark.parametrize(("files", "data", "status", "fragment"), [
    ([("file", ("ok.png", png((1, 1, 1)), "image/png")), ("file", ("liar.png", jpeg((1, 1, 1)), "image/png"))],
     None, 415, "liar.png: "),
    ([("file", ("ok.png", png((1, 1, 1)), "image/png")), ("file", ("doc.pdf", b"%PDF-1.4", "application/pdf"))],
     None, 415, "doc.pdf: 'application/pdf' isn't a photo or video"),
    ([("file", ("ok.png", png((1, 1, 1)), "image/png")), ("file", ("empty.png", b"", "image/png"))],
     None, 400, "empty.png: the body is empty"),
    ([("file", ("ok.png", png((1, 1, 1)), "image/png"))] * 4, None, 413, "more than 3 files"),
    ([("photo", ("ok.png", png((1, 1, 1)), "image/png"))], None, 400, "unexpected part 'photo'"),
    ([("callback_url", (None, "http://127.0.0.1:9/hook"))], None, 400, "no 'file' part"),
    ([("file", ("ok.png", png((1, 1, 1)), "image/png"))], {"callback_url": "file:///etc/passwd"}, 400, "http"),
])
async def test_a_refused_part_keeps_nothing_of_any_part(svc: Api, files: list, data: dict | None,
                                                         status: int, fragment: str) -> None:
    before = await listed_ids(svc)
    response = await post_form(svc, files, data)
    assert response.status_code == status, response.text
    assert fragment in response.json()["message"]
    await nothing_kept(svc, before)


async def test_malformed_multipart_bodies_are_400(svc: Api) -> None:
    before = await listed_ids(svc)
    headers = {"Content-Type": "multipart/form-data; boundary=zz"}
    for body in (b"no boundary at all", b"--zz\r\nContent-Disposition: form-data; name=file\r\n",
                 b"--zz\r\n" + b"X" * 200_000 + b"\r\n\r\n--zz--\r\n"):
        response = await svc.request("POST", "/images", data=body, headers=headers)
        assert response.status_code == 400, (body[:40], response.text)
    no_boundary = await svc.request("POST", "/images", data=b"x", headers={"Content-Type": "multipart/form-data"})
    assert no_boundary.status_code == 400
    body, content_type = form([("file", ("a.png", png((1, 2, 3)), "image/png"))])
    bad_encoding = await svc.request("POST", "/images", params={"encoding": ""}, data=body,
                                     headers={"Content-Type": content_type})
    assert bad_encoding.status_code == 400, bad_encoding.text  # the query is judged whatever the form
    await nothing_kept(svc, before)


# -- idempotency ----------------------------------------------------------------------------
async def test_a_retried_post_with_a_key_is_replayed(svc: Api) -> None:
    key = f"retry-{time.monotonic_ns()}"
    data = png((33, 66, 99))
    first = await svc.post(data, "image/png", headers={"Idempotency-Key": key})
    again = await svc.post(data, "image/png", headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert again.json()["media_id"] == first.json()["media_id"]
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert again.headers["Location"] == first.headers["Location"]
    other = await svc.post(png((34, 66, 99)), "image/png", headers={"Idempotency-Key": key})
    assert other.status_code == 422
    assert "other content" in other.json()["message"]
    ids = [i["media_id"] for i in (await svc.get("/images", params={"limit": 1000})).json()["items"]]
    assert ids.count(first.json()["media_id"]) == 1 and len(set(ids)) == len(ids)


async def test_a_multipart_retry_with_a_new_boundary_is_replayed(svc: Api) -> None:
    key = f"multi-{time.monotonic_ns()}"
    files = [("file", ("a.png", png((5, 5, 5)), "image/png")), ("file", ("b.png", png((6, 6, 6)), "image/png"))]
    (first_body, first_type), (again_body, again_type) = form(files), form(files)
    assert first_body != again_body  # another boundary
    first = await svc.request("POST", "/images", data=first_body,
                              headers={"Content-Type": first_type, "Idempotency-Key": key})
    again = await svc.request("POST", "/images", data=again_body,
                              headers={"Content-Type": again_type, "Idempotency-Key": key})
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


async def test_a_failed_request_frees_its_key(svc: Api) -> None:
    key = f"free-{time.monotonic_ns()}"
    refused = await svc.post(png((1, 2, 3)), "image/jpeg", headers={"Idempotency-Key": key})
    assert refused.status_code == 415
    accepted = await svc.post(png((1, 2, 3)), "image/png", headers={"Idempotency-Key": key})
    assert accepted.status_code == 202 and "Idempotent-Replayed" not in accepted.headers


async def test_a_key_in_flight_is_409(svc: Api) -> None:
    key = f"slow-{time.monotonic_ns()}"
    body = base64.b64encode(png((70, 80, 90)))
    reader, slow = await asyncio.open_connection("127.0.0.1", svc.port)
    try:
        slow.write(f"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nIdempotency-Key: {key}\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:16])
        await slow.drain()
        await asyncio.sleep(0.3)
        duplicate = await svc.post(png((70, 80, 90)), "image/png", headers={"Idempotency-Key": key})
        assert duplicate.status_code == 409
        assert "still being handled" in duplicate.json()["message"]
        slow.write(body[16:])
        await slow.drain()
        reply = (await asyncio.wait_for(reader.read(65536), 20)).decode()
        assert reply.startswith("HTTP/1.1 202"), reply
    finally:
        slow.close()
    replay = await svc.post(png((70, 80, 90)), "image/png", headers={"Idempotency-Key": key})
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
async def test_bad_idempotency_keys_are_400(svc: Api, key: str) -> None:
    before = await listed_ids(svc)
    response = await svc.post(png((1, 1, 1)), "image/png", headers={"Idempotency-Key": key})  # sent as UTF-8
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["message"]
    await nothing_kept(svc, before)


# -- webhook URLs refused at POST time ------------------------------------------------------
@pytest.mark.parametrize(("url", "fragment"), [
    ("file:///etc/passwd", "http"),
    ("ftp://127.0.0.1:9/x", "http"),
    ("gopher://127.0.0.1:9/", "http"),
    ("http://169.254.169.254/latest/meta-data/", "allowed_hosts"),
    ("http://10.0.0.7/hook", "allowed_hosts"),
    ("http://127.0.0.1:8/hook", "allowed_hosts"),  # loopback, but not the listed port
    ("http://localhost:9/hook", "allowed_hosts"),
    ("http://user:pw@127.0.0.1:9/hook", "user"),
    ("http://[::1]:9/hook", "allowed_hosts"),
    ("http:///nohost", "host"),
    ("http://127.0.0.1:99999/", "valid"),
    ("http://a b.example.com/", "spaces"),
    ("https://localhost.example.com/hook", "does not resolve"),  # *.example.com matches, no DNS here
    ("relative/path", "http"),
    ("http://127.0.0.1:9/" + "x" * 3000, "too long"),
    ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "metadata"),  # NAT64 of 169.254.169.254, listed or not
])
async def test_refused_callback_urls_are_400_and_keep_nothing(svc: Api, url: str, fragment: str) -> None:
    before = await listed_ids(svc)
    response = await svc.post(png((1, 1, 1)), "image/png", params={"callback_url": url})
    assert response.status_code == 400, (url, response.text)
    assert fragment in response.json()["message"], response.json()
    await nothing_kept(svc, before)


async def test_a_listed_callback_is_kept_on_the_record(svc: Api) -> None:
    url = "http://127.0.0.1:9/hook"
    response = await svc.post(png((1, 1, 1)), "image/png", params={"callback_url": url})
    assert response.status_code == 202, response.text
    assert response.json()["callback"] == {"url": url, "state": "pending", "attempts": 0, "last_status": None}


async def test_a_non_ascii_callback_is_kept_percent_encoded(svc: Api) -> None:
    response = await svc.post(png((1, 1, 1)), "image/png", params={"callback_url": "http://127.0.0.1:9/hook/\u00e9?x=\u00fc"})
    assert response.status_code == 202, response.text
    assert response.json()["callback"]["url"] == "http://127.0.0.1:9/hook/%C3%A9?x=%C3%BC"


async def test_callbacks_need_webhooks_enabled(api: Api) -> None:
    response = await api.post(png((1, 1, 1)), "image/png", params={"callback_url": "http://127.0.0.1:9/"})
    assert response.status_code == 400
    assert "webhooks.secret" in response.json()["message"]


# -- history and live events ------------------------------------------------------------------
async def test_history_records_each_change_in_order(svc: Api) -> None:
    media_id = await svc.upload(png((10, 20, 30)), "image/png")
    status = await svc.wait(media_id)
    steps = [(h["state"], h["service"], h["code"]) for h in status["history"]]
    assert steps == [("Processing", "webserver", 202), ("Processing", "worker", 202), ("Completed", "worker", 200)]
    assert [h["at"] for h in status["history"]] == sorted(h["at"] for h in status["history"])
    assert status["history"][-1]["at"] == status["updated_at"]
    bad = await svc.upload(png((1, 1, 1))[:60], "image/png")
    failed = await svc.wait(bad)
    assert [h["state"] for h in failed["history"]] == ["Processing", "Processing", "Error"]
    assert failed["history"][-1]["code"] == 422 and failed["history"][-1]["message"] == failed["message"]
    assert "the upload" in failed["message"]  # the decoder's words, without our paths or its internals
    assert str(svc.workdir) not in failed["message"] and " @ " not in failed["message"]


async def read_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, dict]]:
    event = None
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            yield event or "message", json.loads(line.split(":", 1)[1])


async def test_an_event_stream_sees_processing_then_completed_and_ends(svc: Api) -> None:
    media_id = await svc.upload(png((90, 10, 10), (3000, 2000)), "image/png")
    async with svc.client.get(f"/images/{media_id}/events") as response:  # open before the job is taken
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        await svc.drain()
        events = [event async for event in read_events(response)]  # ends by itself after the terminal state
    states = [body["state"] for _, body in events]
    assert {name for name, _ in events} == {"status"}
    assert states[0] == "Processing" and states[-1] == "Completed"
    assert set(states[:-1]) == {"Processing"}
    assert events[-1][1]["thumbnail"] == f"/images/{media_id}/thumbnail"


async def test_changes_are_read_only_while_a_stream_is_open(svc: Api) -> None:
    """A server with no stream open does not read the store's change stream (a busy one spent 6 %
    of its event loop on it); a stream that opens starts the reading and sees what changes after."""
    hub = svc.client.app[RESOURCES].events
    await svc.wait(await svc.upload(png((5, 5, 90)), "image/png"))
    assert not hub.listening
    async with svc.client.get("/events") as response:
        assert hub.listening
        media_id = await svc.upload(png((90, 5, 5)), "image/png")
        await svc.drain()

        async def completed() -> None:
            async for name, body in read_events(response):
                if name == "status" and body["media_id"] == media_id and body["state"] == "Completed":
                    return

        await asyncio.wait_for(completed(), 10)
    assert hub.listening  # kept a while for a client that reconnects


def store_subscriptions(svc: Api) -> int:
    """The server's subscriptions to the store's changes: the events channel's on Redis, the
    connection's on NATS (the embedded store polls a table: none)."""
    store: Any = svc.client.app[RESOURCES].store
    if svc.mode == NATS_MODE:
        return len(store.records.client._subs)
    if svc.mode == "distributed":
        kept = redis.Redis.from_url(REDIS_URL)
        try:
            return int(kept.pubsub_numsub(events_channel(svc.settings.redis.prefix))[0][1])
        finally:
            kept.close()
    return 0


async def test_a_stopped_reader_leaves_no_subscription_behind(svc: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "LINGER_SECONDS", 0.0)
    hub = svc.client.app[RESOURCES].events
    before = store_subscriptions(svc)
    for _ in range(3):
        async with svc.client.get("/events") as response:
            assert response.status == 200 and hub.listening
            assert store_subscriptions(svc) == before + (svc.mode != "embedded")
        for _ in range(250):  # the reader stops at the loop's next turn, its unsubscribe a round trip later
            if not hub.listening:
                break
            await asyncio.sleep(0.02)
        assert not hub.listening
    assert store_subscriptions(svc) == before


async def test_a_late_stream_gets_the_current_state_first(svc: Api) -> None:
    media_id = await svc.upload(png((1, 90, 10)), "image/png")
    await svc.wait(media_id)
    async with svc.client.get(f"/images/{media_id}/events") as response:
        events = [event async for event in read_events(response)]
    assert [(name, body["state"]) for name, body in events] == [("status", "Completed")]
    assert (await svc.get(f"/images/{'0' * 8}-0000-4000-8000-{'0' * 12}/events")).status_code == 404


async def test_the_all_media_stream_sees_every_change_and_deletes(svc: Api) -> None:
    seen: list[tuple[str, dict]] = []
    async with svc.client.get("/events") as response:  # subscribed once the headers are back

        async def listen(until: tuple[str, dict]) -> None:
            async for event in read_events(response):
                seen.append(event)
                if event == until:
                    return

        first, second = await svc.upload(png((1, 1, 200)), "image/png"), await svc.upload(png((200, 1, 1)), "image/png")
        for media_id in (first, second):
            await svc.wait(media_id)
        assert (await svc.delete(f"/images/{first}")).status_code == 204
        await asyncio.wait_for(listen(("deleted", {"media_id": first})), 10)
    for media_id in (first, second):
        mine = [body["state"] for name, body in seen if name == "status" and body["media_id"] == media_id]
        assert mine[0] == "Processing" and mine[-1] == "Completed", mine


# -- duplicates -------------------------------------------------------------------------------
async def test_an_identical_upload_reuses_the_thumbnails_and_deleting_either_breaks_nothing(svc: Api) -> None:
    data = jpeg((17, 171, 71))
    first = await svc.upload(data, "image/jpeg")
    assert (await svc.wait(first))["state"] == "Completed"
    second = await svc.upload(data, "image/jpeg")
    status = await svc.wait(second)
    assert status["state"] == "Completed"
    assert f"reused from identical upload {first}" in status["message"]
    assert status["sizes"] == (await svc.get(f"/images/{first}")).json()["sizes"]
    original, _ = await svc.thumbnail(first)
    assert (await svc.thumbnail(second))[0] == original
    assert (await svc.delete(f"/images/{first}")).status_code == 204
    assert (await svc.thumbnail(second))[0] == original  # its own copy
    third = await svc.upload(data, "image/jpeg")
    assert f"reused from identical upload {second}" in (await svc.wait(third))["message"]
    assert (await svc.delete(f"/images/{second}")).status_code == 204
    assert (await svc.thumbnail(third))[0] == original
    other = await svc.upload(jpeg((171, 17, 71)), "image/jpeg")
    assert "reused" not in (await svc.wait(other))["message"]
