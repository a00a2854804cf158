"""Priority lanes and fair share (thumbnailify.lanes) in every queue backend: the embedded queue,
RabbitMQ (a queue per lane) and NATS (a consumer per lane). A high job waits behind at most one
job per worker however many bulk jobs are queued; bulk keeps its share while high jobs keep
coming; retries, dead letters and the recovery pass keep a job's lane; a lane none of ours, in a
message or a row, is normal; a queue made before there were lanes keeps working."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pika
import pytest
import redis

from tests.api.conftest import Api, ApiFactory, embedded_env
from tests.api.test_clients import ADMIN, TENANT_SETTINGS, bearer, new_client, png, upload_as
from tests.harness import AMQP_URL, NATS_MODE, REDIS_URL, nats_value, on_nats
from thumbnailify.backends.loader import load_backend
from thumbnailify.backends.nats.layout import backlog_key as nats_backlog_key
from thumbnailify.backends.redis.backlog import backlog_key
from thumbnailify.backends.sqlite.sync_queue import SQLiteConsumer
from thumbnailify.kinds import lane_queue, work_queue_arguments
from thumbnailify.lanes import Priority
from thumbnailify.record import DEFAULT_OWNER
from thumbnailify.server.background.maintenance import LEASE, LEASE_SECONDS
from thumbnailify.server.background.recovery import requeue_stale
from thumbnailify.server.resources import RESOURCES
from thumbnailify.settings import load_settings
from thumbnailify.worker.backends import TABLE, Consumer, DeadLetters, Delivery

HIGH, NORMAL, BULK = Priority.HIGH, Priority.NORMAL, Priority.BULK
TAKE_SECONDS = 2.0


@pytest.fixture(params=["embedded", "distributed", NATS_MODE])
def api_mode(request: pytest.FixtureRequest) -> str:
    return request.param


class Queue:
    """The app's publisher and one photo worker's consumer, both on the app's thread of the test
    (the consumer's calls run on a worker thread of their own, as a worker's would)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.consumer: Consumer | None = None

    async def publish(self, lane: Priority, client: str, count: int = 1) -> list[str]:
        ids = [str(uuid.uuid4()) for _ in range(count)]
        publisher = self.api.client.app[RESOURCES].publisher
        await asyncio.gather(*(publisher.publish(media_id, "image/png", lane, client) for media_id in ids))
        return ids

    async def _call(self, call: Callable[[Consumer], Any]) -> Any:
        def run() -> Any:
            if self.consumer is None:
                self.consumer = load_backend(TABLE, "queue", self.api.settings.backends.queue)(self.api.settings,
                                                                                              "image")
            return call(self.consumer)
        return await self.api.worker._on_thread(run)

    async def take(self, seconds: float = TAKE_SECONDS) -> Delivery:
        delivery = await self._call(lambda consumer: consumer.next(seconds))
        assert delivery is not None, "no job came"
        return delivery

    async def take_and_ack(self) -> Delivery:
        delivery = await self.take()
        await self._call(lambda consumer: consumer.ack(delivery))
        return delivery

    async def settle(self, call: Callable[[Consumer], None]) -> None:
        await self._call(call)

    async def close(self) -> None:
        if self.consumer is not None:
            await self._call(lambda consumer: consumer.close())


@pytest.fixture
async def queue(api: Api) -> AsyncIterator[Queue]:
    lanes = Queue(api)
    yield lanes
    await lanes.close()


async def test_a_high_job_waits_for_at_most_one_job_per_worker_behind_50_bulk_jobs(queue: Queue) -> None:
    bulk = await queue.publish(BULK, "importer", 50)
    first = await queue.take()  # the worker is busy with a bulk job when the high one comes
    [high] = await queue.publish(HIGH, "app")
    await queue.settle(lambda consumer: consumer.ack(first))
    taken = [await queue.take_and_ack() for _ in range(2)]
    ids = [delivery.media_id for delivery in taken]
    assert high in ids, f"the high job came after {ids}"
    if queue.api.mode == "embedded":  # the worker saw both lanes at its pick: exactly next
        assert ids[0] == high
    delivery = taken[ids.index(high)]
    assert (delivery.lane, delivery.client) == (HIGH, "app")
    assert first.media_id in bulk and (first.lane, first.client) == (BULK, "importer")


