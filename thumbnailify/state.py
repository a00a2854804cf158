"""A media item's state record: its fields, its life cycle, and how it reads over HTTP.

The record is a flat mapping of strings (a Redis hash, an SQLite row) so that every backend stores
exactly the same thing.
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime


class State(enum.StrEnum):
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    ERROR = "Error"


class Service(enum.StrEnum):
    WEBSERVER = "webserver"
    WORKER = "worker"


# Error codes a worker stores; GET /images/<id> answers with them.
UNDECODABLE = 422  # truncated, corrupt, or crashed/timed out the decoder on every attempt
UNSUPPORTED = 415  # the coder refused it: not a format we read
TOO_MANY_PIXELS = 413  # over limits.max_pixels, refused from the header alone
GAVE_UP = 503  # our own infrastructure failed on every retry; the image itself may be fine

LEGACY_SIZE = "default"  # the one size of a record made before `thumbnail.sizes` existed

PUBLIC_FIELDS = ("media_type", "state", "service", "message", "created_at", "updated_at")
HISTORY_LIMIT = 50  # entries a record keeps, the newest
HISTORY_FIELDS = ("state", "service", "message", "code", "at")


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Callback(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def accepted(media_type: str, moment: datetime, sha256: str, callback_url: str | None = None, *,
             filename: str | None = None, size: int | None = None) -> dict[str, str]:
    """The record the server writes before publishing the job; `filename` as the client named the
    file (if it did), `size` the upload's bytes."""
    stamp = iso(moment)
    record = {
        "media_type": media_type,
        "service": Service.WEBSERVER,
        "state": State.PROCESSING,
        "message": "Accepted; waiting for a worker",
        "code": "202",
        "sha256": sha256,
        "created_at": stamp,
        "updated_at": stamp,
    }
    if filename:
        record["filename"] = filename
    if size is not None:
        record["bytes"] = str(size)
    if callback_url:
        record |= {"callback_url": callback_url, "callback_state": Callback.PENDING, "callback_attempts": "0",
                   "callback_last_status": ""}
    return record


def taken(moment: datetime) -> dict[str, str]:
    """A worker has started on the item."""
    return {
        "service": Service.WORKER,
        "state": State.PROCESSING,
        "message": "A worker is making the thumbnail",
        "code": "202",
        "updated_at": iso(moment),
    }


def requeued(moment: datetime) -> dict[str, str]:
    """The recovery pass sent the job again (its message had been lost)."""
    return {
        "service": Service.WEBSERVER,
        "message": "Re-queued: the job's message had been lost",
        "code": "202",
        "updated_at": iso(moment),
    }


REQUEUE_FAILED = "Re-queue failed"


def requeue_failed(detail: str, moment: datetime) -> dict[str, str]:
    """The recovery pass could not send the job again (the queue was unavailable): the next pass,
    retried within seconds, sends it, whatever its age."""
    return {
        "service": Service.WEBSERVER,
        "message": f"{REQUEUE_FAILED} ({detail}); the next recovery pass retries it",
        "code": "202",
        "updated_at": iso(moment),
    }


def awaits_requeue(record: dict[str, str]) -> bool:
    """A recovery pass touched this Processing record but could not send its job."""
    return record.get("message", "").startswith(REQUEUE_FAILED)


def completed(thumbnail_type: str, sizes: dict[str, tuple[int, int]], moment: datetime) -> dict[str, str]:
    """`sizes` maps each size's name to its width and height, in config order; width and height
    stay the first size's, as records had them before there were several."""
    width, height = next(iter(sizes.values()))
    made = ", ".join(f"{name} {w}x{h}" for name, (w, h) in sizes.items())
    return {
        "service": Service.WORKER,
        "state": State.COMPLETED,
        "message": f"Thumbnail ready ({width}x{height})" if len(sizes) == 1 else f"Thumbnails ready ({made})",
        "code": "200",
        "thumbnail_type": thumbnail_type,
        "width": str(width),
        "height": str(height),
        "sizes": json.dumps({name: [w, h] for name, (w, h) in sizes.items()}),
        "updated_at": iso(moment),
    }


