"""A media item's life cycle: the record the server accepts, each change after it, and how a record
reads over HTTP. The record itself, and its stored form, is thumbnailify.record's.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from thumbnailify.lanes import Priority
from thumbnailify.record import (
    DEFAULT_OWNER,
    REQUEUE_FAILED,
    Callback,
    CallbackProgress,
    Fields,
    MediaRecord,
    Metadata,
    Placeholder,
    Service,
    State,
    iso,
)

# Error codes a worker stores; GET /images/<id> answers with them.
UNDECODABLE = 422  # truncated, corrupt, or crashed/timed out the decoder on every attempt
UNSUPPORTED = 415  # the coder refused it: not a format we read
TOO_MANY_PIXELS = 413  # over limits.max_pixels, refused from the header alone
GAVE_UP = 503  # our own infrastructure failed on every retry; the image itself may be fine

HISTORY_LIMIT = 50  # entries a record keeps, the newest
HISTORY_FIELDS = ("state", "service", "message", "code", "at")


def now() -> datetime:
    return datetime.now(UTC)


def accepted(media_type: str, moment: datetime, sha256: str, callback_url: str | None = None, *,
             filename: str | None = None, size: int | None = None, owner: str = DEFAULT_OWNER,
             lane: Priority = Priority.NORMAL) -> MediaRecord:
    """The record the server writes before publishing the job; `filename` as the client named the
    file (if it did), `size` the upload's bytes, `owner` the client that sent it, `lane` its job's."""
    callback = CallbackProgress(callback_url, Callback.PENDING, 0, None) if callback_url else None
    return MediaRecord(media_type=media_type, state=State.PROCESSING, service=Service.WEBSERVER,
                       message="Accepted; waiting for a worker", code=202, created_at=moment, updated_at=moment,
                       sha256=sha256, filename=filename or None, size=size, callback=callback,
                       owner=owner, lane=lane)


# Each change below is the fields it writes (see thumbnailify.record). Every one but
# requeue_failed clears `awaits_requeue`: whatever comes after a failed re-queue supersedes it.

def taken(moment: datetime) -> Fields:
    """A worker has started on the item."""
    return {
        "service": Service.WORKER,
        "state": State.PROCESSING,
        "message": "A worker is making the thumbnail",
        "code": "202",
        "updated_at": iso(moment),
        "awaits_requeue": "",
    }


def requeued(moment: datetime) -> Fields:
    """The recovery pass sent the job again (its message had been lost)."""
    return {
        "service": Service.WEBSERVER,
        "message": "Re-queued: the job's message had been lost",
        "code": "202",
        "updated_at": iso(moment),
        "awaits_requeue": "",
    }


def requeue_failed(detail: str, moment: datetime) -> Fields:
    """The recovery pass could not send the job again (the queue was unavailable): the next pass,
    retried within seconds, sends it, whatever its age."""
    return {
        "service": Service.WEBSERVER,
        "message": f"{REQUEUE_FAILED} ({detail}); the next recovery pass retries it",
        "code": "202",
        "updated_at": iso(moment),
        "awaits_requeue": "1",
    }


def completed(types: dict[str, str], sizes: dict[str, tuple[int, int]], moment: datetime, *,
              placeholder: Placeholder | None = None, phash: str | None = None,
              metadata: Metadata | None = None) -> Fields:
    """`sizes` maps each size's name to its width and height, in config order, `types` to its media
    type; width, height and thumbnail_type stay the first size's, as records had them before there
    were several, and `thumbnail_types` is written only when the sizes' types differ. `placeholder`
    and `phash` from the worker's fingerprints, `metadata` what it read of the original (an
    identical upload's reuses its twin's, which a twin made before they were kept has not)."""
    width, height = next(iter(sizes.values()))
    thumbnail_type = types[next(iter(sizes))]
    made = ", ".join(f"{name} {w}x{h}" for name, (w, h) in sizes.items())
    own_types = {"thumbnail_types": json.dumps(types)} if set(types.values()) != {thumbnail_type} else {}
    return own_types | {
        "service": Service.WORKER,
        "state": State.COMPLETED,
        "message": f"Thumbnail ready ({width}x{height})" if len(sizes) == 1 else f"Thumbnails ready ({made})",
        "code": "200",
        "thumbnail_type": thumbnail_type,
        "width": str(width),
        "height": str(height),
        "sizes": json.dumps({name: [w, h] for name, (w, h) in sizes.items()}),
        "thumbhash": placeholder.thumbhash if placeholder else "",
        "blurhash": placeholder.blurhash if placeholder else "",
        "phash": phash or "",
        "metadata": metadata.as_json() if metadata else "",
        "updated_at": iso(moment),
        "awaits_requeue": "",
    }


def failed(code: int, message: str, moment: datetime) -> Fields:
    return {
        "service": Service.WORKER,
        "state": State.ERROR,
        "message": message,
        "code": str(code),
        "updated_at": iso(moment),
        "awaits_requeue": "",
    }


def replayed(moment: datetime) -> Fields:
    """An operator put the job back on the queue (`python -m thumbnailify.worker.replay`): a fresh start."""
    return {
        "service": Service.WORKER,
        "state": State.PROCESSING,
        "message": "Re-queued after an outage; waiting for a worker",
        "code": "202",
        "attempts": "0",
        "counted_delivery": "",
        "updated_at": iso(moment),
        "awaits_requeue": "",
    }


def callback_tried(progress: Callback, attempts: int, last_status: int | None) -> Fields:
    """One more attempt at the webhook: where its delivery stands, and what the receiver answered."""
    return {"callback_state": progress, "callback_attempts": str(attempts),
            "callback_last_status": str(last_status or "")}


def callback_given_up() -> Fields:
    """The webhook will not be delivered (the queue gave up on its job, or a bug of ours)."""
    return {"callback_state": Callback.FAILED}


def history_entry(fields: Fields, current_state: str) -> str:
    """The history line a change adds, as JSON: what the record says after the change."""
    values = (fields.get("state", current_state), fields.get("service", ""), fields.get("message", ""),
              int(fields.get("code") or 0), fields.get("updated_at", ""))
    return json.dumps(dict(zip(HISTORY_FIELDS, values, strict=True)))


def append_history(stored: Fields, entry: str) -> str:
    """A stored record's history with one more entry, the oldest dropped past HISTORY_LIMIT. A
    history that is not a JSON list (edited by hand) starts anew: the change itself must be written."""
    try:
        history = json.loads(stored.get("history") or "[]")
    except ValueError:
        history = []
    if not isinstance(history, list):
        history = []
    history.append(json.loads(entry))
    return json.dumps(history[-HISTORY_LIMIT:])


def is_terminal(record: MediaRecord) -> bool:
    return record.state in (State.COMPLETED, State.ERROR)


def awaits_replay(record: MediaRecord) -> bool:
    """Error 503: our infrastructure failed on every retry; the job is a dead letter to replay."""
    return record.state == State.ERROR and record.code == GAVE_UP


def keeps_upload(record: MediaRecord | None) -> bool:
    """Whether the raw upload is still needed: the job may run (Processing) or be replayed (Error 503)."""
    return record is not None and (not is_terminal(record) or awaits_replay(record))


def http_status(record: MediaRecord) -> int:
    """202 while Processing, 200 Completed, the worker's code on Error."""
    if record.state == State.COMPLETED:
        return 200
    if record.state == State.ERROR:
        return record.code or UNDECODABLE
    return 202