async def test_bulk_keeps_its_share_while_high_jobs_keep_coming(queue: Queue) -> None:
    await queue.publish(BULK, "importer", 20)
    lanes = []
    for _ in range(20):
        await queue.publish(HIGH, "app")
        lanes.append((await queue.take_and_ack()).lane)
    # Weights 4:1: at least one bulk job in five picks; RabbitMQ's and NATS's workers may give bulk
    # up to half (a lane's next job reaches the worker a round trip after its ack).
    assert lanes.count(BULK) >= 4, lanes
    assert lanes.count(HIGH) >= 8, lanes
    if queue.api.mode == "embedded":
        assert lanes[:5] == [HIGH] * 4 + [BULK]


async def test_a_retried_job_keeps_its_lane_and_client(queue: Queue) -> None:
    await queue.publish(BULK, "importer", 3)
    [high] = await queue.publish(HIGH, "app")
    delivery = await queue.take()
    while delivery.media_id != high:
        await queue.settle(lambda consumer, d=delivery: consumer.ack(d))
        delivery = await queue.take()
    await queue.settle(lambda consumer: consumer.retry_later(delivery, 0.05))
    again = await queue.take()
    while again.media_id != high:
        await queue.settle(lambda consumer, d=again: consumer.ack(d))
        again = await queue.take()
    assert (again.lane, again.client) == (HIGH, "app")


async def test_a_dead_letter_keeps_its_lane_and_is_replayed_into_it(queue: Queue) -> None:
    [media_id] = await queue.publish(HIGH, "app")
    delivery = await queue.take()
    await queue.settle(lambda consumer: consumer.dead_letter(delivery, "store down on every try"))
    settings = queue.api.settings

    def replay_one() -> tuple[Priority, str, str]:
        letters: DeadLetters = load_backend(TABLE, "dead_letters", settings.backends.queue)(settings, "image")
        try:
            letter = letters.take()
            assert letter is not None
            letters.requeue(letter)
            return letter.lane, letter.client, letter.media_id
        finally:
            letters.close()

    assert await queue.api.worker._on_thread(replay_one) == (HIGH, "app", media_id)
    again = await queue.take()
    assert (again.media_id, again.lane, again.client) == (media_id, HIGH, "app")


async def test_uploads_take_their_clients_lane_end_to_end(make_api: ApiFactory) -> None:
    """Through the API: a bulk importer's photos queued first, then an interactive client's one;
    the worker takes the interactive one with at most one job ahead of it, and every item ends."""
    svc = await make_api(**TENANT_SETTINGS)
    importer = await new_client(svc, "importer", priority="bulk")
    app = await new_client(svc, "app", priority="high")
    imports = []
    for shade in range(6):
        answer = await upload_as(svc, importer, png((shade * 40, 10, 10)))
        assert answer.status_code == 202, answer.text
        imports.append(answer.json()["media_id"])
    answer = await upload_as(svc, app, png((10, 200, 10)))
    assert answer.status_code == 202, answer.text
    interactive = answer.json()["media_id"]
    assert (svc.record(interactive) or {}).get("lane") == "high"
    assert (svc.record(imports[0]) or {}).get("lane") == "bulk"
    taken = []
    while len(taken) < 2:
        media_id = await svc.worker.run_one()
        if media_id is not None:
            taken.append(media_id)
    assert interactive in taken, taken
    await svc.drain()
    for key, media_id in [(app, interactive), *((importer, i) for i in imports)]:
        status = await svc.get(f"/images/{media_id}", headers=bearer(key))
        assert status.json()["state"] == "Completed", status.text
    assert (await svc.get("/admin/keys", headers=bearer(ADMIN))).status_code == 200


# -- the embedded queue's own: clients take turns within a lane, old files, hostile rows ----------
@pytest.mark.parametrize("api_mode", ["embedded"])
async def test_clients_take_turns_within_a_lane(queue: Queue) -> None:
    await queue.publish(BULK, "importer", 30)
    late = await queue.publish(BULK, "small-shop", 2)
    taken = [(await queue.take_and_ack()).client for _ in range(4)]
    assert taken == ["importer", "small-shop"] * 2  # by name first: neither was served before
    assert {(await queue.take_and_ack()).client for _ in range(26)} == {"importer"}
    assert len(late) == 2


