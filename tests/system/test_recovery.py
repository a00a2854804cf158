"""The recovery pass on the real services: jobs lost between the store and the queue are sent again,
once across processes, beside serving (split from test_faults.py so no one file sets the suite's
wall time)."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pika
import pytest
import redis
from nats.js import JetStreamContext

from tests.harness import (
    ALL_MODES,
    AMQP_PORT,
    AMQP_URL,
    NATS_MODE,
    Service,
    lane_depth,
    nats_jobs_waiting,
    nats_lose_jobs,
    nats_value,
    nats_write_records,
    on_nats,
    report,
    wait_until,
)
from tests.proxy import TcpProxy
from thumbnailify.kinds import lane_queues
from thumbnailify.lanes import Priority

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


@pytest.mark.parametrize("mode", ALL_MODES)
def test_recovery_pass_requeues_lost_jobs(mode: str, tmp_path: Path, photos: dict[str, bytes]) -> None:
    """A Processing record with its upload but no message (lost before the fix) is re-queued at start."""
    service = Service(mode, tmp_path, workers=0)
    service.start()
    try:
        media_id = service.upload(photos["coffee.jpg"], "image/jpeg")
        service.stop()
        lose_messages(service)
        assert queued_jobs(service) == 0
        backdate(service, media_id)
        service.workers = 1
        service.start()
        assert service.wait(media_id)["state"] == "Completed"
        assert "1 stale jobs re-queued" in service.logs()
    finally:
        service.stop()
        service.cleanup()


def plant_stale_jobs(service: Service, count: int) -> list[str]:
    """Processing records untouched for long, each with its upload, whose messages were lost."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    raw = service.media_dir("raw")
    raw.mkdir(parents=True, exist_ok=True)
    old = "2026-01-01T00:00:00.000Z"
    record = {"media_type": "image/png", "service": "webserver", "state": "Processing", "message": "planted",
              "code": "202", "created_at": old, "updated_at": old}
    for media_id in ids:
        (raw / media_id).write_bytes(b"\x89PNG\r\n\x1a\n")
    if service.mode == "distributed":
        prefix = service.env["THUMBNAILIFY_REDIS_PREFIX"]
        client = redis.Redis.from_url(service.redis_url)
        with client.pipeline() as pipe:
            for score, media_id in enumerate(ids):
                pipe.hset(f"{prefix}media:{media_id}", mapping=record)
                pipe.zadd(f"{prefix}index", {media_id: score})
                pipe.zadd(f"{prefix}index:Processing", {media_id: score})
            pipe.execute()
        client.close()
    elif service.mode == NATS_MODE:
        planted = {media_id: (record, float(score)) for score, media_id in enumerate(ids)}
        on_nats(service.env, lambda js, stream: nats_write_records(js, stream, planted))
    else:
        with closing(sqlite3.connect(service.env["THUMBNAILIFY_SQLITE_PATH"])) as conn, conn:
            conn.executemany("INSERT INTO media (media_id, score, state, record) VALUES (?, ?, 'Processing', ?)",
                             [(media_id, score, json.dumps(record)) for score, media_id in enumerate(ids)])
    return ids


def queued_jobs(service: Service) -> int:
    if service.mode == "distributed":
        return lane_depth(service.queue)
    if service.mode == NATS_MODE:
        return on_nats(service.env, nats_jobs_waiting)
    with closing(sqlite3.connect(service.env["THUMBNAILIFY_SQLITE_PATH"])) as conn:
        return conn.execute("SELECT COUNT(*) FROM jobs WHERE dead = 0").fetchone()[0]


