"""The worker's backends by name, as config/config.yaml chooses them (see thumbnailify.backends.loader)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from thumbnailify.lanes import Priority
from thumbnailify.media import MediaType
from thumbnailify.record import DEFAULT_OWNER, Fields, MediaRecord, State
from thumbnailify.settings import Settings

TABLE: dict[str, dict[str, str]] = {
    "store": {
        "redis": "thumbnailify.backends.redis.sync:RedisStore",
        "sqlite": "thumbnailify.backends.sqlite.sync_store:SQLiteStore",
        "nats": "thumbnailify.backends.nats.sync:NatsStore",
    },
    "queue": {
        "rabbitmq": "thumbnailify.backends.rabbitmq.sync:RabbitMQConsumer",
        "sqlite": "thumbnailify.backends.sqlite.sync_queue:SQLiteConsumer",
        "nats": "thumbnailify.backends.nats.sync:NatsConsumer",
    },
    "files": {
        "filesystem": "thumbnailify.backends.filesystem.sync:FilesystemFiles",
        "s3": "thumbnailify.backends.s3.sync:S3Files",
    },
    # by the queue's name: where that queue keeps its dead letters, for `python -m thumbnailify.worker.replay`
    "dead_letters": {
        "rabbitmq": "thumbnailify.backends.rabbitmq.sync:RabbitMQDeadLetters",
        "sqlite": "thumbnailify.backends.sqlite.sync_queue:SQLiteDeadLetters",
        "nats": "thumbnailify.backends.nats.sync:NatsDeadLetters",
    },
}


class Store(Protocol):
    """Media records, as the worker changes them. Raises one of `transient` on outages (the job
    runner retries those), and UnreadableRecord from `get` for a record it cannot read."""

    transient: tuple[type[BaseException], ...]  # its client's outage errors, and OSError

    def __init__(self, settings: Settings) -> None: ...
    def get(self, media_id: str) -> MediaRecord | None: ...
    def transition(self, media_id: str, expected_state: State, fields: Fields) -> bool: ...
    def add_attempt(self, media_id: str, delivery_token: str) -> int: ...
    def set_fields(self, media_id: str, fields: Fields) -> bool:
        """Fields that are not the media's state (a webhook's progress), on a record that exists."""
    def find_content(self, key: str) -> str | None:
        """The media_id last made from this content and these thumbnail settings, if any."""
    def remember_content(self, key: str, media_id: str) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Delivery:
    """One job as the queue handed it over; body and headers are untrusted."""

    media_id: str
    media_type: str | None
    redelivered: bool
    tag: object  # whatever the queue needs to ack this delivery
    token: str  # names this one delivery, so a repeated store call counts its attempt only once
    # Where it waited and whose it is: a retry or a dead letter keeps both (see thumbnailify.lanes).
    lane: Priority = Priority.NORMAL
    client: str = DEFAULT_OWNER


class Consumer(Protocol):
    """One kind's job queue, receiving end: at-least-once. Several deliveries may be outstanding
    at once (a webhook worker holds up to webhooks.concurrency); all calls come from one thread."""

    def __init__(self, settings: Settings, kind: str) -> None: ...
    def next(self, timeout: float) -> Delivery | None: ...
    def ack(self, delivery: Delivery) -> None: ...
    def dead_letter(self, delivery: Delivery, reason: str) -> None: ...
    def retry_later(self, delivery: Delivery, seconds: float) -> None:
        """Settle this delivery and have the job handed out again in `seconds`, in its lane."""
    def enqueue(self, kind: str, media_id: str, media_type: str) -> None:
        """A job for another kind of worker; raises when the queue did not take it."""
    def settle_abandoned(self, settle: Callable[[Delivery], None]) -> int:
        """Jobs the queue itself gave up on (delivered too often), each recorded by `settle` and
        then removed; returns how many."""
    def close(self) -> None: ...


class SourceMissing(Exception):
    """The upload is not in the files backend although the backend itself answers."""


class Files(Protocol):
    """The media files as a worker sees them: uploads in, thumbnails out. Raises OSError (or the
    backend's own errors, listed in its `transient`) on outages."""

    transient: tuple[type[BaseException], ...]

    def __init__(self, settings: Settings, scratch: Path) -> None: ...
    def prepare(self) -> None: ...
    def source(self, media_id: str) -> AbstractContextManager[Path]:
        """A local path to read the upload from, for the block's duration; SourceMissing if none."""
    def write_thumbnails(self, media_id: str, sizes: dict[str, tuple[MediaType, bytes]]) -> None:
        """Every size of the item's thumbnail: its name, its type (which names the file) and bytes."""
    def copy_thumbnails(self, source_id: str, media_id: str, sizes: dict[str, MediaType]) -> bool:
        """Another item's thumbnails (each size's name and type) as this one's; False when they are gone."""
    def remove_upload(self, media_id: str) -> None: ...
    def remove(self, media_id: str) -> None:
        """Every file of the item, the upload and each thumbnail."""


@dataclass(frozen=True)
class DeadLetter:
    """A job that met an outage on every retry, as the queue kept it for an operator."""

    media_id: str
    media_type: str
    reason: str
    tag: object
    lane: Priority = Priority.NORMAL  # requeued into the lane it came from
    client: str = DEFAULT_OWNER


class DeadLetters(Protocol):
    """The dead letters present when opened, taken one at a time; each is then requeued or dropped."""

    def __init__(self, settings: Settings, kind: str) -> None: ...
    def take(self) -> DeadLetter | None: ...
    def requeue(self, letter: DeadLetter) -> None: ...
    def drop(self, letter: DeadLetter) -> None: ...
    def close(self) -> None: ...
