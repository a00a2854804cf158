"""The server's backends by name, as config/config.yaml chooses them (see thumbnailify.backends.loader)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import NamedTuple, Protocol

from thumbnailify.backends.layout import StoredFile
from thumbnailify.clients import DEFAULT_CLIENT, Client, Grant, Quota, Usage
from thumbnailify.lanes import Priority
from thumbnailify.media import MediaType
from thumbnailify.record import Fields, MediaRecord, State
from thumbnailify.server.uploads.intake import Sink
from thumbnailify.settings import Settings
from thumbnailify.upload_bounds import Full, UploadBounds

TABLE: dict[str, dict[str, str]] = {
    "store": {
        "redis": "thumbnailify.backends.redis.aio:RedisStore",
        "sqlite": "thumbnailify.backends.sqlite.aio_store:SQLiteStore",
        "nats": "thumbnailify.backends.nats.aio:NatsStore",
    },
    "queue": {
        "rabbitmq": "thumbnailify.backends.rabbitmq.aio:RabbitMQPublisher",
        "sqlite": "thumbnailify.backends.sqlite.aio_queue:SQLitePublisher",
        "nats": "thumbnailify.backends.nats.aio:NatsPublisher",
    },
    "files": {
        "filesystem": "thumbnailify.backends.filesystem.aio:FilesystemFiles",
        "s3": "thumbnailify.backends.s3.aio:S3Files",
    },
}

Page = list[tuple[str, float, MediaRecord]]


class Change(NamedTuple):
    media_id: str
    record: MediaRecord | None  # after the change; None: deleted
    owner: str  # the client the media belongs (or belonged) to


class Backend(Protocol):
    """What every backend of the server has: a name for /ready, and its connection's life."""

    name: str

    def __init__(self, settings: Settings) -> None: ...
    async def open(self) -> None: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class Store(Backend, Protocol):
    """Media records. Every method raises BackendUnavailable when the store cannot answer; `get`
    raises UnreadableRecord for a record it cannot read, `page` and `changes` skip one (see
    thumbnailify.record.readable)."""

    async def create(self, media_id: str, record: MediaRecord, score: float, quota: Quota | None = None) -> None:
        """A record with an owner counts in its client's usage, in the same atomic step; with a
        `quota` it raises QuotaExceeded instead, writing nothing, when it would take the client past it."""
    async def get(self, media_id: str) -> MediaRecord | None: ...
    async def transition(self, media_id: str, expected_state: State, fields: Fields) -> bool: ...
    async def delete(self, media_id: str) -> bool: ...
    async def page(self, limit: int, after: tuple[float, str] | None, state: State | None,
                   owner: str | None = None) -> Page:
        """Newest first, strictly after the (score, media_id) cursor, optionally one state, one client only."""
    async def perceptual_hashes(self) -> str:
        """Every Completed item's media_id (36 characters) followed by its perceptual hash (16
        hexadecimal digits), all in one string, in no order: a similarity search scans them at
        once (thumbnailify.server.similar), where a mapping of 100,000 would take longer to build."""
    async def created_before(self, score: float, limit: int) -> list[str]:
        """Ids of items created before `score` (seconds since the epoch), oldest first."""
    async def acquire_lock(self, name: str, owner: str, seconds: float) -> bool:
        """Take the lock if free, or extend it if this owner holds it; False if another does."""
    async def release_lock(self, name: str, owner: str) -> None: ...
    async def reserve_request(self, key: str, marker: str, seconds: float) -> str | None:
        """Put marker under an Idempotency-Key unless it holds something: None, or what it holds."""
    async def save_request(self, key: str, value: str, seconds: float) -> None: ...
    async def release_request(self, key: str, marker: str) -> None:
        """Free the key if it still holds this marker (not another request's, nor an answer)."""
    def changes(self, listening: Callable[[bool], None]) -> AsyncIterator[Change]:
        """Every change of every record, whoever made it, from the moment it calls `listening(True)`
        on (once it is subscribed); `listening(False)` when the subscription is lost, True again once
        it is back (what changes in between is not seen)."""
    # Resumable (tus) uploads: a record of text fields per upload, `offset` among them.
    async def create_upload(self, upload_id: str, fields: dict[str, str], expires: float,
                            bounds: UploadBounds) -> Full | None:
        """Keep a new upload until `expires` (seconds since the epoch), or say which bound is full:
        its client's (`fields["owner"]` names it) or every client's. Checked in the same step as
        the write, except on NATS (see backends/nats/records.py)."""
    async def get_upload(self, upload_id: str) -> dict[str, str] | None: ...
    async def update_upload(self, upload_id: str, expected_offset: int, fields: dict[str, str]) -> bool:
        """Set fields if the upload is still at `expected_offset`; a `media_id` among them marks it
        finished (no longer counted against the bounds). False when gone or moved meanwhile."""
    async def delete_upload(self, upload_id: str) -> bool: ...
    async def expired_uploads(self, before: float, limit: int) -> list[str]:
        """Ids of uploads, finished or not, whose time ran out before `before`."""
    # Clients (thumbnailify/clients.py): found by their key's hash; usage counted by create/delete.
    async def add_client(self, client: Client, key_hash: str) -> bool:
        """False when a client of that name exists (revoked ones too: names are never reused)."""
    async def client_by_key(self, key_hash: str) -> Client | None:
        """The client holding this key: None when unknown, past its grace period, or revoked."""
    async def get_client(self, name: str) -> Client | None: ...
    async def list_clients(self) -> list[Client]: ...
    async def revoke_client(self, name: str) -> bool:
        """Every key of the client stops working; its items stay. False when there is no such client."""
    async def rotate_key(self, name: str, key_hash: str, grace_seconds: float) -> bool:
        """A new key; the keys the client had keep working `grace_seconds` more. False when there is
        no such client, or it is revoked."""
    async def usage(self, name: str) -> Usage: ...
    async def take_token(self, name: str, rate: float, burst: float) -> Grant:
        """One token from the client's bucket (refilled at `rate` per second up to `burst`), shared
        by every server process; the clock is the store's where it has one."""