@pytest.mark.parametrize("mode", ALL_MODES)
def test_recovery_runs_beside_serving_and_once_across_processes(mode: str, tmp_path: Path) -> None:
    """2,000 lost jobs: the server serves at once, and of two processes one re-queues each job once."""
    # A shared Redis and RabbitMQ slowed by the other tests must not cut the pass short (outages
    # are tested elsewhere): this test is about start-up and the lease.
    service = Service(mode, tmp_path, workers=0, THUMBNAILIFY_SERVER_PROCESSES="2", THUMBNAILIFY_REDIS_TIMEOUT="10",
                      THUMBNAILIFY_RABBITMQ_PUBLISH_TIMEOUT="30")
    service.start()  # creates the schema / queue
    service.stop()
    plant_stale_jobs(service, 2000)
    earlier = len(service.logs())
    try:
        service.start()
        wait_until(lambda: service.logs()[earlier:].count("recovery pass:") >= 2, 120,
                   "both processes' recovery line")
        logs = service.logs()[earlier:]
        passes = re.findall(r"recovery pass: (\d+) stale jobs re-queued.* in ([\d.]+)s", logs)
        report(f"recovery-{mode}", jobs=2000, passes=passes)
        assert "maintenance skipped" not in logs, logs
        # The process that ran the pass was serving before it ended (the other may start later).
        done = re.search(r"server\[(\d+)\] [\w.]+: recovery pass: 2000 stale jobs re-queued", logs)
        assert done is not None, logs
        assert logs.index(f"server[{done.group(1)}] server: serving on") < done.start()
        assert sum(int(n) for n, _ in passes) == 2000  # the other process found nothing left, or waited
        assert queued_jobs(service) == 2000
    finally:
        service.stop()
        service.cleanup()


@pytest.mark.long
def test_jobs_a_queue_outage_kept_from_recovery_are_sent_when_it_is_back(tmp_path: Path) -> None:
    """RabbitMQ is down during the recovery pass: the jobs it touched but could not send are sent by
    the pass retried once the broker is back, not left until they are stale again."""
    with TcpProxy(AMQP_PORT) as broker:
        url = f"amqp://guest:guest@127.0.0.1:{broker.port}/%2F"
        service = Service("distributed", tmp_path, workers=0, THUMBNAILIFY_RABBITMQ_URL=url)
        service.start()  # creates the queue
        service.stop()
        ids = plant_stale_jobs(service, 100)
        earlier = len(service.logs())
        broker.cut()
        try:
            service.start(wait=False)
            wait_until(lambda: "maintenance skipped: rabbitmq unavailable" in service.logs()[earlier:], 60,
                       "the recovery pass to fail")
            assert queued_jobs(service) == 0
            broker.restore()
            wait_until(lambda: "recovery pass:" in service.logs()[earlier:], 60, "the retried recovery pass")
            assert "recovery pass: 100 stale jobs re-queued" in service.logs()[earlier:]
            assert queued_jobs(service) == 100
            messages = [entry["message"] for entry in service.get(f"/images/{ids[0]}").json()["history"]]
            assert messages[-2].startswith("Re-queue failed (rabbitmq unavailable)"), messages
            assert messages[-1] == "Re-queued: the job's message had been lost"
        finally:
            service.stop()
            service.cleanup()


def lose_messages(service: Service) -> None:
    if service.mode == "distributed":
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = connection.channel()
        for queue in lane_queues(service.queue, "image")[Priority.NORMAL]:
            channel.queue_purge(queue)
        connection.close()
        return
    if service.mode == NATS_MODE:
        on_nats(service.env, nats_lose_jobs)
        return
    with closing(sqlite3.connect(service.env["THUMBNAILIFY_SQLITE_PATH"])) as conn, conn:
        conn.execute("DELETE FROM jobs")


def backdate(service: Service, media_id: str) -> None:
    """Make the record look untouched for two minutes, past server.recovery_min_age."""
    old = "2026-01-01T00:00:00.000Z"
    if service.mode == "distributed":
        client = redis.Redis.from_url(service.redis_url)
        client.hset(f"{service.env['THUMBNAILIFY_REDIS_PREFIX']}media:{media_id}", "updated_at", old)
        client.close()
        return
    if service.mode == NATS_MODE:
        on_nats(service.env, lambda js, stream: backdate_on_nats(js, stream, media_id, old))
        return
    with closing(sqlite3.connect(service.env["THUMBNAILIFY_SQLITE_PATH"])) as conn, conn:
        conn.execute("UPDATE media SET record = json_set(record, '$.updated_at', ?) WHERE media_id = ?",
                     (old, media_id))


async def backdate_on_nats(js: JetStreamContext, stream: str, media_id: str, old: str) -> None:
    record = await nats_value(js, f"{stream}_records", media_id)
    assert record is not None
    await nats_write_records(js, stream, {media_id: (record | {"updated_at": old}, float(record["score"]))})