@pytest.mark.parametrize("api_mode", ["embedded"])
async def test_the_recovery_pass_requeues_a_lost_job_into_its_lane(make_api: ApiFactory) -> None:
    svc = await make_api(THUMBNAILIFY_SERVER_RECOVERY_MIN_AGE="0", **TENANT_SETTINGS)
    res = svc.client.app[RESOURCES]
    for _ in range(100):  # the test runs the pass itself: the app's own must not run first
        if await res.store.acquire_lock(LEASE, "the test", LEASE_SECONDS):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the app's own recovery pass kept the maintenance lease")
    app = await new_client(svc, "app", priority="high")
    answer = await upload_as(svc, app, png((1, 2, 3)))
    media_id = answer.json()["media_id"]
    db = sqlite3.connect(svc.env["THUMBNAILIFY_SQLITE_PATH"])
    try:
        db.execute("DELETE FROM jobs")  # the job lost
        db.commit()

        async def renew() -> None:
            return None

        assert (await requeue_stale(res, renew))["requeued"] == 1
        assert db.execute("SELECT media_id, lane, client FROM jobs").fetchall() == [(media_id, "high", "app")]
    finally:
        db.close()


PRE_LANES_JOBS = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, media_id TEXT NOT NULL, media_type TEXT NOT NULL,
    enqueued REAL NOT NULL, lease_until REAL NOT NULL DEFAULT 0, deliveries INTEGER NOT NULL DEFAULT 0,
    owner INTEGER NOT NULL DEFAULT 0, dead INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '',
    dead_at REAL NOT NULL DEFAULT 0, queue TEXT NOT NULL DEFAULT 'image'
);
INSERT INTO jobs (media_id, media_type, enqueued) VALUES ('queued-before-lanes', 'image/png', 1);
"""


def test_a_file_from_before_lanes_keeps_its_jobs_and_a_foreign_lane_is_normal(tmp_path: Path) -> None:
    settings = load_settings(embedded_env(tmp_path))
    path = settings.path(settings.sqlite.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(PRE_LANES_JOBS)
    db.close()
    consumer = SQLiteConsumer(settings, "image")
    try:
        consumer.queue.put("a-bulk-job", "image/png", BULK, "importer")
        with consumer.queue.db.transaction() as conn:  # a row no version of ours writes
            conn.execute("INSERT INTO jobs (media_id, media_type, enqueued, lane) VALUES ('odd', 'image/png', 2, 'x')")
        reopened = SQLiteConsumer(settings, "image")  # a lane none of ours becomes normal at open
        try:
            taken = []
            while (delivery := reopened.next(0)) is not None:
                reopened.ack(delivery)
                taken.append((delivery.media_id, delivery.lane, delivery.client))
        finally:
            reopened.close()
        assert taken == [("queued-before-lanes", NORMAL, DEFAULT_OWNER), ("odd", NORMAL, DEFAULT_OWNER),
                         ("a-bulk-job", BULK, "importer")]  # normal's two turns, then bulk's
    finally:
        consumer.close()


# -- RabbitMQ: messages from before lanes and from strangers ---------------------------------------
@pytest.mark.parametrize("api_mode", ["distributed"])
async def test_a_queue_made_before_lanes_keeps_its_jobs_and_headers_cannot_move_a_job(
        make_api: ApiFactory, tmp_path: Path) -> None:
    name = f"test-pre-lanes-{uuid.uuid4().hex[:8]}"
    settings = load_settings(embedded_env(tmp_path) | {"THUMBNAILIFY_RABBITMQ_QUEUE": name})
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    # As a server from before lanes declared it and published to it.
    channel.queue_declare(name, durable=True, arguments=work_queue_arguments(settings, name))
    channel.basic_publish("", name, b"old-job", pika.BasicProperties(delivery_mode=2,
                                                                     headers={"media_type": "image/png"}))
    svc = await make_api(THUMBNAILIFY_RABBITMQ_QUEUE=name)  # declares the lanes' queues beside it
    try:
        odd = [(lane_queue(name, HIGH), {"media_type": "image/png", "lane": "bulk", "client": 7}),
               (name, {"lane": "warp-speed", "client": "x" * 10_000}),
               (name, None)]
        for queue_name, headers in odd:
            channel.basic_publish("", queue_name, b"odd", pika.BasicProperties(delivery_mode=2, headers=headers))
        queue = Queue(svc)
        taken = sorted([await queue.take_and_ack() for _ in range(4)], key=lambda d: d.media_id)
        await queue.close()
        assert [(d.media_id, d.media_type, d.lane, d.client) for d in taken] == [
            ("odd", "image/png", HIGH, DEFAULT_OWNER),  # the queue it waited in, whatever its header says
            ("odd", None, NORMAL, DEFAULT_OWNER),
            ("odd", None, NORMAL, DEFAULT_OWNER),
            ("old-job", "image/png", NORMAL, DEFAULT_OWNER),
        ]
    finally:
        connection.close()


@pytest.mark.parametrize("api_mode", [NATS_MODE])
async def test_a_nats_job_is_served_in_the_lane_of_its_subject_whatever_its_headers(queue: Queue) -> None:
    stream = queue.api.env["THUMBNAILIFY_NATS_STREAM"]

    async def publish_raw(js: Any, _stream: str) -> None:
        await js.publish(f"{stream}.media.m1.queued.image.high", b"m1", headers={"lane": "bulk", "client": ""})
        await js.publish(f"{stream}.media.m2.queued.image", b"m2", headers={"lane": "<script>", "client": "../a"})

    on_nats(queue.api.env, publish_raw)
    taken = sorted([await queue.take_and_ack() for _ in range(2)], key=lambda d: d.media_id)
    assert [(d.media_id, d.media_type, d.lane, d.client) for d in taken] == [
        ("m1", None, HIGH, DEFAULT_OWNER), ("m2", None, NORMAL, DEFAULT_OWNER)]


# -- RabbitMQ and NATS: clients with few jobs waiting go ahead of another's backlog in a lane ----
FAIR_MODES = ["distributed", NATS_MODE]


def light_jobs(queue: Queue) -> int:
    return queue.api.settings.worker.fair_share_jobs


def ahead_drained(queue: Queue) -> int:
    """Jobs a worker takes of one client's backlog before its first ones, which went ahead as any
    client's would, are surely gone: a lane's light part is taken first when the worker holds a job
    of it, at least every other time (its next job comes a round trip after the ack)."""
    return 2 * light_jobs(queue) + 2


async def ids_taken(queue: Queue, count: int) -> list[str]:
    return [(await queue.take_and_ack()).media_id for _ in range(count)]


def set_count(queue: Queue, lane: Priority, client: str, value: object) -> None:
    """Write a client's backlog count in the image queue's lane as a crash or a stranger might have left it."""
    settings = queue.api.settings
    if queue.api.mode == NATS_MODE:
        async def put(js: Any, stream: str) -> None:
            meta = await js.key_value(f"{stream}_meta")
            await meta.put(nats_backlog_key("image", lane, client), json.dumps(value).encode())
        on_nats(queue.api.env, put)
        return
    counts = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        counts.set(backlog_key(settings.redis.prefix, lane_queue(settings.rabbitmq.queue, lane), client), str(value))
    finally:
        counts.close()


def counts(queue: Queue, lane: Priority, *clients: str) -> list[int]:
    """The clients' counts of jobs waiting in the image queue's lane (no count: 0)."""
    settings = queue.api.settings
    if queue.api.mode == NATS_MODE:
        async def read(js: Any, stream: str) -> list[int]:
            found = [await nats_value(js, f"{stream}_meta", nats_backlog_key("image", lane, client))
                     for client in clients]
            return [int(value["waiting"]) if value else 0 for value in found]
        return on_nats(queue.api.env, read)
    kept = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return [int(kept.get(backlog_key(settings.redis.prefix, lane_queue(settings.rabbitmq.queue, lane), client))
                    or 0) for client in clients]
    finally:
        kept.close()


@pytest.mark.parametrize("api_mode", FAIR_MODES)
async def test_a_clients_job_goes_ahead_of_another_clients_backlog_in_the_same_lane(queue: Queue) -> None:
    importer = await queue.publish(NORMAL, "importer", 2 * light_jobs(queue) + 20)
    assert set(await ids_taken(queue, ahead_drained(queue))) <= set(importer)
    [upload] = await queue.publish(NORMAL, "small-shop")
    await asyncio.sleep(0.2)  # as the worker's current job would run: the broker delivers meanwhile
    taken = await ids_taken(queue, 2)  # the worker may hold one of the backlog already
    assert upload in taken, f"the small shop's job came after {taken}, behind the importer's backlog"
    assert set(await ids_taken(queue, 17)) <= set(importer)
    assert counts(queue, NORMAL, "importer", "small-shop") == [0, 0]


@pytest.mark.parametrize("api_mode", FAIR_MODES)
async def test_a_count_gone_wrong_after_a_crash_neither_blocks_a_client_nor_goes_below_zero(queue: Queue) -> None:
    odd = "a.b_c-9"  # every character a client's name may have
    set_count(queue, BULK, odd, -40)  # taken more often than queued
    set_count(queue, BULK, "importer", "not a number")
    importer = await queue.publish(BULK, "importer", 2 * light_jobs(queue) + 10)  # counted from 0
    assert counts(queue, BULK, "importer") == [2 * light_jobs(queue) + 10]
    assert set(await ids_taken(queue, ahead_drained(queue))) <= set(importer)
    [upload] = await queue.publish(BULK, odd)  # -40 read as none waiting: it goes ahead
    assert counts(queue, BULK, odd) == [1]
    await asyncio.sleep(0.2)
    taken = await queue.take()
    if taken.media_id != upload:  # the worker held one of the backlog already
        await queue.settle(lambda consumer, d=taken: consumer.ack(d))
        taken = await queue.take()
    assert (taken.media_id, taken.client) == (upload, odd)
    # Its worker dies before the ack: the job is delivered again and counted out twice, down to 0.
    if queue.api.mode == NATS_MODE:  # as JetStream does after the ack wait, at once
        message: Any = taken.tag
        await queue.settle(lambda consumer: cast(Any, consumer).nats.call(message.nak))
    else:
        await queue.close()
        queue.consumer = None
    while (again := await queue.take(10)).media_id != upload:
        await queue.settle(lambda consumer, d=again: consumer.ack(d))
    await queue.settle(lambda consumer: consumer.ack(again))
    assert again.redelivered
    assert counts(queue, BULK, odd) == [0]
    [later] = await queue.publish(BULK, odd)
    await asyncio.sleep(0.2)
    assert later in await ids_taken(queue, 2)


@pytest.mark.parametrize("api_mode", FAIR_MODES)
async def test_a_retried_or_replayed_job_is_counted_in_its_clients_backlog_again(queue: Queue) -> None:
    [media_id] = await queue.publish(HIGH, "app")
    delivery = await queue.take()
    assert counts(queue, HIGH, "app") == [0]
    await queue.settle(lambda consumer: consumer.retry_later(delivery, 0.05))
    assert counts(queue, HIGH, "app") == [1]
    again = await queue.take()
    assert (again.media_id, again.lane, again.client) == (media_id, HIGH, "app")
    await queue.settle(lambda consumer: consumer.dead_letter(again, "store down on every try"))
    assert counts(queue, HIGH, "app") == [0]
    settings = queue.api.settings

    def replay_one() -> None:
        letters: DeadLetters = load_backend(TABLE, "dead_letters", settings.backends.queue)(settings, "image")
        try:
            letter = letters.take()
            assert letter is not None
            letters.requeue(letter)
        finally:
            letters.close()

    await queue.api.worker._on_thread(replay_one)
    assert counts(queue, HIGH, "app") == [1]
    replayed = await queue.take_and_ack()
    assert (replayed.media_id, replayed.lane, replayed.client) == (media_id, HIGH, "app")
    assert counts(queue, HIGH, "app") == [0]
