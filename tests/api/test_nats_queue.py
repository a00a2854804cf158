"""The NATS job queue's own steps, on the real NATS under a stream of the test's own: a job
JetStream gave up on (delivered worker.max_attempts times, never acked) is heard of and settled,
a dead letter is taken and re-queued by the replay tool's reader, dead letters are bounded in number
and age (and past the bound the oldest go while the replay tool completes the rest), and a job
whose message was lost is sent again by the recovery pass."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.api.conftest import ApiFactory
from tests.harness import NATS_MODE, on_nats, remove_nats_stream, service_env
from thumbnailify import state
from thumbnailify.backends.nats.records import Found, Records
from thumbnailify.backends.nats.sync import NatsConsumer, NatsDeadLetters
from thumbnailify.clients import Quota, QuotaExceeded, Usage
from thumbnailify.record import State
from thumbnailify.server.background.maintenance import LEASE, LEASE_SECONDS
from thumbnailify.server.background.recovery import requeue_stale
from thumbnailify.server.resources import RESOURCES
from thumbnailify.settings import Settings, load_settings
from thumbnailify.worker.backends import Delivery
from thumbnailify.worker.replay import replay

ACK_WAIT = "1"


@pytest.fixture
def make_settings(tmp_path: Path) -> Iterator[Callable[..., Settings]]:
    """Settings on a stream of the test's own, with THUMBNAILIFY_* overrides."""
    envs: list[dict[str, str]] = []

    def make(**overrides: str) -> Settings:
        envs.append(service_env(NATS_MODE, tmp_path, THUMBNAILIFY_NATS_ACK_WAIT=ACK_WAIT,
                                THUMBNAILIFY_WORKER_MAX_ATTEMPTS="2", **overrides))
        return load_settings(envs[-1])

    yield make
    for env in envs:
        on_nats(env, remove_nats_stream)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


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


def dead_letter_jobs(settings: Settings, kind: str, count: int) -> list[str]:
    """Jobs of a kind taken and dead-lettered one by one; their media ids, oldest first."""
    consumer = NatsConsumer(settings, kind)
    media_ids = []
    try:
        for number in range(count):
            media_id = str(uuid.uuid4())
            consumer.enqueue(kind, media_id, "image/png")
            delivery = consumer.next(2.0)
            assert delivery is not None and delivery.media_id == media_id
            consumer.dead_letter(delivery, f"outage {number}")
            media_ids.append(media_id)
    finally:
        consumer.close()
    return media_ids


def letters_left(settings: Settings, kind: str) -> list[str]:
    """The media ids of the dead letters of a kind, oldest first, each taken and dropped."""
    letters = NatsDeadLetters(settings, kind)
    taken = []
    try:
        while (letter := letters.take()) is not None:
            taken.append(letter.media_id)
            letters.drop(letter)
    finally:
        letters.close()
    return taken


def test_past_the_length_bound_the_oldest_dead_letters_go(make_settings: Callable[..., Settings]) -> None:
    """worker.dead_letter_max_length bounds each kind's letters, as RabbitMQ bounds each dead queue."""
    settings = make_settings(THUMBNAILIFY_WORKER_DEAD_LETTER_MAX_LENGTH="2")
    video = dead_letter_jobs(settings, "video", 1)
    _oldest, *newest = dead_letter_jobs(settings, "image", 3)
    assert letters_left(settings, "image") == newest
    assert letters_left(settings, "video") == video  # not pushed out by the photos' letters
    assert letters_left(settings, "image") == []  # a letter taken (replayed or dropped) is gone


