"""Completion webhooks end to end: a receiver on 127.0.0.1 verifies each signature, fails when told
to, and sees the retries under one event id; the delivering worker is killed mid-retry; the URL
rules hold at send time too. (CONTRACT second part, "Completion webhooks".)
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

from common.callbacks import CallbackRefused, check_addresses, check_url, parse_allowed_hosts
from common.config import WebhookSettings
from tests.harness import MODES, Service, wait_until
from worker.webhook_http import post

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
    """The event, after checking its signature the way a receiver should."""
    timestamp, signature = (part.split("=", 1)[1] for part in call["headers"]["Thumbnailify-Signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + call["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    assert abs(time.time() - int(timestamp)) < 120
    assert call["headers"]["Content-Type"] == "application/json"
    return json.loads(call["body"])


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
    return Service(mode, workdir, **(settings | overrides))


def upload_with_callback(service: Service, data: bytes, url: str) -> str:
    response = service.post(data, "image/png", params={"callback_url": url})
    assert response.status_code == 202, response.text
    return response.json()["media_id"]


def callback_of(service: Service, media_id: str) -> dict:
    return service.get(f"/images/{media_id}").json()["callback"]


@pytest.mark.parametrize("mode", MODES)
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
        assert events[0]["media"]["media_id"] == media_id and events[0]["media"]["state"] == "Completed"
        ids = {call["headers"]["Thumbnailify-Event-Id"] for call in receiver.seen}
        assert len(ids) == 1
        assert receiver.seen[0]["path"] == "/hooks/thumbnailify?x=1"
        status = service.get(f"/images/{media_id}").json()
        assert status["state"] == "Completed"  # the webhook's failures never touched the media


def test_a_failed_image_sends_media_failed(tmp_path: Path, receiver: Receiver) -> None:
    with hooked_service("distributed", tmp_path, receiver) as service:
        media_id = upload_with_callback(service, png((1, 1, 1))[:70], receiver.url)
        wait_until(lambda: callback_of(service, media_id)["state"] == "delivered", 30, "the callback")
        event = verified(receiver.seen[0])
        assert event["event"] == "media.failed"
        assert event["media"]["state"] == "Error" and "cannot decode" in event["media"]["message"]


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


@pytest.mark.parametrize("mode", MODES)
def test_killing_the_delivering_worker_mid_retry_still_delivers(mode: str, tmp_path: Path,
                                                                receiver: Receiver) -> None:
    receiver.failures = 2
    overrides = {"THUMBNAILIFY_WEBHOOKS_RETRY_BASE_DELAY": "1.5"}
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


# -- the URL rules at send time -------------------------------------------------------------------
def conf(allowed: str) -> WebhookSettings:
    return WebhookSettings(secret=SECRET, allowed_hosts=allowed, timeout=1.0)


@pytest.mark.parametrize(("url", "allowed", "refused_because"), [
    ("http://127.0.0.1:9/x", "*.example.com", "not in webhooks.allowed_hosts"),
    ("http://localhost:9/x", "*.localhost", "not in webhooks.allowed_hosts"),  # the wildcard needs a subdomain
    ("file:///etc/passwd", "127.0.0.1", "http"),
    ("http://169.254.169.254/latest", "169.254.169.254", "metadata"),
    ("http://nonexistent.invalid/x", "nonexistent.invalid", "does not resolve"),
])
def test_send_time_checks_refuse_without_connecting(url: str, allowed: str, refused_because: str) -> None:
    attempt = post(url, b"{}", "event", conf(allowed))
    assert attempt.status is None and not attempt.delivered
    assert attempt.error.startswith("refused") and refused_because in attempt.error


@pytest.mark.parametrize(("host_entry", "addresses", "allowed"), [
    ("hooks.example.com", ["93.184.216.34"], True),
    ("*.example.com", ["93.184.216.34"], True),
    ("*.example.com", ["10.1.2.3"], False),  # a wildcard never reaches private addresses
    ("*.example.com", ["93.184.216.34", "127.0.0.1"], False),  # one bad answer is enough
    ("*.example.com", ["::ffff:127.0.0.1"], False),
    ("*.example.com", ["100.64.0.1"], False),
    ("*.example.com", ["224.0.0.1"], False),
    ("*.example.com", ["fd00:ec2::254"], False),
    ("hooks.example.com", ["10.1.2.3"], True),  # listed exactly: an internal receiver
    ("hooks.example.com", ["169.254.169.254"], False),  # but never the metadata service
])
def test_resolved_addresses_against_the_rules(host_entry: str, addresses: list[str], allowed: bool) -> None:
    target = check_url("https://hooks.example.com/x", parse_allowed_hosts(host_entry))
    if allowed:
        assert [str(a) for a in check_addresses(target, addresses)]
    else:
        with pytest.raises(CallbackRefused):
            check_addresses(target, addresses)
