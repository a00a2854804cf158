"""Completion webhooks end to end: a receiver on 127.0.0.1 verifies each signature, fails when told
to, and sees the retries under one event id; the delivering worker is killed mid-retry. The URL
rules at send time: tests/unit/test_webhook_rules.py. (CONTRACT second part, "Completion webhooks".)
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
from PIL import Image

from tests.harness import ALL_MODES, KILLED_JOB_RETURNS, Service, wait_until

pytestmark = pytest.mark.timeout(180)

SECRET = "whsec_test"


@dataclass
class Receiver:
    """An HTTP endpoint that answers the first `failures` POSTs with 500, then 200."""

    failures: int = 0
    answer: int = 200
    delay: float = 0.0
    seen: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.seen.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                      "at": time.monotonic()})
                time.sleep(receiver.delay)
                status = 500 if len(receiver.seen) <= receiver.failures else receiver.answer
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/thumbnailify?x=1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def verified(call: dict) -> dict:
    """The event, after checking its signature the way a receiver should: over "<t>.<raw body>",
    and the event id it de-duplicates on taken from the signed body, never from a header alone."""
    timestamp, signature = (part.split("=", 1)[1] for part in call["headers"]["Thumbnailify-Signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + call["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    assert abs(time.time() - int(timestamp)) < 120
    assert call["headers"]["Content-Type"] == "application/json"
    event = json.loads(call["body"])
    assert event["id"] == call["headers"]["Thumbnailify-Event-Id"]
    return event


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (90, 60), color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def hooked_service(mode: str, workdir: Path, receiver: Receiver, **overrides: str) -> Service:
    settings = {
        "THUMBNAILIFY_WEBHOOKS_SECRET": SECRET,
        "THUMBNAILIFY_WEBHOOKS_ALLOWED_HOSTS": f"127.0.0.1:{receiver.port}",
        "THUMBNAILIFY_WEBHOOKS_RETRY_BASE_DELAY": "0.3",
        "THUMBNAILIFY_WEBHOOKS_MAX_ATTEMPTS": "4",
        "THUMBNAILIFY_WEBHOOKS_TIMEOUT": "5",  # the receiver shares a loaded machine's cores
    }
    return Service(mode, workdir, webhook_workers=1, **(settings | overrides))


def upload_with_callback(service: Service, data: bytes, url: str) -> str:
    response = service.post(data, "image/png", params={"callback_url": url})
    assert response.status_code == 202, response.text
    return response.json()["media_id"]


def callback_of(service: Service, media_id: str) -> dict:
    return service.get(f"/images/{media_id}").json()["callback"]


@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_webhook_is_retried_with_one_event_id_until_delivered(mode: str, tmp_path: Path,
                                                                  receiver: Receiver) -> None:
    receiver.failures = 2
    with hooked_service(mode, tmp_path, receiver) as service:
        media_id = upload_with_callback(service, png((200, 10, 10)), receiver.url)
        wait_until(lambda: callback_of(service, media_id)["state"] != "pending", 30, "the callback to settle")
        assert callback_of(service, media_id) == {"url": receiver.url, "state": "delivered", "attempts": 3,
                                                  "last_status": 200}
        events = [verified(call) for call in receiver.seen]
        assert len(events) == 3 and all(e == events[0] for e in events)
        assert events[0]["event"] == "media.completed"
        assert list(events[0]) == ["id", "event", "media"]  # the id receivers dedupe on is signed
        assert events[0]["media"]["media_id"] == media_id and events[0]["media"]["state"] == "Completed"
        media = events[0]["media"]
        assert media["placeholder"]["thumbhash"] and media["placeholder"]["blurhash"] and len(media["phash"]) == 16
        assert media["metadata"]["format"] == "PNG" and media["metadata"]["width"] > 0
        ids = {call["headers"]["Thumbnailify-Event-Id"] for call in receiver.seen}
        assert len(ids) == 1
        assert receiver.seen[0]["path"] == "/hooks/thumbnailify?x=1"
        status = service.get(f"/images/{media_id}").json()
        assert status["state"] == "Completed"  # the webhook's failures never touched the media


@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_non_ascii_callback_path_is_sent_percent_encoded(mode: str, tmp_path: Path, receiver: Receiver) -> None:
    with hooked_service(mode, tmp_path, receiver) as service:
        media_id = upload_with_callback(service, png((30, 60, 90)), f"http://127.0.0.1:{receiver.port}/hook/\u00e9?x=\u00fc")
        wait_until(lambda: callback_of(service, media_id)["state"] != "pending", 30, "the callback to settle")
        encoded = f"http://127.0.0.1:{receiver.port}/hook/%C3%A9?x=%C3%BC"
        assert callback_of(service, media_id) == {"url": encoded, "state": "delivered", "attempts": 1,
                                                  "last_status": 200}
        assert [call["path"] for call in receiver.seen] == ["/hook/%C3%A9?x=%C3%BC"]


def test_a_failed_image_sends_media_failed(tmp_path: Path, receiver: Receiver) -> None:
    with hooked_service("distributed", tmp_path, receiver) as service:
        media_id = upload_with_callback(service, png((1, 1, 1))[:70], receiver.url)
        wait_until(lambda: callback_of(service, media_id)["state"] == "delivered", 30, "the callback")
        event = verified(receiver.seen[0])
        assert event["event"] == "media.failed"
        assert event["media"]["state"] == "Error" and "cannot decode" in event["media"]["message"]
        assert event["media"]["placeholder"] is None and event["media"]["metadata"] is None


def test_a_receiver_that_never_accepts_ends_failed(tmp_path: Path, receiver: Receiver) -> None:
    receiver.answer = 302  # a redirect is not followed and is not a delivery
    with hooked_service("embedded", tmp_path, receiver) as service:
        media_id = upload_with_callback(service, png((10, 200, 10)), receiver.url)
        wait_until(lambda: callback_of(service, media_id)["state"] != "pending", 30, "the callback to settle")
        assert callback_of(service, media_id) == {"url": receiver.url, "state": "failed", "attempts": 4,
                                                  "last_status": 302}
        assert [call["path"] for call in receiver.seen] == ["/hooks/thumbnailify?x=1"] * 4
        gaps = [b["at"] - a["at"] for a, b in zip(receiver.seen, receiver.seen[1:], strict=False)]
        assert all(gap >= 0.3 * 2 ** i * 0.9 for i, gap in enumerate(gaps)), gaps  # exponential back-off
        assert service.get(f"/images/{media_id}").json()["state"] == "Completed"


def test_a_slow_receiver_times_out_and_is_retried(tmp_path: Path, receiver: Receiver) -> None:
    receiver.delay = 2.5  # past webhooks.timeout (1 s): the first attempts do not count
    with hooked_service("distributed", tmp_path, receiver, THUMBNAILIFY_WEBHOOKS_TIMEOUT="1") as service:
        media_id = upload_with_callback(service, png((10, 10, 200)), receiver.url)
        wait_until(lambda: callback_of(service, media_id)["attempts"] >= 2, 30, "a retry")
        callback = callback_of(service, media_id)
        assert callback["state"] == "pending" and callback["last_status"] is None
        assert "error=no answer within 1s" in service.logs()


@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_slow_receiver_does_not_hold_up_another_hosts_webhook(mode: str, tmp_path: Path) -> None:
    slow, healthy = Receiver(delay=6.0), Receiver()  # slow answers past webhooks.timeout (3 s), always
    overrides = {"THUMBNAILIFY_WEBHOOKS_ALLOWED_HOSTS": f"127.0.0.1:{slow.port},127.0.0.1:{healthy.port}",
                 "THUMBNAILIFY_WEBHOOKS_TIMEOUT": "3", "THUMBNAILIFY_WEBHOOKS_MAX_ATTEMPTS": "8",
                 "THUMBNAILIFY_WEBHOOKS_PER_HOST": "2"}
    try:
        with hooked_service(mode, tmp_path, slow, **overrides) as service:
            stuck = [upload_with_callback(service, png((i, 40, 40)), slow.url) for i in range(8)]
            for media_id in stuck:  # so all eight webhook jobs are queued before the healthy one
                service.wait(media_id)
            media_id = upload_with_callback(service, png((40, 40, 200)), healthy.url)
            wait_until(lambda: healthy.seen, 60, "the healthy receiver's webhook")
            slow_before = [call for call in slow.seen if call["at"] < healthy.seen[0]["at"]]
            # One at a time, all eight first attempts at the slow host come first, each taking the
            # whole timeout; in parallel, at most per_host attempts at once go to it.
            assert len(slow_before) < 8, len(slow_before)
            assert verified(healthy.seen[0])["media"]["media_id"] == media_id
            wait_until(lambda: callback_of(service, media_id)["state"] == "delivered", 30, "the record")
            assert callback_of(service, media_id)["attempts"] == 1
    finally:
        slow.close()
        healthy.close()


def test_sigterm_lets_the_attempts_under_way_finish_and_settles_them(tmp_path: Path, receiver: Receiver) -> None:
    receiver.delay = 1.5  # within webhooks.timeout (5 s): the attempt is under way when SIGTERM comes
    with hooked_service("distributed", tmp_path, receiver) as service:
        media_id = upload_with_callback(service, png((5, 90, 5)), receiver.url)
        wait_until(lambda: receiver.seen, 30, "the attempt to begin")
        os.kill(service.worker_pids("webhook")[0], signal.SIGTERM)
        wait_until(lambda: "exited with 0" in service.logs(), 30, "the webhook worker to stop")
        assert callback_of(service, media_id) == {"url": receiver.url, "state": "delivered", "attempts": 1,
                                                  "last_status": 200}


@pytest.mark.parametrize("mode", ALL_MODES)
def test_killing_the_delivering_worker_mid_retry_still_delivers(mode: str, tmp_path: Path,
                                                                receiver: Receiver) -> None:
    receiver.failures = 2
    overrides = {"THUMBNAILIFY_WEBHOOKS_RETRY_BASE_DELAY": "1.5"} | KILLED_JOB_RETURNS.get(mode, {})
    with hooked_service(mode, tmp_path, receiver, **overrides) as service:
        media_id = upload_with_callback(service, png((120, 120, 0)), receiver.url)
        wait_until(lambda: len(receiver.seen) >= 1, 30, "the first attempt")
        webhook_workers = [p for p in psutil.Process(service.process.pid).children()
                           if p.cmdline()[-2:] == ["--kind", "webhook"]]
        assert len(webhook_workers) == 1
        os.kill(webhook_workers[0].pid, signal.SIGKILL)
        wait_until(lambda: callback_of(service, media_id)["state"] == "delivered", 60, "delivery after the kill")
        assert "exited with -9" in service.logs()
        assert len({call["headers"]["Thumbnailify-Event-Id"] for call in receiver.seen}) == 1