def status_body(media_id: str, record: MediaRecord) -> dict[str, object]:
    body: dict[str, object] = {
        "media_id": media_id,
        "media_type": record.media_type,
        "state": record.state,
        "service": record.service,
        "message": record.message,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    }
    if record.sha256:
        body["sha256"] = record.sha256
    if record.filename:
        body["filename"] = record.filename
    if record.size is not None:
        body["bytes"] = record.size
    if record.state == State.COMPLETED:
        body["thumbnail"] = f"/images/{media_id}/thumbnail"
        body["sizes"] = {name: [width, height] for name, (width, height) in record.sizes.items()}
        body["thumbnail_types"] = dict(record.thumbnail_types)
    # null until Completed, and for what a release before them completed
    completed = record.state == State.COMPLETED
    placeholder = record.placeholder if completed else None
    body["placeholder"] = (
        {"thumbhash": placeholder.thumbhash, "blurhash": placeholder.blurhash} if placeholder else None
    )
    body["phash"] = record.phash if completed else None
    body["metadata"] = dataclasses.asdict(record.metadata) if completed and record.metadata else None
    if record.callback:
        body["callback"] = {
            "url": record.callback.url,
            "state": record.callback.state,
            "attempts": record.callback.attempts,
            "last_status": record.callback.last_status,
        }
    body["history"] = [
        {"state": entry.state, "service": entry.service, "message": entry.message, "code": entry.code,
         "at": iso(entry.at)}
        for entry in record.history
    ]
    return body