def test_dead_letters_older_than_the_age_bound_go(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(THUMBNAILIFY_WORKER_DEAD_LETTER_MAX_AGE="0.5")
    dead_letter_jobs(settings, "image", 2)
    time.sleep(1.0)
    fresh = dead_letter_jobs(settings, "image", 1)
    assert letters_left(settings, "image") == fresh


def test_changed_dead_letter_bounds_apply_to_the_stream_that_exists(make_settings: Callable[..., Settings]) -> None:
    """Unlike a RabbitMQ queue's arguments, a stream's limits can change: the next start applies them.
    (Letters kept before are trimmed as the server does it: NATS 2.9 only as new ones come.)"""
    unbounded = make_settings(THUMBNAILIFY_WORKER_DEAD_LETTER_MAX_LENGTH="0",
                              THUMBNAILIFY_WORKER_DEAD_LETTER_MAX_AGE="0")
    assert len(dead_letter_jobs(unbounded, "image", 3)) == len(letters_left(unbounded, "image")) == 3
    bounded = unbounded.model_copy(update={"worker": unbounded.worker.model_copy(update={"dead_letter_max_length": 2})})
    _, *newest = dead_letter_jobs(bounded, "image", 3)
    assert letters_left(bounded, "image") == newest


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
    subject = f"{api.env['THUMBNAILIFY_NATS_STREAM']}.media.{media_id}.queued.>"  # whichever part of its lane
    on_nats(api.env, lambda js, stream: js.purge_stream(stream, subject=subject))
    assert await api.worker.drain() == 0

    async def renew() -> None:
        return None

    counts = await requeue_stale(res, renew)
    assert counts["requeued"] == 1
    status = await api.wait(media_id)
    assert status["state"] == "Completed"
    assert [entry["message"] for entry in status["history"]][1] == "Re-queued: the job's message had been lost"


async def test_a_volume_outage_dead_letters_within_the_bound_and_the_replay_completes_them(
        make_api: ApiFactory, photos: dict[str, bytes]) -> None:
    """As tests/system/test_replay.py does with processes in the other modes: three jobs dead-lettered
    one by one while no thumbnail can be written, two kept; replayed once the outage is over."""
    api = await make_api(THUMBNAILIFY_WORKER_MAX_RETRIES="2", THUMBNAILIFY_WORKER_RETRY_BASE_DELAY="0.1",
                         THUMBNAILIFY_WORKER_DEAD_LETTER_MAX_LENGTH="2")
    thumbs = api.media_dir("thumbs")
    thumbs.mkdir(parents=True, exist_ok=True)
    thumbs.rename(thumbs.with_name("thumbs-away"))
    thumbs.write_bytes(b"")  # a file where the folder was: every thumbnail write fails
    try:
        ids = []
        for name in ("coffee.jpg", "astronaut.jpg", "rocket_portrait.jpg"):  # one by one: letters in this order
            ids.append(await api.upload(photos[name], "image/jpeg"))
            status = await api.wait(ids[-1])
            assert status["state"] == "Error" and status["http_status"] == 503, status
    finally:
        thumbs.unlink()
        thumbs.with_name("thumbs-away").rename(thumbs)
    assert await asyncio.to_thread(replay, api.settings, None) == (2, 0)  # (re-queued, dropped)
    oldest, *replayed = ids
    for media_id in replayed:
        assert (await api.wait(media_id))["state"] == "Completed"
    assert (await api.wait(oldest))["http_status"] == 503  # its letter was the one to go
    assert await asyncio.to_thread(replay, api.settings, None) == (0, 0)


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


@pytest.mark.parametrize("meanwhile", ["deleted", "failed"])
async def test_a_change_between_a_workers_read_and_write_leaves_none_of_its_entries(
    settings: Settings, meanwhile: str,
) -> None:
    """A worker writes the new state's index entry and perceptual hash before the record (a lister
    never misses it). A DELETE, or an Error recorded by another writer (a twin delivery, the
    dead-letter step), that lands between its read and its write leaves them naming a state the
    record is not in, so the worker, its write refused, takes them back: a deleted item is neither
    listed nor swept, a failed one is listed as the Error only."""
    class ChangedMeanwhile(Records):
        armed = False

        async def read(self, role: str, key: str) -> Found | None:
            found = await super().read(role, key)
            if self.armed and role == "records":
                self.armed = False
                if meanwhile == "deleted":
                    assert await self.delete(key)
                else:
                    assert await self.transition(key, State.PROCESSING, state.failed(422, "undecodable", state.now()))
            return found

    records = ChangedMeanwhile(settings)
    await records.open()
    try:
        media_id = str(uuid.uuid4())
        await records.create(media_id, state.accepted("image/jpeg", state.now(), "ab" * 32), time.time())
        completed = state.completed({"default": "image/jpeg"}, {"default": (10, 10)}, state.now(), phash="0f" * 8)
        records.armed = True
        assert not await records.transition(media_id, State.PROCESSING, completed)
        listed = [key.split(".", 1)[0] for key in await records.keys("index", f"*.*.*.{media_id}")]
        assert listed == ([] if meanwhile == "deleted" else [State.ERROR])
        assert await records.keys("phashes", f"{media_id}.*") == []
        if meanwhile == "deleted":
            assert await records.created_before(time.time() + 1, 10) == []
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


async def test_a_burst_of_one_clients_uploads_counts_its_usage_without_retrying(settings: Settings) -> None:
    """A hundred creates of one client at once: each reads and writes the client's usage once (they
    take turns) instead of each losing to the others and retrying, requests quadratic in the burst."""
    records = Records(settings)
    await records.open()
    try:
        assert records.client is not None
        sent = records.client.stats["out_msgs"]
        record = state.accepted("image/jpeg", state.now(), "ab" * 32, size=10, owner="burst")
        await asyncio.gather(*(records.create(str(uuid.uuid4()), record, time.time()) for _ in range(100)))
        assert await records.usage("burst") == Usage(100, 1000)
        per_create = (records.client.stats["out_msgs"] - sent) / 100
        assert per_create <= 6, per_create  # usage read and written, index entry, record, its event
    finally:
        await records.close()
