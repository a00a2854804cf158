"""Many clients on one service: keys of their own (the admin API), each sees only its own media,
quotas and rate limits; in every store's mode (SQLite, Redis, NATS)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

import pytest
from PIL import Image

from tests.api.conftest import Api, ApiFactory, Reply
from tests.api.test_uploads import read_events
from tests.harness import NATS_MODE
from thumbnailify import state
from thumbnailify.record import MediaRecord
from thumbnailify.server.resources import RESOURCES

ADMIN = "adm1n-key"
API_KEY = "k3y"  # auth.api_key: the client "default"
TENANT_SETTINGS = {"THUMBNAILIFY_AUTH_ADMIN_KEY": ADMIN, "THUMBNAILIFY_AUTH_API_KEY": API_KEY}
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(params=["embedded", "distributed", NATS_MODE])
def api_mode(request: pytest.FixtureRequest) -> str:
    return request.param


def png(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def svc(make_api: ApiFactory) -> Api:
    return await make_api(**TENANT_SETTINGS)


async def new_client(service: Api, name: str, **limits: Any) -> str:
    made = await service.request("POST", "/admin/keys", json={"name": name, **limits}, headers=bearer(ADMIN))
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


async def upload_as(service: Api, key: str, data: bytes, **kwargs: Any) -> Reply:
    headers = bearer(key) | kwargs.pop("headers", {})
    params = {"encoding": "binary"} | kwargs.pop("params", {})
    return await service.post(data, "image/png", raw=True, params=params, headers=headers, **kwargs)


async def listed(service: Api, key: str, **params: str) -> set[str]:
    answer = await service.get("/images", params={"limit": "1000", **params}, headers=bearer(key))
    assert answer.status_code == 200, answer.text
    return {item["media_id"] for item in answer.json()["items"]}


# -- keys ---------------------------------------------------------------------------------------
async def test_a_key_is_shown_once_and_only_its_hash_is_kept(svc: Api) -> None:
    key = await new_client(svc, "alice", quota_items=5, rate=2.5, priority="bulk")
    assert key.startswith("tfy_") and len(key) > 40
    clients = (await svc.get("/admin/keys", headers=bearer(ADMIN))).json()["items"]
    assert clients == [{"name": "alice", "created_at": clients[0]["created_at"], "quota_bytes": None,
                        "quota_items": 5, "rate": 2.5, "priority": "bulk", "revoked": False}]
    assert key not in json.dumps(clients)
    if svc.mode == "embedded":
        import sqlite3
        db = sqlite3.connect(svc.env["THUMBNAILIFY_SQLITE_PATH"])
        dumped = "\n".join(db.iterdump())
        db.close()
    elif svc.mode == NATS_MODE:
        from thumbnailify.backends.nats.records import Records
        records = Records(svc.settings)
        await records.open()
        kept = await records.keys("clients", ">")
        dumped = "\n".join([f"{key} {await records.read('clients', key)}" for key in kept])
        await records.close()
    else:
        import redis
        client = redis.Redis.from_url(svc.redis_url, decode_responses=True)
        prefix = svc.env["THUMBNAILIFY_REDIS_PREFIX"]
        dumped = "\n".join(f"{name} {client.dump(name)!r}" for name in client.scan_iter(f"{prefix}*"))
        client.close()
    assert key not in dumped and key.removeprefix("tfy_") not in dumped
    assert (await upload_as(svc, key, png((1, 2, 3)))).status_code == 202


@pytest.mark.parametrize(("body", "status"), [
    ({"name": "alice"}, 409),  # made in the test first
    ({"name": "default"}, 400), ({"name": "other"}, 400), ({"name": "Bob"}, 400), ({"name": ""}, 400),
    ({"name": "a/b"}, 400), ({"name": "x" * 64}, 400), ({}, 400), ({"name": 7}, 400),
    ({"name": "q", "quota_items": -1}, 400), ({"name": "q", "quota_bytes": 1.5}, 400),
    ({"name": "q", "quota_bytes": True}, 400), ({"name": "q", "rate": "fast"}, 400),
    ({"name": "q", "rate": -1}, 400), ({"name": "q", "priority": "urgent"}, 400),
])
async def test_bad_client_definitions_are_4xx(svc: Api, body: dict, status: int) -> None:
    await new_client(svc, "alice")
    answer = await svc.request("POST", "/admin/keys", json=body, headers=bearer(ADMIN))
    assert answer.status_code == status, answer.text
    assert answer.json()["message"]
    assert (await svc.request("POST", "/admin/keys", data=b"[1]", headers=bearer(ADMIN))).status_code == 400
    assert (await svc.request("POST", "/admin/keys", data=b"{no", headers=bearer(ADMIN))).status_code == 400


async def test_the_admin_api_takes_the_admin_key_only(svc: Api, make_api: ApiFactory) -> None:
    key = await new_client(svc, "alice")
    for headers in ({}, bearer(key), bearer(API_KEY), bearer(ADMIN + "x"), {"Authorization": f"Basic {ADMIN}"}):
        assert (await svc.get("/admin/keys", headers=headers)).status_code == 401
    # The admin key is no client's: it opens nothing else.
    assert (await svc.get("/images", headers=bearer(ADMIN))).status_code == 401
    plain = await make_api(THUMBNAILIFY_AUTH_API_KEY=API_KEY)  # no admin key: no admin API at all
    answer = await plain.get("/admin/keys", headers=bearer(API_KEY))
    assert answer.status_code == 404 and "auth.admin_key" in answer.json()["message"]


@pytest.mark.parametrize("authorization", [
    "", "Bearer", "Bearer ", "Basic dGZ5Og==", "tfy_abc", "Bearer tfy_" + "A" * 43, "Bearer " + "k" * 5000,
    "Bearer k3y k3y", "Bearer\tk3y", "Bearer k3y\xff",
])
async def test_malformed_or_unknown_keys_are_401(svc: Api, authorization: str) -> None:
    answer = await svc.get("/images", headers={"Authorization": authorization})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json() == {"message": "missing or wrong API key"}


async def test_a_rotated_key_works_beside_the_new_one_for_its_grace_then_revoke_ends_both(svc: Api) -> None:
    old = await new_client(svc, "alice")
    rotated = await svc.request("POST", "/admin/keys/alice/rotate", json={"grace_seconds": 60}, headers=bearer(ADMIN))
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["key"]
    assert new != old
    for key in (old, new):
        assert (await svc.get("/usage", headers=bearer(key))).json()["client"] == "alice"
    # A rotation without grace ends every older key at once.
    newest = (await svc.request("POST", "/admin/keys/alice/rotate", json={"grace_seconds": 0},
                                headers=bearer(ADMIN))).json()["key"]
    for key in (old, new):
        assert (await svc.get("/usage", headers=bearer(key))).status_code == 401
    assert (await svc.get("/usage", headers=bearer(newest))).status_code == 200
    assert (await svc.request("POST", "/admin/keys/alice/revoke", headers=bearer(ADMIN))).status_code == 204
    assert (await svc.get("/usage", headers=bearer(newest))).status_code == 401
    assert (await svc.request("POST", "/admin/keys/alice/rotate", headers=bearer(ADMIN))).status_code == 404
    assert (await svc.request("POST", "/admin/keys/nobody/revoke", headers=bearer(ADMIN))).status_code == 404
    assert (await svc.request("POST", "/admin/keys/alice", json={"name": "alice"}, headers=bearer(ADMIN))
            ).status_code in (404, 405)
    listed_clients = (await svc.get("/admin/keys", headers=bearer(ADMIN))).json()["items"]
    assert [c["revoked"] for c in listed_clients] == [True]
    again = await svc.request("POST", "/admin/keys", json={"name": "alice"}, headers=bearer(ADMIN))
    assert again.status_code == 409  # a revoked name is not reused: its items keep their owner


async def test_a_grace_period_ends(svc: Api) -> None:
    old = await new_client(svc, "alice")
    await svc.request("POST", "/admin/keys/alice/rotate", json={"grace_seconds": 0.3}, headers=bearer(ADMIN))
    assert (await svc.get("/usage", headers=bearer(old))).status_code == 200
    await asyncio.sleep(0.5)
    assert (await svc.get("/usage", headers=bearer(old))).status_code == 401


# -- isolation ----------------------------------------------------------------------------------
async def test_another_clients_media_is_404_everywhere_and_never_listed(svc: Api) -> None:
    alice, bob = await new_client(svc, "alice"), await new_client(svc, "bob")
    revoked = await new_client(svc, "carol")
    data = png((10, 200, 10))
    answer = await upload_as(svc, alice, data, params={"filename": "holiday.png"})
    assert answer.status_code == 202, answer.text
    media_id = answer.json()["media_id"]
    assert (await svc.request("POST", "/admin/keys/carol/revoke", headers=bearer(ADMIN))).status_code == 204
    lookalike = await upload_as(svc, bob, png((10, 200, 10), (66, 50)))  # the same picture, other bytes
    await svc.drain()
    assert await listed(svc, alice, similar_to=media_id) == set()  # Bob's, however near, is not hers
    assert await listed(svc, bob, similar_to=lookalike.json()["media_id"]) == set()
    paths = [f"/images/{media_id}", f"/images/{media_id}/thumbnail", f"/images/{media_id}/events"]
    for key in (bob, API_KEY):
        for path in paths:
            refused = await svc.get(path, headers=bearer(key))
            assert (refused.status_code, refused.json()) == (404, {"message": "no such media"}), path
        assert (await svc.delete(f"/images/{media_id}", headers=bearer(key))).status_code == 404
        near = await svc.get("/images", params={"similar_to": media_id}, headers=bearer(key))
        unknown = await svc.get("/images", params={"similar_to": MISSING}, headers=bearer(key))
        assert (near.status_code, near.json()) == (unknown.status_code, unknown.json()) == (
            404, {"message": "similar_to: no such media"})
        assert media_id not in await listed(svc, key)
        for query in ({"state": "Completed"}, {"filename": "holiday"}, {"sha256": answer.json()["sha256"]}):
            assert media_id not in await listed(svc, key, **query), query
    for path in [*paths, "/images", "/events", "/usage"]:
        assert (await svc.get(path, headers=bearer(revoked))).status_code == 401, path
    assert (await svc.delete(f"/images/{media_id}", headers=bearer(revoked))).status_code == 401
    assert (await upload_as(svc, revoked, data)).status_code == 401
    # Alice's is all there, and hers alone to see and delete.
    assert (await svc.get(f"/images/{media_id}", headers=bearer(alice))).json()["state"] == "Completed"
    assert (await svc.get(f"/images/{media_id}/thumbnail", headers=bearer(alice))).status_code == 200
    assert await listed(svc, alice, filename="holiday") == {media_id}
    assert await listed(svc, alice, state="Completed") == {media_id}
    assert await listed(svc, alice, sha256=answer.json()["sha256"]) == {media_id}
    assert (await svc.delete(f"/images/{media_id}", headers=bearer(alice))).status_code == 204
    assert (await svc.get(f"/images/{MISSING}", headers=bearer(alice))).status_code == 404


async def test_the_all_media_stream_carries_only_the_callers_changes(svc: Api) -> None:
    alice, bob = await new_client(svc, "alice"), await new_client(svc, "bob")
    seen: list[tuple[str, dict]] = []
    async with svc.client.get("/events", headers=bearer(bob)) as response:
        assert response.status == 200
        theirs = (await upload_as(svc, alice, png((1, 1, 1)))).json()["media_id"]
        await svc.drain()
        assert (await svc.delete(f"/images/{theirs}", headers=bearer(alice))).status_code == 204
        mine = (await upload_as(svc, bob, png((2, 2, 2)))).json()["media_id"]
        assert (await svc.delete(f"/images/{mine}", headers=bearer(bob))).status_code == 204

        async def until_my_delete() -> None:
            async for event in read_events(response):
                seen.append(event)
                if event == ("deleted", {"media_id": mine}):
                    return

        await asyncio.wait_for(until_my_delete(), 10)
    assert {body["media_id"] for _, body in seen} == {mine}


async def test_resumable_uploads_belong_to_their_client(svc: Api) -> None:
    alice, bob = await new_client(svc, "alice"), await new_client(svc, "bob")
    data = png((40, 40, 200))
    metadata = "filetype " + base64.b64encode(b"image/png").decode()
    tus = {"Tus-Resumable": "1.0.0"}
    made = await svc.request("POST", "/uploads/", headers=tus | bearer(alice) | {
        "Upload-Length": str(len(data)), "Upload-Metadata": metadata})
    assert made.status_code == 201, made.text
    path = made.headers["Location"]
    patch = tus | {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    for method, headers, body in (("HEAD", tus, b""), ("GET", tus, b""), ("PATCH", patch, data),
                                  ("DELETE", tus, b"")):
        refused = await svc.request(method, path, headers=headers | bearer(bob), data=body)
        assert refused.status_code == 404, (method, refused.text)
    done = await svc.request("PATCH", path, headers=patch | bearer(alice), data=data)
    assert done.status_code == 204, done.text
    media_id = done.headers["Thumbnailify-Media-Id"]
    assert (await svc.get(path, headers=tus | bearer(alice))).json()["media_id"] == media_id
    assert (await svc.get(path, headers=tus | bearer(bob))).status_code == 404
    assert await listed(svc, alice) == {media_id} and await listed(svc, bob) == set()


async def test_idempotency_keys_and_identical_uploads_are_per_client(svc: Api) -> None:
    alice, bob = await new_client(svc, "alice"), await new_client(svc, "bob")
    data = png((90, 90, 1))
    once = {"Idempotency-Key": "same-key"}
    first = await upload_as(svc, alice, data, headers=once)
    assert (await svc.wait(first.json()["media_id"])) is not None
    theirs = await upload_as(svc, bob, data, headers=once)
    assert theirs.status_code == 202 and "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["media_id"] != first.json()["media_id"]
    again = await upload_as(svc, alice, data)
    await svc.drain()

    async def message(key: str, media_id: str) -> str:
        body = (await svc.get(f"/images/{media_id}", headers=bearer(key))).json()
        assert body["state"] == "Completed", body
        return str(body["message"])

    assert "reused" not in await message(bob, theirs.json()["media_id"])  # made anew: Alice's is not Bob's
    assert "reused from identical upload" in await message(alice, again.json()["media_id"])
    replayed = await upload_as(svc, alice, data, headers=once)
    assert replayed.headers.get("Idempotent-Replayed") == "true"


async def test_records_from_before_clients_belong_to_the_default_client(svc: Api) -> None:
    alice = await new_client(svc, "alice")
    store = svc.client.app[RESOURCES].store
    made = state.accepted("image/png", state.now(), "ab" * 32).stored()
    legacy = MediaRecord.from_stored({name: value for name, value in made.items() if name != "owner"})
    assert legacy.owner is None
    await store.create(MISSING, legacy, 1.0)
    assert (await svc.get(f"/images/{MISSING}", headers=bearer(API_KEY))).status_code == 202
    assert MISSING in await listed(svc, API_KEY)
    assert (await svc.get(f"/images/{MISSING}", headers=bearer(alice))).status_code == 404
    assert MISSING not in await listed(svc, alice)
    assert (await svc.get("/usage", headers=bearer(API_KEY))).json()["items"] == 0  # never counted
    assert (await svc.delete(f"/images/{MISSING}", headers=bearer(API_KEY))).status_code == 204
    assert (await svc.get("/usage", headers=bearer(API_KEY))).json()["items"] == 0  # nor uncounted


# -- quotas -------------------------------------------------------------------------------------
async def test_an_item_quota_is_exact_and_freed_by_delete(svc: Api) -> None:
    key = await new_client(svc, "alice", quota_items=2)
    made = [await upload_as(svc, key, png((i, 0, 0))) for i in range(2)]
    assert [m.status_code for m in made] == [202, 202]
    before = set(svc.stored("raw"))
    refused = await upload_as(svc, key, png((9, 9, 9)))
    assert refused.status_code == 413
    assert "items quota" in refused.json()["message"] and "alice" in refused.json()["message"]
    assert set(svc.stored("raw")) == before and len(await listed(svc, key)) == 2  # nothing kept
    usage = (await svc.get("/usage", headers=bearer(key))).json()
    assert usage == {"client": "alice", "items": 2, "bytes": sum(m.json()["bytes"] for m in made),
                     "quota_items": 2, "quota_bytes": None}
    assert (await svc.delete(f"/images/{made[0].json()['media_id']}", headers=bearer(key))).status_code == 204
    assert (await svc.get("/usage", headers=bearer(key))).json()["items"] == 1
    assert (await upload_as(svc, key, png((9, 9, 9)))).status_code == 202


async def test_a_bytes_quota_takes_an_upload_exactly_at_the_bound_and_not_one_byte_past(svc: Api) -> None:
    data = png((5, 5, 5))
    key = await new_client(svc, "alice", quota_bytes=2 * len(data) + 1)
    assert (await upload_as(svc, key, data)).status_code == 202
    assert (await upload_as(svc, key, data)).status_code == 202  # one byte left
    refused = await upload_as(svc, key, data)
    assert refused.status_code == 413 and "bytes quota" in refused.json()["message"]
    exact = await new_client(svc, "bob", quota_bytes=len(data))
    assert (await upload_as(svc, exact, data)).status_code == 202  # exactly at the bound
    full = await upload_as(svc, exact, png((6, 6, 6)))
    assert full.status_code == 413  # refused before its body is read: the quota is full
    assert (await svc.get("/usage", headers=bearer(exact))).json()["bytes"] == len(data)


async def test_a_multipart_upload_past_the_quota_keeps_none_of_its_files(svc: Api) -> None:
    from urllib3 import encode_multipart_formdata
    key = await new_client(svc, "alice", quota_items=2)
    fields = [("file", (f"{i}.png", png((i, 1, 1)), "image/png")) for i in range(3)]
    body, content_type = encode_multipart_formdata(fields)
    refused = await svc.request("POST", "/images", data=body, headers={"Content-Type": content_type} | bearer(key))
    assert refused.status_code == 413, refused.text
    assert await listed(svc, key) == set()
    assert (await svc.get("/usage", headers=bearer(key))).json()["items"] == 0


async def test_a_resumable_upload_past_the_quota_is_refused_at_creation_or_at_its_last_byte(svc: Api) -> None:
    data = png((8, 8, 8))
    key = await new_client(svc, "alice", quota_bytes=len(data))
    metadata = "filetype " + base64.b64encode(b"image/png").decode()
    tus = {"Tus-Resumable": "1.0.0", "Upload-Metadata": metadata} | bearer(key)
    too_long = await svc.request("POST", "/uploads/", headers=tus | {"Upload-Length": str(len(data) + 1)})
    assert too_long.status_code == 413 and "bytes quota" in too_long.json()["message"]
    first = await svc.request("POST", "/uploads/", headers=tus | {"Upload-Length": str(len(data))})
    second = await svc.request("POST", "/uploads/", headers=tus | {"Upload-Length": str(len(data))})
    patch = {"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    done = await svc.request("PATCH", first.headers["Location"], headers=patch | bearer(key), data=data)
    assert done.status_code == 204, done.text
    # Both fitted when they began; the second's last byte finds the quota taken: 413, nothing kept.
    late = await svc.request("PATCH", second.headers["Location"], headers=patch | bearer(key), data=data)
    assert late.status_code == 413 and "bytes quota" in late.json()["message"]
    assert (await svc.get(second.headers["Location"], headers=bearer(key) | {"Tus-Resumable": "1.0.0"})
            ).status_code == 404
    assert await listed(svc, key) == {done.headers["Thumbnailify-Media-Id"]}


async def test_a_replay_is_answered_even_when_the_quota_is_full(svc: Api) -> None:
    key = await new_client(svc, "alice", quota_items=1)
    once = {"Idempotency-Key": "k-1"}
    first = await upload_as(svc, key, png((5, 1, 1)), headers=once)
    again = await upload_as(svc, key, png((5, 1, 1)), headers=once)
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["media_id"] == first.json()["media_id"]


async def test_concurrent_uploads_never_pass_the_quota(svc: Api) -> None:
    key = await new_client(svc, "alice", quota_items=3)
    answers = await asyncio.gather(*(upload_as(svc, key, png((i, 2, 2))) for i in range(10)))
    assert sorted(a.status_code for a in answers) == [202] * 3 + [413] * 7
    assert (await svc.get("/usage", headers=bearer(key))).json()["items"] == 3
    assert len(await listed(svc, key)) == 3


async def test_retention_frees_the_quota(make_api: ApiFactory) -> None:
    svc = await make_api(**TENANT_SETTINGS, THUMBNAILIFY_RETENTION_MEDIA_DAYS="0.00001")  # under a second
    from thumbnailify.server.background.sweep import sweep
    key = await new_client(svc, "alice", quota_items=1)
    assert (await upload_as(svc, key, png((3, 3, 3)))).status_code == 202
    await svc.drain()
    await asyncio.sleep(1.0)

    async def renew() -> None:
        return None

    await sweep(svc.client.app[RESOURCES], renew)
    assert (await svc.get("/usage", headers=bearer(key))).json()["items"] == 0
    assert (await upload_as(svc, key, png((4, 4, 4)))).status_code == 202


# -- rate limits --------------------------------------------------------------------------------
async def test_a_rate_limit_is_shared_by_two_server_processes(svc: Api, make_api: ApiFactory) -> None:
    shared = {name: svc.env[name] for name in ("THUMBNAILIFY_SQLITE_PATH", "THUMBNAILIFY_FILES_ROOT",
                                              "THUMBNAILIFY_REDIS_PREFIX", "THUMBNAILIFY_RABBITMQ_QUEUE",
                                              "THUMBNAILIFY_NATS_STREAM")
              if name in svc.env}
    other = await make_api(**TENANT_SETTINGS, **shared)  # a second app on the same store
    key = await new_client(svc, "alice", rate=0.5)  # a bucket of one upload, one more every 2 s
    first = await upload_as(svc, key, png((1, 1, 1)))
    assert first.status_code == 202
    assert first.headers["RateLimit-Limit"] == "1" and first.headers["RateLimit-Remaining"] == "0"
    assert first.headers["RateLimit-Policy"] == '"uploads";q=1;w=2'
    refused = await upload_as(other, key, png((2, 2, 2)))
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit"].startswith('"uploads";r=0;t=')
    assert "rate limit" in refused.json()["message"]
    assert len(await listed(svc, key)) == 1  # nothing kept of the refused one
    # Reads are not limited; another client has its own bucket.
    assert (await other.get("/images", headers=bearer(key))).status_code == 200
    bob = await new_client(svc, "bob", rate=0.5)
    assert (await upload_as(other, bob, png((3, 3, 3)))).status_code == 202
    await asyncio.sleep(float(refused.headers["Retry-After"]))
    assert (await upload_as(other, key, png((4, 4, 4)))).status_code == 202


async def test_a_resumable_creation_counts_against_the_rate(svc: Api) -> None:
    key = await new_client(svc, "alice", rate=0.5)
    metadata = "filetype " + base64.b64encode(b"image/png").decode()
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": "10", "Upload-Metadata": metadata} | bearer(key)
    assert (await svc.request("POST", "/uploads/", headers=headers)).status_code == 201
    refused = await svc.request("POST", "/uploads/", headers=headers)
    assert refused.status_code == 429 and "Retry-After" in refused.headers


async def test_per_client_metrics_name_the_first_clients_and_count_the_rest_as_other(make_api: ApiFactory) -> None:
    svc = await make_api(**TENANT_SETTINGS, THUMBNAILIFY_AUTH_METRIC_CLIENTS="1")
    alice, bob = await new_client(svc, "alice", quota_items=1), await new_client(svc, "bob")
    for key in (alice, alice, bob):
        await upload_as(svc, key, png((7, 7, 7)))
    text = (await svc.get("/metrics", headers=bearer(API_KEY))).text
    assert 'thumbnailify_client_uploads_total{client="alice"} 1.0' in text
    assert 'thumbnailify_client_uploads_total{client="other"} 1.0' in text
    assert 'thumbnailify_client_refusals_total{client="alice",reason="quota"} 1.0' in text
    assert 'client="bob"' not in text
    refused = await svc.get("/metrics", headers=bearer(alice))  # they name other clients: the operator's
    assert refused.status_code == 403 and "auth.api_key" in refused.json()["message"]
