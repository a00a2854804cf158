"""rabbitmq.queue_type: quorum on the real RabbitMQ: server and workers declare the same queue,
jobs go through, and poison jobs end as Error 422 whether the worker's own count or the broker's
delivery limit stops them (CONTRACT.md, second part, "Past one machine")."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pika
import pytest

from tests.corpus import TINY_PNG, slow_png
from tests.harness import AMQP_URL, Service, queue_depth, wait_until
from thumbnailify.backends.rabbitmq.sync import declare_queues
from thumbnailify.kinds import dead_letter_queue, light_queue
from thumbnailify.settings import load_settings

pytestmark = pytest.mark.timeout(180)
QUORUM = {"THUMBNAILIFY_RABBITMQ_QUEUE_TYPE": "quorum", "THUMBNAILIFY_WORKER_MAX_ATTEMPTS": "2"}


def queue_types(prefix: str) -> dict[str, str]:
    """What the broker says each of our queues is (classic, quorum)."""
    listed = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name", "type", "--formatter", "json"],
                            check=True, capture_output=True, text=True).stdout
    return {q["name"]: q["type"] for q in json.loads(listed) if q["name"].startswith(prefix)}


def reject(queue: str, times: int) -> str:
    """Take the queue's one job and hand it back `times` times with basic.reject (requeue), as a
    crashing consumer would; returns its body."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    body = b""
    try:
        channel = connection.channel()
        for _ in range(times):
            method = None
            deadline = time.monotonic() + 10
            while method is None and time.monotonic() < deadline:
                method, _properties, body = channel.basic_get(queue)
            assert method is not None, "the job was not handed out again"
            channel.basic_reject(method.delivery_tag, requeue=True)
    finally:
        connection.close()
    return body.decode()


def test_quorum_queue_round_trip_and_a_time_limit_poison(tmp_path: Path) -> None:
    # A 2x2 PNG is a fresh worker's first job in ~30 ms quiet (over 0.15 s, and once over 0.3 s, under
    # a full suite's load); a 49 MP PNG takes ~0.5 s quiet on this machine's cores, more under load (a
    # 50 MP PNG finished inside 0.6 s here): the limit sits between the two, and a second attempt
    # keeps a slow minute from failing the small one.
    service = Service("distributed", tmp_path, workers=1, video_workers=1, webhook_workers=1,
                      **(QUORUM | {"THUMBNAILIFY_WORKER_JOB_TIMEOUT": "0.3"}))
    with service:
        types = queue_types(service.queue)
        assert types[service.queue] == types[f"{service.queue}.video"] == "quorum", types
        assert types[f"{service.queue}.high"] == types[f"{service.queue}.video.bulk"] == "quorum", types
        assert types[f"{service.queue}.light"] == types[f"{service.queue}.video.bulk.light"] == "quorum", types
        assert types[f"{service.queue}.dead"] == "classic", types
        media_id = service.upload(TINY_PNG, "image/png")
        status = service.wait(media_id)
        assert status["state"] == "Completed", (status, service.logs()[-3000:])
        slow = service.upload(slow_png(0), "image/png")
        status = service.wait(slow, timeout=120)
        assert status["state"] == "Error" and status["http_status"] == 422, status
        assert "crashed or timed out the worker" in status["message"]


def test_a_job_the_broker_dead_letters_ends_as_error_422(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """The broker itself dead-letters a job delivered more than max_attempts times (a consumer that
    rejects it each time); a worker finds it in <queue>.dead and records Error 422, while a dead
    letter of a worker's own (an outage) stays there for a replay."""
    service = Service("distributed", tmp_path, workers=0, **QUORUM, video_workers=1, webhook_workers=1)
    with service:
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = declare_queues(connection, load_settings(service.env), service.queue)
        outage_letter = pika.BasicProperties(delivery_mode=2, headers={"media_type": "image/png", "reason": "outage"})
        channel.basic_publish("", dead_letter_queue(service.queue), b"kept-for-replay", outage_letter)
        connection.close()

        media_id = service.upload(photos["camera.png"], "image/png")
        # The client's first job: in the normal lane's light part. Delivered 3 times: one more than max_attempts.
        assert reject(light_queue(service.queue), 3) == media_id
        wait_until(lambda: queue_depth(dead_letter_queue(service.queue)) == 2, 10, "the broker to dead-letter it")
        assert service.wait(media_id, timeout=0.1)["state"] == "Processing"  # nobody recorded it yet

        service.stop()
        service.workers = 1
        service.start()
        status = service.wait(media_id, timeout=30)
        assert status["state"] == "Error" and status["http_status"] == 422, status
        assert "gave up after more than 2 deliveries" in status["message"]
        service.wait_uploads_removed()
        wait_until(lambda: queue_depth(dead_letter_queue(service.queue)) == 1, 10, "the letter to go")
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            _, properties, body = connection.channel().basic_get(dead_letter_queue(service.queue), auto_ack=True)
        finally:
            connection.close()
        assert body == b"kept-for-replay" and properties.headers["reason"] == "outage"

        later = service.upload(photos["coffee.jpg"], "image/jpeg")
        assert service.wait(later)["state"] == "Completed"
