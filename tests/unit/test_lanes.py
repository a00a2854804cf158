"""The lane policy every queue backend applies (thumbnailify.lanes): weighted turns among the
lanes that have work, a job in an idle lane next, and untrusted lane values read as normal; and
within a lane, which job goes ahead of the backlog (RabbitMQ and NATS) and how a stored count that
is not one reads."""

from __future__ import annotations

from collections import Counter

import pytest

from thumbnailify import state
from thumbnailify.backends.headers import JobHeaders, job_headers, read_headers
from thumbnailify.backends.nats.backlog import BACKLOG_TTL_SECONDS, read_waiting
from thumbnailify.clients import DEFAULT_CLIENT
from thumbnailify.lanes import LANES, WEIGHTS, LanePicker, Priority, goes_ahead, lane_of
from thumbnailify.record import MediaRecord

HIGH, NORMAL, BULK = Priority.HIGH, Priority.NORMAL, Priority.BULK


def test_with_every_lane_busy_each_is_served_its_weight_every_round() -> None:
    picker = LanePicker()
    rounds = 10
    picks = [picker.pick(LANES) for _ in range(rounds * sum(WEIGHTS.values()))]
    assert Counter(picks) == {lane: weight * rounds for lane, weight in WEIGHTS.items()}
    assert picks[:7] == [HIGH] * 4 + [NORMAL] * 2 + [BULK]  # the higher lane first within a round


def test_a_lane_alone_takes_every_turn() -> None:
    picker = LanePicker()
    assert [picker.pick([BULK]) for _ in range(20)] == [BULK] * 20
    assert picker.pick([]) is None


def test_a_job_arriving_in_an_idle_high_lane_goes_next() -> None:
    picker = LanePicker()
    for _ in range(50):  # a long run of bulk alone
        assert picker.pick([BULK]) == BULK
    assert picker.pick([HIGH, BULK]) == HIGH


def test_bulk_keeps_its_share_while_high_jobs_keep_arriving_one_at_a_time() -> None:
    """High empties after every pick and refills before the next: credit is not refilled by
    emptying, so bulk still gets one turn in every five."""
    picker = LanePicker()
    picks = [picker.pick([HIGH, BULK]) for _ in range(50)]
    assert Counter(picks) == {HIGH: 40, BULK: 10}
    longest_wait = max(len(run) for run in "".join("h" if p == HIGH else "b" for p in picks).split("b"))
    assert longest_wait == WEIGHTS[HIGH]


def test_a_bulk_job_waits_for_at_most_the_other_lanes_weights() -> None:
    picker = LanePicker()
    picker.pick([HIGH, NORMAL])  # bulk idle so far
    picks = [picker.pick(LANES) for _ in range(sum(WEIGHTS.values()))]
    assert BULK in picks[: WEIGHTS[HIGH] + WEIGHTS[NORMAL] + 1]


@pytest.mark.parametrize("stored", ["high", b"bulk", "normal"])
def test_a_stored_lane_reads_back(stored: str | bytes) -> None:
    assert lane_of(stored) == Priority(stored.decode() if isinstance(stored, bytes) else stored)


@pytest.mark.parametrize("hostile", [None, "", "HIGH", "urgent", "high ", 1, b"\xff\xfe", ["high"], {"lane": "high"}])
def test_an_unknown_lane_is_normal(hostile: object) -> None:
    assert lane_of(hostile) == NORMAL


def test_a_record_keeps_its_lane_and_a_normal_one_is_stored_as_before() -> None:
    moment = state.now()
    bulk = state.accepted("image/png", moment, "ab" * 32, owner="importer", lane=BULK)
    assert bulk.stored()["lane"] == "bulk" and MediaRecord.from_stored(bulk.stored()).lane == BULK
    normal = state.accepted("image/png", moment, "ab" * 32).stored()
    assert "lane" not in normal
    assert MediaRecord.from_stored(normal | {"lane": "<script>"}).lane == NORMAL


@pytest.mark.parametrize(("headers", "expected"), [
    (None, JobHeaders(None, NORMAL, DEFAULT_CLIENT, "")),
    ("not a table", JobHeaders(None, NORMAL, DEFAULT_CLIENT, "")),
    ({"media_type": "image/png", "lane": b"bulk", "client": "shop", "reason": "redis down"},
     JobHeaders("image/png", BULK, "shop", "redis down")),
    ({"media_type": 5, "lane": "HIGH", "client": "x" * 100, "reason": ["?"]},
     JobHeaders(None, NORMAL, DEFAULT_CLIENT, "")),
    ({"client": "Shop"}, JobHeaders(None, NORMAL, DEFAULT_CLIENT, "")),
    ({"client": "../shop"}, JobHeaders(None, NORMAL, DEFAULT_CLIENT, "")),
])
def test_a_jobs_headers_are_read_as_untrusted(headers: object, expected: JobHeaders) -> None:
    assert read_headers(headers) == expected


def test_a_jobs_headers_read_back() -> None:
    assert read_headers(job_headers("image/jpeg", HIGH, "app")) == JobHeaders("image/jpeg", HIGH, "app", "")


@pytest.mark.parametrize(("waiting", "light_jobs", "ahead"), [
    (0, 8, True), (7, 8, True), (8, 8, False), (2_000, 8, False),
    (None, 8, False),  # not known (the count's store out): the backlog, first in first out
    (0, 0, False),  # fair share off
])
def test_a_job_goes_ahead_while_its_client_has_few_waiting(waiting: int | None, light_jobs: int, ahead: bool) -> None:
    assert goes_ahead(waiting, light_jobs) is ahead


@pytest.mark.parametrize(("stored", "waiting"), [
    (None, 0), (b"", 0), (b"not json", 0), (b"[1, 2]", 0), (b'{"waiting": "x", "touched": "1"}', 0),
    (b'{"waiting": "-40", "touched": "NOW"}', 0),  # gone negative: counts from 0
    (b'{"waiting": "12", "touched": "NOW"}', 12),
    (b'{"waiting": "12", "touched": "STALE"}', 0),  # untouched for longer than the TTL: forgotten
])
def test_a_nats_backlog_count_that_is_not_one_reads_as_none_waiting(stored: bytes | None, waiting: int) -> None:
    now = 1_000_000.0
    value = None if stored is None else stored.replace(b"NOW", str(now - 1).encode()).replace(
        b"STALE", str(now - BACKLOG_TTL_SECONDS - 1).encode())
    assert read_waiting(value, now) == waiting