def thumbnail_sizes(record: dict[str, str]) -> dict[str, list[int]]:
    """The sizes a Completed record names, first = default. A record written before there were
    several sizes has one thumbnail, its width and height, which reads as the size "default"."""
    if "sizes" in record:
        sizes: dict[str, list[int]] = json.loads(record["sizes"])  # as thumbnail_fields wrote it
        return sizes
    return {LEGACY_SIZE: [int(record.get("width") or 0), int(record.get("height") or 0)]}


def failed(code: int, message: str, moment: datetime) -> dict[str, str]:
    return {
        "service": Service.WORKER,
        "state": State.ERROR,
        "message": message,
        "code": str(code),
        "updated_at": iso(moment),
    }


def history_entry(fields: dict[str, str], current_state: str) -> str:
    """The history line a change adds, as JSON: what the record says after the change."""
    values = (fields.get("state", current_state), fields.get("service", ""), fields.get("message", ""),
              int(fields.get("code") or 0), fields.get("updated_at", ""))
    return json.dumps(dict(zip(HISTORY_FIELDS, values, strict=True)))


def append_history(record: dict[str, str], entry: str) -> str:
    """The record's history with one more entry, the oldest dropped past HISTORY_LIMIT."""
    history = json.loads(record.get("history") or "[]")
    history.append(json.loads(entry))
    return json.dumps(history[-HISTORY_LIMIT:])


def replayed(moment: datetime) -> dict[str, str]:
    """An operator put the job back on the queue (`python -m thumbnailify.worker.replay`): a fresh start."""
    return {
        "service": Service.WORKER,
        "state": State.PROCESSING,
        "message": "Re-queued after an outage; waiting for a worker",
        "code": "202",
        "attempts": "0",
        "counted_delivery": "",
        "updated_at": iso(moment),
    }


def is_terminal(record: dict[str, str]) -> bool:
    return record.get("state") in (State.COMPLETED, State.ERROR)


def awaits_replay(record: dict[str, str]) -> bool:
    """Error 503: our infrastructure failed on every retry; the job is a dead letter to replay."""
    return record.get("state") == State.ERROR and record.get("code") == str(GAVE_UP)


def keeps_upload(record: dict[str, str] | None) -> bool:
    """Whether the raw upload is still needed: the job may run (Processing) or be replayed (Error 503)."""
    return record is not None and (not is_terminal(record) or awaits_replay(record))


def http_status(record: dict[str, str]) -> int:
    """202 while Processing, 200 Completed, the worker's code on Error."""
    state = record.get("state")
    if state == State.COMPLETED:
        return 200
    if state == State.ERROR:
        return int(record.get("code") or UNDECODABLE)
    return 202


def status_body(media_id: str, record: dict[str, str]) -> dict[str, object]:
    body: dict[str, object] = {"media_id": media_id}
    body.update({name: record.get(name, "") for name in PUBLIC_FIELDS})
    if record.get("sha256"):
        body["sha256"] = record["sha256"]
    if record.get("filename"):
        body["filename"] = record["filename"]
    if record.get("bytes"):
        body["bytes"] = int(record["bytes"])
    if record.get("state") == State.COMPLETED:
        body["thumbnail"] = f"/images/{media_id}/thumbnail"
        body["sizes"] = thumbnail_sizes(record)
    if record.get("callback_url"):
        last = record.get("callback_last_status")
        body["callback"] = {
            "url": record["callback_url"],
            "state": record.get("callback_state", Callback.PENDING),
            "attempts": int(record.get("callback_attempts") or 0),
            "last_status": int(last) if last else None,
        }
    # Re-ordered: Redis' Lua side keeps each entry as an unordered table.
    body["history"] = [{key: entry.get(key) for key in HISTORY_FIELDS}
                       for entry in json.loads(record.get("history") or "[]")]
    return body
