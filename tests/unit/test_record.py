"""The media record and its stored form (thumbnailify.record): what every store keeps, what earlier
releases wrote, and what a damaged record reads as."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from thumbnailify import state
from thumbnailify.record import (
    Callback,
    CallbackProgress,
    HistoryEntry,
    MediaRecord,
    Placeholder,
    Service,
    State,
    UnreadableRecord,
    readable,
)

MOMENT = datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)  # whole milliseconds: what the stored form keeps
STAMP = "2026-03-01T12:30:15.123Z"
SHA = "ab" * 32
MEDIA_ID = "0b6f2c1e-8f5a-4d2b-9c1e-2f7a3b4c5d6e"

# A Completed record with a webhook, exactly as the stores hold one (and as earlier releases wrote it).
COMPLETED = {
    "media_type": "image/jpeg", "service": "worker", "state": "Completed",
    "message": "Thumbnails ready (default 100x75, large 400x300)", "code": "200", "sha256": SHA,
    "created_at": "2026-03-01T12:30:14.001Z", "updated_at": STAMP,
    "callback_url": "https://example.com/hook", "callback_state": "delivered", "callback_attempts": "2",
    "callback_last_status": "204", "thumbnail_type": "image/jpeg", "width": "100", "height": "75",
    "sizes": '{"default": [100, 75], "large": [400, 300]}', "attempts": "1", "counted_delivery": "tag-1",
    "history": json.dumps([
        {"state": "Processing", "service": "webserver", "message": "Accepted; waiting for a worker", "code": 202,
         "at": "2026-03-01T12:30:14.001Z"},
        {"state": "Completed", "service": "worker", "message": "Thumbnails ready (default 100x75, large 400x300)",
         "code": 200, "at": STAMP},
    ]),
}


def test_a_stored_record_reads_as_typed_fields() -> None:
    record = MediaRecord.from_stored(COMPLETED)
    assert record.state is State.COMPLETED and record.service is Service.WORKER and record.code == 200
    assert record.sizes == {"default": (100, 75), "large": (400, 300)} and record.named_sizes
    assert record.callback == CallbackProgress("https://example.com/hook", Callback.DELIVERED, 2, 204)
    assert record.history[0] == HistoryEntry(State.PROCESSING, "webserver", "Accepted; waiting for a worker", 202,
                                             datetime(2026, 3, 1, 12, 30, 14, 1000, tzinfo=UTC))
    assert record.updated_at == MOMENT and record.attempts == 1 and record.counted_delivery == "tag-1"
    assert not record.awaits_requeue


def test_the_stored_form_round_trips() -> None:
    assert MediaRecord.from_stored(COMPLETED).stored() == COMPLETED
    record = MediaRecord.from_stored(COMPLETED)
    assert MediaRecord.from_stored(record.stored()) == record


def test_an_accepted_record_is_stored_as_before() -> None:
    """The fields the server has always written for a new upload, no more."""
    stored = state.accepted("image/png", MOMENT, SHA, "https://example.com/hook").stored()
    assert stored == {
        "media_type": "image/png", "service": "webserver", "state": "Processing",
        "message": "Accepted; waiting for a worker", "code": "202", "sha256": SHA, "created_at": STAMP,
        "updated_at": STAMP, "callback_url": "https://example.com/hook", "callback_state": "pending",
        "callback_attempts": "0", "callback_last_status": "", "owner": "default",
    }
    assert "callback_url" not in state.accepted("image/png", MOMENT, SHA).stored()
    assert MediaRecord.from_stored(stored) == state.accepted("image/png", MOMENT, SHA, "https://example.com/hook")


def test_the_status_body_is_what_the_api_has_always_answered() -> None:
    body = state.status_body(MEDIA_ID, MediaRecord.from_stored(COMPLETED))
    assert json.dumps(body) == json.dumps({
        "media_id": MEDIA_ID, "media_type": "image/jpeg", "state": "Completed", "service": "worker",
        "message": "Thumbnails ready (default 100x75, large 400x300)", "created_at": "2026-03-01T12:30:14.001Z",
        "updated_at": STAMP, "sha256": SHA, "thumbnail": f"/images/{MEDIA_ID}/thumbnail",
        "sizes": {"default": [100, 75], "large": [400, 300]},
        "thumbnail_types": {"default": "image/jpeg", "large": "image/jpeg"},
        # what a release before the fingerprints completed has none of: null, not absent
        "placeholder": None, "phash": None, "metadata": None,
        "callback": {"url": "https://example.com/hook", "state": "delivered", "attempts": 2, "last_status": 204},
        "history": json.loads(COMPLETED["history"]),
    })


FINGERPRINTS = {"thumbhash": "3EgKFwhpaIVPh2aHVnh5WIdp+SVif0IG", "blurhash": "LOJ7B#:*IptR.m9[RlxaOqkWRjIo",
                "phash": "c2924c5532bddfc8"}


def test_a_completed_record_keeps_its_fingerprints() -> None:
    stored = COMPLETED | FINGERPRINTS
    record = MediaRecord.from_stored(stored)
    assert record.placeholder == Placeholder(FINGERPRINTS["thumbhash"], FINGERPRINTS["blurhash"])
    assert record.phash == FINGERPRINTS["phash"]
    assert record.stored() == stored
    body = state.status_body(MEDIA_ID, record)
    assert body["placeholder"] == {"thumbhash": FINGERPRINTS["thumbhash"], "blurhash": FINGERPRINTS["blurhash"]}
    assert body["phash"] == FINGERPRINTS["phash"]
    done = state.completed({"default": "image/jpeg"}, {"default": (100, 75)}, MOMENT, placeholder=record.placeholder,
                           phash=record.phash)
    assert {key: done[key] for key in FINGERPRINTS} == FINGERPRINTS


def test_an_error_shows_no_fingerprints_whatever_the_record_holds() -> None:
    failed = COMPLETED | FINGERPRINTS | state.failed(422, "cannot decode", MOMENT)
    body = state.status_body(MEDIA_ID, MediaRecord.from_stored(failed))
    assert body["placeholder"] is None and body["phash"] is None


@pytest.mark.parametrize("phash", ["c2924c5532bddfc", "C2924C5532BDDFC8", "c2924c5532bddfcg", "0x924c5532bddfc8"])
def test_a_stored_phash_of_the_wrong_form_is_unreadable(phash: str) -> None:
    with pytest.raises(UnreadableRecord, match="phash"):
        MediaRecord.from_stored(COMPLETED | {"phash": phash})


def test_a_record_from_before_sizes_has_its_one_thumbnail_as_default() -> None:
    legacy = {key: value for key, value in COMPLETED.items() if key not in ("sizes", "sha256", "history")}
    record = MediaRecord.from_stored(legacy)
    assert record.sizes == {"default": (100, 75)} and not record.named_sizes
    assert record.sha256 is None and record.history == ()
    assert state.status_body(MEDIA_ID, record)["sizes"] == {"default": [100, 75]}
    assert record.stored() == legacy  # written back, it is still a record without sizes


def test_sizes_of_their_own_formats_keep_each_type() -> None:
    """`thumbnail_types` is stored only when the sizes' types differ; `thumbnail_type` stays the first's."""
    done = state.completed({"default": "image/png", "card": "image/webp", "hero": "image/avif"},
                           {"default": (100, 75), "card": (400, 300), "hero": (800, 600)}, MOMENT)
    assert done["thumbnail_type"] == "image/png"
    assert json.loads(done["thumbnail_types"]) == {"default": "image/png", "card": "image/webp", "hero": "image/avif"}
    record = MediaRecord.from_stored(COMPLETED | done)
    assert record.thumbnail_types == {"default": "image/png", "card": "image/webp", "hero": "image/avif"}
    assert MediaRecord.from_stored(record.stored()) == record
    assert state.status_body(MEDIA_ID, record)["thumbnail_types"] == record.thumbnail_types
    alike = state.completed({"default": "image/jpeg", "large": "image/jpeg"},
                            {"default": (100, 75), "large": (400, 300)}, MOMENT)
    assert "thumbnail_types" not in alike


def test_a_record_from_before_formats_has_every_size_of_its_type() -> None:
    record = MediaRecord.from_stored(COMPLETED)
    assert record.thumbnail_types == {"default": "image/jpeg", "large": "image/jpeg"}
    assert "thumbnail_types" not in record.stored()
    legacy = {key: value for key, value in COMPLETED.items() if key != "sizes"}
    assert MediaRecord.from_stored(legacy).thumbnail_types == {"default": "image/jpeg"}
    processing = state.accepted("image/png", MOMENT, SHA).stored()
    assert MediaRecord.from_stored(processing).thumbnail_types == {}


def test_a_record_planted_by_hand_with_the_fewest_fields_reads() -> None:
    record = MediaRecord.from_stored({"media_type": "image/jpeg", "service": "webserver", "state": "Processing",
                                      "message": "", "code": "202", "created_at": STAMP, "updated_at": STAMP})
    assert record.sizes == {} and record.callback is None and record.history == () and record.attempts == 0


def test_lua_writes_an_empty_history_as_an_object() -> None:
    assert MediaRecord.from_stored(COMPLETED | {"history": "{}"}).history == ()


def test_awaiting_a_requeue_is_a_field() -> None:
    processing = state.accepted("image/png", MOMENT, SHA).stored()
    failed = processing | state.requeue_failed("rabbitmq unavailable", MOMENT)
    assert MediaRecord.from_stored(failed).awaits_requeue
    # Whatever follows clears it, whatever its message says.
    assert not MediaRecord.from_stored(failed | state.requeued(MOMENT)).awaits_requeue
    assert not MediaRecord.from_stored(failed | state.taken(MOMENT)).awaits_requeue
    assert not MediaRecord.from_stored(failed | {"message": "Re-queue failed", "awaits_requeue": ""}).awaits_requeue


def test_a_record_from_before_the_field_says_it_in_its_message() -> None:
    old = state.accepted("image/png", MOMENT, SHA).stored() | {
        "message": "Re-queue failed (rabbitmq unavailable); the next recovery pass retries it"}
    assert MediaRecord.from_stored(old).awaits_requeue
    assert not MediaRecord.from_stored(old | {"message": "Re-queued: the job's message had been lost"}).awaits_requeue


@pytest.mark.parametrize(("field", "value"), [
    ("code", "abc"),
    ("code", "2.5"),
    ("state", "Finished"),
    ("service", "cron"),
    ("created_at", "yesterday"),
    ("updated_at", ""),
    ("callback_attempts", "many"),
    ("callback_last_status", "ok"),
    ("callback_state", "lost"),
    ("width", "wide"),
    ("sizes", "not json"),
    ("sizes", '{"default": [100]}'),
    ("sizes", '[[100, 75]]'),
    ("history", "[{"),
    ("history", '[{"state": "Completed", "code": "x", "at": "2026-03-01T12:30:15.123Z"}]'),
    ("history", '[{"state": "Completed", "code": 200}]'),
    ("history", '["Completed"]'),
    ("attempts", "-"),
    ("thumbnail_types", "{"),
    ("thumbnail_types", '{"default": 5}'),
    ("thumbnail_types", '["image/png"]'),
])
def test_a_field_of_the_wrong_form_is_a_clear_error(field: str, value: str) -> None:
    stored = COMPLETED | {field: value}
    if field == "width":
        del stored["sizes"]
    with pytest.raises(UnreadableRecord) as raised:
        MediaRecord.from_stored(stored)
    assert raised.value.field == field
    assert field in str(raised.value) and repr(value) in str(raised.value)


@pytest.mark.parametrize("field", ["media_type", "state", "service", "created_at", "updated_at"])
def test_a_missing_field_is_a_clear_error(field: str) -> None:
    with pytest.raises(UnreadableRecord, match=field):
        MediaRecord.from_stored({key: value for key, value in COMPLETED.items() if key != field})
    with pytest.raises(UnreadableRecord, match=field):
        MediaRecord.from_stored(COMPLETED | {field: 12345})  # what an SQLite row's JSON could hold


def test_a_list_or_a_stream_skips_an_unreadable_record_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert readable(MEDIA_ID, COMPLETED | {"code": "abc"}) is None
        assert readable(MEDIA_ID, "not an object") is None
        assert readable(MEDIA_ID, ["a", "list"]) is None
    assert caplog.text.count("record skipped") == 3
    assert readable(MEDIA_ID, COMPLETED) == MediaRecord.from_stored(COMPLETED)
