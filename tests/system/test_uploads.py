"""Upload forms, idempotent retries, history and live events, on Redis + RabbitMQ with real processes.

The embedded mode runs the same tests in process (tests/api/test_uploads.py): behaviour must not
differ between the modes.

(CONTRACT second part: "Uploads", "History and live status"; webhook URLs refused at POST time.)
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator

import psutil
import pytest
import requests
from PIL import Image

from tests.harness import Service, wait_until

pytestmark = pytest.mark.timeout(180)


def png(color: tuple[int, int, int], size: tuple[int, int] = (120, 80)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (160, 90), color).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module", params=["distributed"])
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with Service(request.param, tmp_path_factory.mktemp(f"uploads-{request.param}"),
                 THUMBNAILIFY_WEBHOOKS_SECRET="whsec",
                 THUMBNAILIFY_WEBHOOKS_ALLOWED_HOSTS="127.0.0.1:9,*.example.com,[64:ff9b::a9fe:a9fe]",
                 THUMBNAILIFY_LIMITS_MAX_FILES="3") as service:
        yield service


def nothing_kept(service: Service, before: set[str]) -> None:
    listed = {item["media_id"] for item in service.get("/images", params={"limit": 1000}).json()["items"]}
    assert listed == before
    assert {p.name for p in service.media_dir("raw").iterdir()} <= before  # only uploads still being made


def listed_ids(service: Service) -> set[str]:
    return {item["media_id"] for item in service.get("/images", params={"limit": 1000}).json()["items"]}


# -- binary ---------------------------------------------------------------------------------
def test_binary_upload_round_trip(svc: Service) -> None:
    data = jpeg((200, 40, 40))
    response = svc.http.post(f"{svc.url}/images", params={"encoding": "binary"}, data=data,
                             headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert response.headers["Location"] == f"/images/{body['media_id']}"
    assert svc.wait(body["media_id"])["state"] == "Completed"
    thumb, content_type = svc.thumbnail(body["media_id"])
    assert content_type == "image/jpeg" and Image.open(io.BytesIO(thumb)).size == (100, 56)


def test_binary_upload_has_the_same_checks(svc: Service) -> None:
    before = listed_ids(svc)

    def post(data: bytes, content_type: str, **params: str) -> requests.Response:
        return svc.http.post(f"{svc.url}/images", params={"encoding": "binary", **params}, data=data,
                             headers={"Content-Type": content_type}, timeout=30)

    cases = [
        (post(b"", "image/png"), 400, "empty"),
        (post(png((1, 2, 3)), "image/jpeg"), 415, "image/png"),
        (post(base64.b64encode(png((1, 2, 3))), "image/png"), 415, "text"),  # base64 sent as binary
        (post(png((1, 2, 3)) + bytes(21 << 20), "image/png"), 413, "too large"),
        (post(png((1, 2, 3)), "image/png", encoding="hex"), 400, "encoding"),
    ]
    for response, status, fragment in cases:
        assert response.status_code == status, response.text
        assert fragment in response.json()["message"]
    nothing_kept(svc, before)


# -- multipart ------------------------------------------------------------------------------
def test_multipart_upload_of_several_files_answers_in_part_order(svc: Service) -> None:
    files = [("file", ("red.png", png((220, 20, 20)), "image/png")),
             ("file", ("green.jpg", jpeg((20, 220, 20)), "image/jpeg")),
             ("file", ("blue.png", png((20, 20, 220)), "image/png"))]
    response = svc.http.post(f"{svc.url}/images", files=files, timeout=30)
    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert [item["filename"] for item in items] == ["red.png", "green.jpg", "blue.png"]
    assert [item["media_type"] for item in items] == ["image/png", "image/jpeg", "image/png"]
    assert [item["sha256"] for item in items] == [hashlib.sha256(f[1][1]).hexdigest() for f in files]
    for item in items:
        assert svc.wait(item["media_id"])["state"] == "Completed"
    newest_first = [i["media_id"] for i in svc.get("/images", params={"limit": 3}).json()["items"]]
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
def test_a_refused_part_keeps_nothing_of_any_part(svc: Service, files: list, data: dict | None,
                                                   status: int, fragment: str) -> None:
    before = listed_ids(svc)
    response = svc.http.post(f"{svc.url}/images", files=files, data=data, timeout=30)
    assert response.status_code == status, response.text
    assert fragment in response.json()["message"]
    nothing_kept(svc, before)


def test_malformed_multipart_bodies_are_400(svc: Service) -> None:
    before = listed_ids(svc)
    headers = {"Content-Type": "multipart/form-data; boundary=zz"}
    for body in (b"no boundary at all", b"--zz\r\nContent-Disposition: form-data; name=file\r\n",
                 b"--zz\r\n" + b"X" * 200_000 + b"\r\n\r\n--zz--\r\n"):
        response = svc.http.post(f"{svc.url}/images", data=body, headers=headers, timeout=30)
        assert response.status_code == 400, (body[:40], response.text)
    assert svc.http.post(f"{svc.url}/images", data=b"x", timeout=30,
                         headers={"Content-Type": "multipart/form-data"}).status_code == 400  # no boundary
    nothing_kept(svc, before)


# -- idempotency ----------------------------------------------------------------------------
def test_a_retried_post_with_a_key_is_replayed(svc: Service) -> None:
    key = f"retry-{time.monotonic_ns()}"
    data = png((33, 66, 99))
    first = svc.post(data, "image/png", headers={"Idempotency-Key": key})
    again = svc.post(data, "image/png", headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert again.json()["media_id"] == first.json()["media_id"]
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert again.headers["Location"] == first.headers["Location"]
    other = svc.post(png((34, 66, 99)), "image/png", headers={"Idempotency-Key": key})
    assert other.status_code == 422
    assert "other content" in other.json()["message"]
    ids = [i["media_id"] for i in svc.get("/images", params={"limit": 1000}).json()["items"]]
    assert ids.count(first.json()["media_id"]) == 1 and len(set(ids)) == len(ids)


def test_a_multipart_retry_with_a_new_boundary_is_replayed(svc: Service) -> None:
    key = f"multi-{time.monotonic_ns()}"
    files = [("file", ("a.png", png((5, 5, 5)), "image/png")), ("file", ("b.png", png((6, 6, 6)), "image/png"))]
    first = svc.http.post(f"{svc.url}/images", files=files, headers={"Idempotency-Key": key}, timeout=30)
    again = svc.http.post(f"{svc.url}/images", files=files, headers={"Idempotency-Key": key}, timeout=30)
    assert first.request.body != again.request.body  # requests picked another boundary
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_a_failed_request_frees_its_key(svc: Service) -> None:
    key = f"free-{time.monotonic_ns()}"
    refused = svc.post(png((1, 2, 3)), "image/jpeg", headers={"Idempotency-Key": key})
    assert refused.status_code == 415
    accepted = svc.post(png((1, 2, 3)), "image/png", headers={"Idempotency-Key": key})
    assert accepted.status_code == 202 and "Idempotent-Replayed" not in accepted.headers


def test_a_key_in_flight_is_409(svc: Service) -> None:
    key = f"slow-{time.monotonic_ns()}"
    body = base64.b64encode(png((70, 80, 90)))
    with socket.create_connection(("127.0.0.1", svc.port), timeout=20) as slow:
        slow.sendall(f"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nIdempotency-Key: {key}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:16])
        time.sleep(0.3)
        duplicate = svc.post(png((70, 80, 90)), "image/png", headers={"Idempotency-Key": key})
        assert duplicate.status_code == 409
        assert "still being handled" in duplicate.json()["message"]
        slow.sendall(body[16:])
        reply = slow.recv(65536).decode()
        assert reply.startswith("HTTP/1.1 202"), reply
    replay = svc.post(png((70, 80, 90)), "image/png", headers={"Idempotency-Key": key})
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_bad_idempotency_keys_are_400(svc: Service, key: str) -> None:
    before = listed_ids(svc)
    response = svc.post(png((1, 1, 1)), "image/png", headers={"Idempotency-Key": key.encode("utf-8")})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["message"]
    nothing_kept(svc, before)


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
def test_refused_callback_urls_are_400_and_keep_nothing(svc: Service, url: str, fragment: str) -> None:
    before = listed_ids(svc)
    response = svc.http.post(f"{svc.url}/images", params={"callback_url": url},
                             data=base64.b64encode(png((1, 1, 1))), headers={"Content-Type": "image/png"}, timeout=30)
    assert response.status_code == 400, (url, response.text)
    assert fragment in response.json()["message"], response.json()
    nothing_kept(svc, before)


def test_a_listed_callback_is_kept_on_the_record(svc: Service) -> None:
    url = "http://127.0.0.1:9/hook"
    response = svc.http.post(f"{svc.url}/images", params={"callback_url": url},
                             data=base64.b64encode(png((1, 1, 1))), headers={"Content-Type": "image/png"}, timeout=30)
    assert response.status_code == 202, response.text
    assert response.json()["callback"] == {"url": url, "state": "pending", "attempts": 0, "last_status": None}


def test_a_non_ascii_callback_is_kept_percent_encoded(svc: Service) -> None:
    response = svc.http.post(f"{svc.url}/images", params={"callback_url": "http://127.0.0.1:9/hook/\u00e9?x=\u00fc"},
                             data=base64.b64encode(png((1, 1, 1))), headers={"Content-Type": "image/png"}, timeout=30)
    assert response.status_code == 202, response.text
    assert response.json()["callback"]["url"] == "http://127.0.0.1:9/hook/%C3%A9?x=%C3%BC"



# -- history and live events ------------------------------------------------------------------
def test_history_records_each_change_in_order(svc: Service) -> None:
    media_id = svc.upload(png((10, 20, 30)), "image/png")
    status = svc.wait(media_id)
    steps = [(h["state"], h["service"], h["code"]) for h in status["history"]]
    assert steps == [("Processing", "webserver", 202), ("Processing", "worker", 202), ("Completed", "worker", 200)]
    assert [h["at"] for h in status["history"]] == sorted(h["at"] for h in status["history"])
    assert status["history"][-1]["at"] == status["updated_at"]
    bad = svc.upload(png((1, 1, 1))[:60], "image/png")
    failed = svc.wait(bad)
    assert [h["state"] for h in failed["history"]] == ["Processing", "Processing", "Error"]
    assert failed["history"][-1]["code"] == 422 and failed["history"][-1]["message"] == failed["message"]
    assert "the upload" in failed["message"]  # the decoder's words, without our paths or its internals
    assert str(svc.workdir) not in failed["message"] and " @ " not in failed["message"]


def read_events(response: requests.Response, until: int | None = None) -> Iterator[tuple[str, dict]]:
    event = None
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            yield event or "message", json.loads(line.split(":", 1)[1])


def test_an_event_stream_sees_processing_then_completed_and_ends(svc: Service) -> None:
    workers = [psutil.Process(pid) for pid in svc.worker_pids()]
    for worker in workers:  # the stream opens before the job is taken
        worker.suspend()
    try:
        media_id = svc.upload(png((90, 10, 10), (3000, 2000)), "image/png")
        response = svc.http.get(f"{svc.url}/images/{media_id}/events", stream=True, timeout=60)
    finally:
        for worker in workers:
            worker.resume()
    with response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = list(read_events(response))  # ends by itself after the terminal state
    states = [body["state"] for _, body in events]
    assert {name for name, _ in events} == {"status"}
    assert states[0] == "Processing" and states[-1] == "Completed"
    assert set(states[:-1]) == {"Processing"}
    assert events[-1][1]["thumbnail"] == f"/images/{media_id}/thumbnail"


def test_a_late_stream_gets_the_current_state_first(svc: Service) -> None:
    media_id = svc.upload(png((1, 90, 10)), "image/png")
    svc.wait(media_id)
    with svc.http.get(f"{svc.url}/images/{media_id}/events", stream=True, timeout=30) as response:
        events = list(read_events(response))
    assert [(name, body["state"]) for name, body in events] == [("status", "Completed")]
    assert svc.get(f"/images/{'0' * 8}-0000-4000-8000-{'0' * 12}/events").status_code == 404


def test_the_all_media_stream_sees_every_change_and_deletes(svc: Service) -> None:
    seen: list[tuple[str, dict]] = []
    stop = threading.Event()

    def listen() -> None:
        with requests.get(f"{svc.url}/events", stream=True, timeout=60) as response:
            for event in read_events(response):
                seen.append(event)
                if stop.is_set():
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)
    first, second = svc.upload(png((1, 1, 200)), "image/png"), svc.upload(png((200, 1, 1)), "image/png")
    for media_id in (first, second):
        svc.wait(media_id)
    assert svc.delete(f"/images/{first}").status_code == 204
    wait_until(lambda: ("deleted", {"media_id": first}) in seen, 10, "the delete event")
    stop.set()
    for media_id in (first, second):
        mine = [body["state"] for name, body in seen if name == "status" and body["media_id"] == media_id]
        assert mine[0] == "Processing" and mine[-1] == "Completed", mine


# -- duplicates -------------------------------------------------------------------------------
def test_an_identical_upload_reuses_the_thumbnails_and_deleting_either_breaks_nothing(svc: Service) -> None:
    data = jpeg((17, 171, 71))
    first = svc.upload(data, "image/jpeg")
    assert svc.wait(first)["state"] == "Completed"
    second = svc.upload(data, "image/jpeg")
    status = svc.wait(second)
    assert status["state"] == "Completed"
    assert f"reused from identical upload {first}" in status["message"]
    assert status["sizes"] == svc.get(f"/images/{first}").json()["sizes"]
    original, _ = svc.thumbnail(first)
    assert svc.thumbnail(second)[0] == original
    assert svc.delete(f"/images/{first}").status_code == 204
    assert svc.thumbnail(second)[0] == original  # its own copy
    third = svc.upload(data, "image/jpeg")
    assert f"reused from identical upload {second}" in svc.wait(third)["message"]
    assert svc.delete(f"/images/{second}").status_code == 204
    assert svc.thumbnail(third)[0] == original
    other = svc.upload(jpeg((171, 17, 71)), "image/jpeg")
    assert "reused" not in svc.wait(other)["message"]
