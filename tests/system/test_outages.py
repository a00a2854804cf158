"""Outages of RabbitMQ, Redis and the volume during uploads, on the real services: a 202 always ends
Completed or Error (split from test_faults.py so no one file sets the suite's wall time)."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
import requests

from tests.harness import (
    AMQP_PORT,
    REDIS_PORT,
    PrivateRedis,
    Service,
    queue_depth,
    report,
    wait_until,
)
from tests.proxy import TcpProxy
from thumbnailify.backends.redis.layout import lock_key
from thumbnailify.server.background.maintenance import LEASE

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def post_stream(service: Service, payload: bytes, stop: threading.Event, results: list) -> None:
    session = requests.Session()
    while not stop.is_set():
        try:
            response = session.post(
                f"{service.url}/images", data=payload, headers={"Content-Type": "image/jpeg"}, timeout=30
            )
            media_id = response.json().get("media_id") if response.status_code == 202 else None
            results.append((response.status_code, response.headers.get("Retry-After"), media_id))
        except requests.RequestException as exc:
            results.append((0, None, repr(exc)))
        time.sleep(0.02)


def outage(service: Service, photo: bytes, toggles: tuple[object, object], failing: str, name: str) -> None:
    """POST continuously through an outage; every answer 202 or 503, every 202 completes."""
    results: list = []
    stop = threading.Event()
    poster = threading.Thread(target=post_stream, args=(service, base64.b64encode(photo), stop, results))
    poster.start()
    try:
        time.sleep(1.0)
        down, up = toggles
        down()  # type: ignore[operator]
        try:
            time.sleep(1.0)
            ready = service.get("/ready")
            assert ready.status_code == 503, ready.text
            assert failing in ready.json()["failing"]
            time.sleep(2.0)
        finally:
            up()  # type: ignore[operator]
        wait_until(lambda: service.get("/ready").status_code == 200, 60, "ready again")
        time.sleep(1.5)
    finally:
        stop.set()
        poster.join()
    statuses = Counter(status for status, _, _ in results)
    accepted = [media_id for status, _, media_id in results if status == 202]
    assert set(statuses) <= {202, 503}, statuses
    assert statuses[503] > 0, "the outage was not seen"
    assert all(retry == "5" for status, retry, _ in results if status == 503)
    finals = Counter(service.wait(media_id, timeout=120)["state"] for media_id in accepted)
    listed = service.get("/images", params={"limit": 1000}).json()["items"]
    report(name, posts=len(results), accepted=len(accepted), unavailable=statuses[503],
           other_5xx=sum(n for s, n in statuses.items() if s >= 500 and s != 503),
           completed=finals["Completed"], error=finals["Error"], stuck=finals["Processing"],
           lost=len(accepted) - sum(finals.values()))
    assert finals == {"Completed": len(accepted)}
    # Nothing of a 503'd upload was kept: exactly the accepted ones are listed and on disk.
    assert sorted(item["media_id"] for item in listed) == sorted(accepted)
    service.wait_uploads_removed()
    assert len(list(service.media_dir("thumbs").iterdir())) == len(accepted)


def test_rabbitmq_outage_during_uploads(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """RabbitMQ unreachable (behind a proxy that drops and refuses connections), then back."""
    with TcpProxy(AMQP_PORT) as broker:
        url = f"amqp://guest:guest@127.0.0.1:{broker.port}/%2F"
        with Service("distributed", tmp_path, THUMBNAILIFY_RABBITMQ_URL=url,
                     workers=2, video_workers=1, webhook_workers=1) as service:
            outage(service, photos["coffee.jpg"], (broker.cut, broker.restore), "rabbitmq", "rabbitmq-outage")


@pytest.mark.long
def test_redis_outage_during_uploads(tmp_path: Path, photos: dict[str, bytes]) -> None:
    private = PrivateRedis(tmp_path)
    private.start()
    try:
        service = Service("distributed", tmp_path / "svc", THUMBNAILIFY_REDIS_URL=private.url,
                          workers=2, video_workers=1, webhook_workers=1)
        with service as running:
            outage(running, photos["coffee.jpg"], (private.stop, private.start), "redis", "redis-outage")
    finally:
        private.stop()


def test_a_record_write_applied_after_its_timeout_keeps_nothing(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """Redis applies the new record but its reply comes after the client gave up: the upload is a
    503, and neither its record nor its file stays (nothing to list, nothing to process)."""
    with TcpProxy(REDIS_PORT) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        with Service("distributed", tmp_path, workers=0, THUMBNAILIFY_REDIS_URL=url,
                     THUMBNAILIFY_REDIS_TIMEOUT="1", video_workers=1, webhook_workers=1) as service:
            # The first maintenance round takes and gives back its lease with scripts that answer :1
            # too; under load one came after the stall was set and took it instead of the create.
            lease = redis.Redis(port=REDIS_PORT)
            wait_until(lambda: "recovery pass:" in service.logs()
                       and not lease.exists(lock_key(service.env["THUMBNAILIFY_REDIS_PREFIX"], LEASE)),
                       30, "the first maintenance round over")
            proxy.stall(3, starting=b":1\r\n")  # the create script's reply, not a PONG or an event
            response = service.post(photos["coffee.jpg"], "image/jpeg")
            assert response.status_code == 503, response.text
            assert "redis" in response.json()["message"]
            time.sleep(3)  # the stalled reply is delivered; nothing may come back with it
            assert service.get("/images").json()["items"] == []
            assert list(service.media_dir("raw").iterdir()) == []


def test_a_key_reservation_applied_after_its_timeout_is_freed(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """Redis reserves an Idempotency-Key but its reply comes after the client gave up: the upload is
    a 503, and the client's retry with that key is taken (not a 409 until the reservation expires)."""
    with TcpProxy(REDIS_PORT) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        with Service("distributed", tmp_path, THUMBNAILIFY_REDIS_URL=url, THUMBNAILIFY_REDIS_TIMEOUT="1",
                     workers=2, video_workers=1, webhook_workers=1) as service:
            headers = {"Idempotency-Key": str(uuid.uuid4())}
            proxy.stall(3, starting=b"+OK\r\n")  # the reservation's SET NX, not a PONG or an event
            refused = service.post(photos["coffee.jpg"], "image/jpeg", headers=headers)
            assert refused.status_code == 503, refused.text
            time.sleep(3)  # the stalled reply is delivered
            retried = service.post(photos["coffee.jpg"], "image/jpeg", headers=headers)
            assert retried.status_code == 202, retried.text
            assert service.wait(retried.json()["media_id"])["state"] == "Completed"


def test_volume_outage_retries_then_dead_letters(tmp_path: Path, photos: dict[str, bytes]) -> None:
    service = Service("distributed", tmp_path, THUMBNAILIFY_WORKER_MAX_RETRIES="3",
                      THUMBNAILIFY_WORKER_RETRY_BASE_DELAY="0.1", workers=2, video_workers=1, webhook_workers=1)
    with service as running:
        thumbs = running.media_dir("thumbs")
        thumbs.rename(thumbs.with_name("thumbs-away"))
        thumbs.write_bytes(b"")  # a file where the folder was: every thumbnail write fails
        try:
            media_id = running.upload(photos["coffee.jpg"], "image/jpeg")
            status = running.wait(media_id, timeout=60)
        finally:
            thumbs.unlink()
            thumbs.with_name("thumbs-away").rename(thumbs)
        assert status["state"] == "Error" and status["http_status"] == 503, status
        assert "gave up after 3 tries" in status["message"]
        assert queue_depth(f"{running.queue}.dead") == 1
        assert running.logs().count("transient fault, retrying") >= 2
        again = running.upload(photos["coffee.jpg"], "image/jpeg")
        assert running.wait(again)["state"] == "Completed"
