"""A media item's record, typed, and the one place it meets the form every store keeps it in.

The stores keep a record flat, as strings (a Redis hash, the JSON object of an SQLite row), so that
every backend stores exactly the same thing: numbers as text, `sizes` and `history` as JSON text.
`MediaRecord.from_stored` reads that form, and `MediaRecord.stored` writes it; no other code reads
its keys. Every record an earlier release wrote still reads: one without `sizes` made its one
thumbnail before there were several (it reads as the size "default", `named_sizes` False), one
without `thumbnail_types` made every size as `thumbnail_type` (sizes could not name a format), one
without `awaits_requeue` says so only in its message. A stored value of the wrong form (a `code`
that is not a number, `history` that is not JSON...) raises `UnreadableRecord`, naming the field.

A change (thumbnailify.state's `taken`, `completed`, ...) stays the flat fields it writes, `Fields`:
Redis applies it in a Lua script and SQLite in one transaction, beside a record that never comes
into Python on the way (the state checked, the fields set, the history appended, the change
published, in one atomic step), so a change is written in the stored form from the start. Only
thumbnailify.state makes them.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from thumbnailify.lanes import Priority, lane_of

log = logging.getLogger(__name__)

Fields = dict[str, str]  # a change as the stores write it: stored field -> value

LEGACY_SIZE = "default"  # the one size of a record made before `thumbnail.sizes` existed
DEFAULT_OWNER = "default"  # thumbnailify.clients.DEFAULT_CLIENT (that module builds on this one)
PHASH_DIGITS = 16  # a 64-bit perceptual hash in hexadecimal
REQUEUE_FAILED = "Re-queue failed"  # how the message of such a change starts (records before `awaits_requeue`)


class State(enum.StrEnum):
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    ERROR = "Error"


class Service(enum.StrEnum):
    WEBSERVER = "webserver"
    WORKER = "worker"


class Callback(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class UnreadableRecord(ValueError):
    """A stored record with a field this code cannot read: the item answers a clear error, the
    others are not affected."""

    def __init__(self, name: str, value: object, expected: str) -> None:
        super().__init__(f"the stored record's {name} {value!r} is not {expected}")
        self.field = name


@dataclass(frozen=True)
class CallbackProgress:
    """The webhook the upload asked for, and how its delivery goes."""

    url: str
    state: Callback
    attempts: int
    last_status: int | None  # the receiver's last HTTP status; None before one answered


@dataclass(frozen=True)
class Placeholder:
    """What a page paints while the thumbnail loads (see thumbnailify.worker.fingerprints)."""

    thumbhash: str  # standard base64
    blurhash: str


@dataclass(frozen=True)
class Metadata:
    """What the worker read about the original (thumbnailify.worker.handlers.about): its upright
    size, its format (an image's; a video's codec), frames of an animation or a video's seconds,
    whether it has alpha, its colour profile's name, and when and with what camera it was taken
    when EXIF (or a video's container) says. Never a location."""

    width: int
    height: int
    format: str
    frames: int | None = None
    duration: float | None = None
    has_alpha: bool = False
    color_profile: str | None = None
    captured_at: str | None = None  # ISO 8601: EXIF's local time (with its offset when given), a video's UTC
    camera_make: str | None = None
    camera_model: str | None = None

    def as_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Metadata:
        fields = _json("metadata", text)
        try:
            if not isinstance(fields, dict):
                raise TypeError
            metadata = cls(**fields)
            if not isinstance(metadata.width, int) or not isinstance(metadata.height, int):
                raise TypeError
        except TypeError:
            raise UnreadableRecord("metadata", text, "an object of the metadata's fields") from None
        return metadata


@dataclass(frozen=True)
class HistoryEntry:
    """What the record said after one change."""

    state: State
    service: str  # "" when the change named none
    message: str
    code: int
    at: datetime


@dataclass(frozen=True)
class MediaRecord:
    media_type: str  # as the upload declared it; checked by the worker, not here
    state: State
    service: Service  # which side wrote the last change
    message: str
    code: int | None  # HTTP-style: 202 while Processing, 200 Completed, the reason of an Error
    created_at: datetime
    updated_at: datetime
    sha256: str | None = None  # of the upload; records made before it was kept have none
    filename: str | None = None  # as the client named the file, if it did
    size: int | None = None  # the upload's bytes; records made before it was kept have none
    callback: CallbackProgress | None = None
    thumbnail_type: str | None = None  # the first (default) size's media type, once Completed
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> width, height; first = default
    thumbnail_types: dict[str, str] = field(default_factory=dict)  # name -> media type, for every size
    named_sizes: bool = True  # False: one thumbnail, made before there were several sizes
    history: tuple[HistoryEntry, ...] = ()
    attempts: int = 0  # deliveries of its job counted so far
    counted_delivery: str = ""  # the token of the delivery counted last
    awaits_requeue: bool = False  # a recovery pass touched it but could not send its job
    # The client that uploaded it; records made before there were clients have none stored and
    # belong to the default client. Only records that store one count in their client's usage.
    owner: str | None = None
    lane: Priority = Priority.NORMAL  # the queue lane of its job (see thumbnailify.lanes)

    @property
    def client(self) -> str:
        """The client the record belongs to."""
        return self.owner or DEFAULT_OWNER
    placeholder: Placeholder | None = None  # once Completed; records made before it was kept have none
    phash: str | None = None  # the perceptual hash, 16 hexadecimal digits; likewise
    metadata: Metadata | None = None  # likewise

    @classmethod
    def from_stored(cls, stored: Mapping[str, str]) -> MediaRecord:
        """The record a store holds; UnreadableRecord when a field is missing or of the wrong form."""
        message = stored.get("message", "")
        callback_url = stored.get("callback_url")
        return cls(
            media_type=_required(stored, "media_type"),
            state=_enum(State, "state", _required(stored, "state")),
            service=_enum(Service, "service", _required(stored, "service")),
            message=message,
            code=_integer("code", stored["code"]) if stored.get("code") else None,
            created_at=_moment("created_at", _required(stored, "created_at")),
            updated_at=_moment("updated_at", _required(stored, "updated_at")),
            sha256=stored.get("sha256") or None,
            filename=stored.get("filename") or None,
            size=_integer("bytes", stored["bytes"]) if stored.get("bytes") else None,
            callback=None if not callback_url else CallbackProgress(
                url=callback_url,
                state=_enum(Callback, "callback_state", stored.get("callback_state") or Callback.PENDING),
                attempts=_integer("callback_attempts", stored.get("callback_attempts") or "0"),
                last_status=_integer("callback_last_status", last) if (last := stored.get("callback_last_status"))
                else None,
            ),
            thumbnail_type=stored.get("thumbnail_type") or None,
            sizes=_sizes(stored),
            thumbnail_types=_thumbnail_types(stored),
            named_sizes="sizes" in stored or not _has_thumbnail(stored),
            history=_history(stored.get("history") or "[]"),
            attempts=_integer("attempts", stored.get("attempts") or "0"),
            counted_delivery=stored.get("counted_delivery", ""),
            awaits_requeue=stored["awaits_requeue"] == "1" if "awaits_requeue" in stored
            else message.startswith(REQUEUE_FAILED),
            owner=stored.get("owner") or None,
            lane=lane_of(stored.get("lane")),
            placeholder=Placeholder(stored["thumbhash"], stored.get("blurhash") or "")
            if stored.get("thumbhash") else None,
            phash=_phash(stored["phash"]) if stored.get("phash") else None,
            metadata=Metadata.from_json(stored["metadata"]) if stored.get("metadata") else None,
        )

    def stored(self) -> Fields:
        """The record as the stores keep it (what from_stored reads back as this record)."""
        fields = {
            "media_type": self.media_type,
            "service": self.service,
            "state": self.state,
            "message": self.message,
            "code": "" if self.code is None else str(self.code),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
        if self.owner:
            fields["owner"] = self.owner
        fields |= {"lane": self.lane} if self.lane != Priority.NORMAL else {}  # as before lanes when normal
        if self.sha256:
            fields["sha256"] = self.sha256
        if self.filename:
            fields["filename"] = self.filename
        if self.size is not None:
            fields["bytes"] = str(self.size)
        if self.callback:
            last = self.callback.last_status
            fields |= {"callback_url": self.callback.url, "callback_state": self.callback.state,
                       "callback_attempts": str(self.callback.attempts),
                       "callback_last_status": "" if last is None else str(last)}
        if self.thumbnail_type:
            fields["thumbnail_type"] = self.thumbnail_type
        if self.sizes:
            width, height = next(iter(self.sizes.values()))  # as records had them before there were several
            fields |= {"width": str(width), "height": str(height)}
            if self.named_sizes:
                fields["sizes"] = json.dumps({name: [w, h] for name, (w, h) in self.sizes.items()})
            if any(kind != self.thumbnail_type for kind in self.thumbnail_types.values()):
                fields["thumbnail_types"] = json.dumps(self.thumbnail_types)
        if self.history:
            fields["history"] = json.dumps([
                {"state": entry.state, "service": entry.service, "message": entry.message, "code": entry.code,
                 "at": iso(entry.at)} for entry in self.history
            ])
        if self.attempts or self.counted_delivery:
            fields |= {"attempts": str(self.attempts), "counted_delivery": self.counted_delivery}
        if self.awaits_requeue:
            fields["awaits_requeue"] = "1"
        return fields | self._findings()

    def _findings(self) -> Fields:
        """What the worker found besides the thumbnails (placeholders, perceptual hash, metadata)."""
        fields: Fields = {}
        if self.placeholder:
            fields |= {"thumbhash": self.placeholder.thumbhash, "blurhash": self.placeholder.blurhash}
        if self.phash:
            fields["phash"] = self.phash
        if self.metadata:
            fields["metadata"] = self.metadata.as_json()
        return fields


def readable(media_id: str, stored: object) -> MediaRecord | None:
    """A listed or changed record, or None (logged) when it cannot be read: one bad record must not
    break a list or an event stream for the others (GET /images/<id> says what is wrong with it)."""
    try:
        return MediaRecord.from_stored(mapping(stored))
    except UnreadableRecord as exc:
        log.error("record skipped: %s", exc, extra={"media_id": media_id})
        return None


def mapping(stored: object) -> Mapping[str, str]:
    """What a store read, as the mapping from_stored reads (an SQLite row's JSON might be anything)."""
    if not isinstance(stored, dict):
        raise UnreadableRecord("record", stored, "an object")
    return stored


E = TypeVar("E", bound=enum.StrEnum)


def _required(stored: Mapping[str, str], name: str) -> str:
    value: object = stored.get(name)
    if not isinstance(value, str):  # missing, or not text in an SQLite row's JSON
        raise UnreadableRecord(name, value, "there as text")
    return value


def _enum(kind: type[E], name: str, value: object) -> E:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return kind(value)
    except ValueError:
        raise UnreadableRecord(name, value, "one of " + ", ".join(kind)) from None


def _integer(name: str, value: object) -> int:
    if isinstance(value, float) and value.is_integer():  # a number Lua's cjson wrote
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UnreadableRecord(name, value, "a whole number")
    try:
        return int(value)
    except ValueError:
        raise UnreadableRecord(name, value, "a whole number") from None


def _moment(name: str, value: object) -> datetime:
    try:
        if not isinstance(value, str):
            raise TypeError
        return parse_iso(value)
    except (ValueError, TypeError):
        raise UnreadableRecord(name, value, "an ISO 8601 time") from None


def _json(name: str, text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        raise UnreadableRecord(name, text, "JSON") from None


def _phash(value: str) -> str:
    if len(value) != PHASH_DIGITS or any(c not in "0123456789abcdef" for c in value):
        raise UnreadableRecord("phash", value, f"{PHASH_DIGITS} lowercase hexadecimal digits")
    return value


def _has_thumbnail(stored: Mapping[str, str]) -> bool:
    return "width" in stored or "thumbnail_type" in stored


def _sizes(stored: Mapping[str, str]) -> dict[str, tuple[int, int]]:
    """Each size's width and height, in config order; a record without `sizes` has one thumbnail
    of `width` x `height`, which reads as the size "default" (none while it has no thumbnail)."""
    if "sizes" not in stored:
        if not _has_thumbnail(stored):
            return {}
        width, height = (_integer(name, stored.get(name) or "0") for name in ("width", "height"))
        return {LEGACY_SIZE: (width, height)}
    sizes = _json("sizes", stored["sizes"])
    if not isinstance(sizes, dict) or not all(isinstance(pair, list) and len(pair) == 2 for pair in sizes.values()):
        raise UnreadableRecord("sizes", stored["sizes"], "an object of [width, height] pairs")
    return {str(name): (_integer("sizes", w), _integer("sizes", h)) for name, (w, h) in sizes.items()}


def _thumbnail_types(stored: Mapping[str, str]) -> dict[str, str]:
    """Each size's media type; a record without `thumbnail_types` has every size of `thumbnail_type`
    (none while it has no thumbnail)."""
    if not stored.get("thumbnail_types"):
        kind = stored.get("thumbnail_type")
        return {name: kind for name in _sizes(stored)} if kind else {}
    types = _json("thumbnail_types", stored["thumbnail_types"])
    if not isinstance(types, dict) or not all(isinstance(kind, str) for kind in types.values()):
        raise UnreadableRecord("thumbnail_types", stored["thumbnail_types"], "an object of media types")
    return {str(name): kind for name, kind in types.items()}


def _history(text: str) -> tuple[HistoryEntry, ...]:
    entries = _json("history", text)
    # Lua's cjson writes an empty table as {}, the same as an empty object.
    if entries == {}:
        return ()
    try:
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise TypeError
        return tuple(
            HistoryEntry(
                state=_enum(State, "state", entry.get("state")),
                service=str(entry.get("service") or ""),
                message=str(entry.get("message") or ""),
                code=_integer("code", entry.get("code", 0)),
                at=_moment("at", entry.get("at")),
            )
            for entry in entries
        )
    except (TypeError, UnreadableRecord):
        raise UnreadableRecord("history", text, "a list of {state, service, message, code, at}") from None
