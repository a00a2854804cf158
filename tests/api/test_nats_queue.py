"""The NATS job queue's own steps, on the real NATS under a stream of the test's own: a job
JetStream gave up on (delivered worker.max_attempts times, never acked) is heard of and settled,
a dead letter is taken and re-queued by the replay tool's reader, and a job whose message was lost
is sent again by the recovery pass."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import ApiFactory
from tests.harness import NATS_MODE, on_nats, remove_nats_stream, service_env
from thumbnailify import state
from thumbnailify.backends.nats.records import Records
from thumbnailify.backends.nats.sync import NatsConsumer, NatsDeadLetters
from thumbnailify.clients import Quota, QuotaExceeded, Usage
from thumbnailify.record import State
from thumbnailify.server.background.maintenance import LEASE, LEASE_SECONDS
from thumbnailify.server.background.recovery import requeue_stale
from thumbnailify.server.resources import RESOURCES
from thumbnailify.settings import Settings, load_settings
from thumbnailify.worker.backends import Delivery

ACK_WAIT = "1"


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    env = service_env(NATS_MODE, tmp_path, THUMBNAILIFY_NATS_ACK_WAIT=ACK_WAIT, THUMBNAILIFY_WORKER_MAX_ATTEMPTS="2")
    yield load_settings(env)
    on_nats(env, remove_nats_stream)


def test_a_job_delivered_max_attempts_times_is_settled_once(settings: Settings) -> None:
    media_id = str(uuid.uuid4())
    deliveries = []
    for _ in range(2):  # a worker killed on each delivery: closed without an ack or progress
        worker = NatsConsumer(settings, "image")
        if not deliveries:
            worker.enqueue("image", media_id, "image/jpeg")
        delivery = worker.next(5.0)
        worker.close()
        assert delivery is not None and delivery.media_id == media_id
        deliveries.append(delivery)
    assert [d.redelivered for d in deliveries] == [False, True]
    listener = NatsConsumer(settings, "image")
    try:
        assert listener.next(2.5) is None  # not handed out a third time; meanwhile the advisory came
        settled: list[Delivery] = []
        deadline = time.monotonic() + 5
        while not settled and time.monotonic() < deadline:
            listener.settle_abandoned(settled.append)
            time.sleep(0.1)
        assert [(d.media_id, d.media_type) for d in settled] == [(media_id, "image/jpeg")]
        assert listener.settle_abandoned(settled.append) == 0
    finally:
        listener.close()


def test_a_dead_letter_is_taken_and_requeued(settings: Settings) -> None:
    consumer = NatsConsumer(settings, "image")
    try:
        media_id = str(uuid.uuid4())
        consumer.enqueue("image", media_id, "image/png")
        delivery = consumer.next(2.0)
        assert delivery is not None and delivery.media_id == media_id
        consumer.dead_letter(delivery, "gave up after 3 tries: redis down")
        assert consumer.next(1.5) is None  # acked: not handed out again
        letters = NatsDeadLetters(settings, "image")
        try:
            letter = letters.take()
            assert letter is not None
            assert (letter.media_id, letter.media_type, letter.reason) == (media_id, "image/png",
                                                                         "gave up after 3 tries: redis down")
            assert letters.take() is None
            letters.requeue(letter)
        finally:
            letters.close()
        again = consumer.next(2.0)
        assert again is not None and again.media_id == media_id
        consumer.ack(again)
    finally:
        consumer.close()


@pytest.fixture
def api_mode() -> str:
    return NATS_MODE


async def test_a_lost_job_is_requeued_by_the_recovery_pass_and_ends_completed(
        make_api: ApiFactory, photos: dict[str, bytes]) -> None:
    api = await make_api(THUMBNAILIFY_SERVER_RECOVERY_MIN_AGE="0")
    res = api.client.app[RESOURCES]
    # The test runs the pass itself: the app's own (at start) must not re-queue the job first.
    for _ in range(100):
        if await res.store.acquire_lock(LEASE, "the test", LEASE_SECONDS):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the app's own recovery pass kept the maintenance lease")
    media_id = await api.upload(photos["coffee.jpg"], "image/jpeg")
    # The job's message lost (as if the stream had been restored from an older copy).
    subject = f"{api.env['THUMBNAILIFY_NATS_STREAM']}.media.{media_id}.queued.image"
    on_nats(api.env, lambda js, stream: js.purge_stream(stream, subject=subject))
    assert await api.worker.drain() == 0

    async def renew() -> None:
        return None

    counts = await requeue_stale(res, renew)
    assert counts["requeued"] == 1
    status = await api.wait(media_id)
    assert status["state"] == "Completed"
    assert [entry["message"] for entry in status["history"]][1] == "Re-queued: the job's message had been lost"


async def test_a_delete_wins_over_a_worker_write_prepared_before_it(settings: Settings) -> None:
    """The worker read the record (and its revision), a DELETE came, then the worker wrote: the
    write fails its revision check, and the item stays deleted, off every list."""
    records = Records(settings)
    await records.open()
    try:
        media_id = str(uuid.uuid4())
        await records.create(media_id, state.accepted("image/jpeg", state.now(), "ab" * 32), time.time())
        found = await records.get_stored(media_id)
        assert found is not None
        assert await records.delete(media_id)
        completed = state.completed({"default": "image/jpeg"}, {"default": (10, 10)}, state.now())
        assert not await records.swap("records", media_id, found[0] | completed, found[1])
        assert not await records.transition(media_id, State.PROCESSING, completed)
        assert await records.get(media_id) is None
        assert await records.page(10, None, None) == []
    finally:
        await records.close()


async def test_usage_is_counted_by_compare_and_set_and_freed_once(settings: Settings) -> None:
    """Creates at once pass a quota of two exactly twice; two deletes of one item at once free its
    usage once; one client's list (a dotted name) holds its own items only."""
    records = Records(settings)
    await records.open()
    try:
        async def upload(owner: str) -> str | None:
            media_id = str(uuid.uuid4())
            record = state.accepted("image/jpeg", state.now(), "ab" * 32, size=10, owner=owner)
            try:
                await records.create(media_id, record, time.time(), Quota(items=2, bytes=0))
            except QuotaExceeded:
                return None
            return media_id

        made = [media_id for media_id in await asyncio.gather(*(upload("a.b") for _ in range(6))) if media_id]
        assert len(made) == 2 and await records.usage("a.b") == Usage(2, 20)
        other = await upload("a")
        assert other is not None
        assert {media_id for media_id, _, _ in await records.page(10, None, None, "a.b")} == set(made)
        assert [media_id for media_id, _, _ in await records.page(10, None, State.PROCESSING, "a")] == [other]
        assert sorted(await asyncio.gather(records.delete(made[0]), records.delete(made[0]))) == [False, True]
        assert await records.usage("a.b") == Usage(1, 10)
    finally:
        await records.close()