class Publisher(Backend, Protocol):
    """The job queue's sending end; publish returns only once the queue has the job, in `lane`
    (the client's priority), for `client` (whose jobs take turns with other clients' in that lane,
    or go ahead of their backlogs there while it has few waiting: thumbnailify.lanes)."""

    async def publish(self, media_id: str, media_type: str, lane: Priority = Priority.NORMAL,
                      client: str = DEFAULT_CLIENT) -> None: ...
    async def depth(self) -> int: ...


class Partial(Protocol):
    """The bytes of one unfinished resumable upload, kept where the item's upload will go."""

    def append(self, offset: int) -> Sink:
        """One PATCH's bytes, from `offset` on: `commit` keeps what was written (all of it, or
        what arrived before the connection was cut), `discard` drops it (the upload stays at
        `offset`)."""
    def read(self, length: int) -> AsyncGenerator[bytes, None]:
        """The upload's first `length` bytes, in order, chunk by chunk."""
    async def remove(self) -> None:
        """Every byte of the upload; missing ones are fine."""


class Files(Backend, Protocol):
    """Uploads and thumbnails (server/files/). Every method raises BackendUnavailable on outages."""

    upload_memory: int  # the most one upload in flight holds in this process's memory

    def upload(self, media_id: str) -> Sink:
        """Where an upload's bytes go; they become the item's upload only at `commit`."""
    def partial(self, upload_id: str) -> Partial:
        """A resumable upload's bytes so far (any server process may add the next ones)."""
    async def raw_exists(self, media_id: str) -> bool: ...
    async def read_thumbnail(self, media_id: str, media_type: MediaType, size: str | None) -> bytes | None: ...
    async def remove(self, media_id: str) -> None:
        """Everything of the item, whatever state its record is in (or if it has none)."""
    def scan(self) -> AsyncIterator[StoredFile]:
        """Everything stored, by item, for the retention sweep."""
    async def remove_stored(self, item: StoredFile) -> None: ...
