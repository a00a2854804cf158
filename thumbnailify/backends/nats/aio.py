"""The server's side of the NATS family: the store (records.Records, every failure a
BackendUnavailable) and the job publisher, on one connection each (nats-py, asyncio)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy

from thumbnailify.backends.headers import job_headers
from thumbnailify.backends.nats.backlog import Counts
from thumbnailify.backends.nats.clients import Clients
from thumbnailify.backends.nats.layout import changes_filter, job_consumers, job_subject, media_of
from thumbnailify.backends.nats.records import Records
from thumbnailify.clients import Client, Grant, Quota, Usage
from thumbnailify.kinds import MEDIA_KINDS, media_kind
from thumbnailify.lanes import Priority, goes_ahead
from thumbnailify.record import DEFAULT_OWNER, Fields, MediaRecord, State, readable
from thumbnailify.server.backends import Change, Page
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.settings import Settings
from thumbnailify.upload_bounds import Full, UploadBounds

log = logging.getLogger(__name__)

R = TypeVar("R")
RESUBSCRIBE_SECONDS = 1.0
FAILURES = (NatsError, OSError, TimeoutError)
CHANGE_EVENTS = ("accepted", "processing", "updated", "completed", "failed", "deleted")


def _end_if_cancelled() -> None:
    """nats-py turns a cancellation inside some calls into an error of its own (publish's
    TooManyStalledMsgsError) or swallows it (a flush): a task being cancelled must still end."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def answered(records: Records, call: Callable[[], Awaitable[R]]) -> R:
    """A call on the connection (made now if it could not be at start-up); a failure is the
    backend unavailable."""
    try:
        await records.ensure_open()
        result = await call()
    except FAILURES as exc:
        _end_if_cancelled()
        raise BackendUnavailable("nats", str(exc) or type(exc).__name__) from exc
    _end_if_cancelled()
    return result


class _Connected:
    """The server's side of one NATS connection: up at start if it can be, else on demand."""

    name = "nats"

    def __init__(self, settings: Settings) -> None:
        self.records = Records(settings)

    async def open(self) -> None:
        try:
            await answered(self.records, self.records.ping)
        except BackendUnavailable as exc:
            log.warning("NATS not reachable at start-up; will retry on demand: %s", exc.detail)

    async def ping(self) -> None:
        await answered(self.records, self.records.ping)

    async def close(self) -> None:
        await self.records.close()


class NatsStore(_Connected):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.clients = Clients(self.records)

    async def create(self, media_id: str, record: MediaRecord, score: float, quota: Quota | None = None) -> None:
        await answered(self.records, lambda: self.records.create(media_id, record, score, quota))

    async def get(self, media_id: str) -> MediaRecord | None:
        return await answered(self.records, lambda: self.records.get(media_id))

    async def transition(self, media_id: str, expected_state: State, fields: Fields) -> bool:
        return await answered(self.records, lambda: self.records.transition(media_id, expected_state, fields))

    async def delete(self, media_id: str) -> bool:
        return await answered(self.records, lambda: self.records.delete(media_id))

    async def page(self, limit: int, after: tuple[float, str] | None, state: State | None,
                   owner: str | None = None) -> Page:
        return await answered(self.records, lambda: self.records.page(limit, after, state, owner))

    async def perceptual_hashes(self) -> str:
        return await answered(self.records, self.records.perceptual_hashes)

    async def created_before(self, score: float, limit: int) -> list[str]:
        return await answered(self.records, lambda: self.records.created_before(score, limit))

    async def acquire_lock(self, name: str, owner: str, seconds: float) -> bool:
        return await answered(self.records, lambda: self.records.acquire_lock(name, owner, seconds))

    async def release_lock(self, name: str, owner: str) -> None:
        await answered(self.records, lambda: self.records.release_lock(name, owner))

    async def reserve_request(self, key: str, marker: str, seconds: float) -> str | None:
        return await answered(self.records, lambda: self.records.reserve_request(key, marker, seconds))

    async def save_request(self, key: str, value: str, seconds: float) -> None:
        await answered(self.records, lambda: self.records.save_request(key, value, seconds))

    async def release_request(self, key: str, marker: str) -> None:
        await answered(self.records, lambda: self.records.release_request(key, marker))

    async def create_upload(self, upload_id: str, fields: dict[str, str], expires: float,
                            bounds: UploadBounds) -> Full | None:
        return await answered(self.records, lambda: self.records.create_upload(upload_id, fields, expires, bounds))

    async def get_upload(self, upload_id: str) -> dict[str, str] | None:
        return await answered(self.records, lambda: self.records.get_upload(upload_id))

    async def update_upload(self, upload_id: str, expected_offset: int, fields: dict[str, str]) -> bool:
        return await answered(self.records, lambda: self.records.update_upload(upload_id, expected_offset, fields))

    async def delete_upload(self, upload_id: str) -> bool:
        return await answered(self.records, lambda: self.records.delete_upload(upload_id))

    async def expired_uploads(self, before: float, limit: int) -> list[str]:
        return await answered(self.records, lambda: self.records.expired_uploads(before, limit))

    async def add_client(self, client: Client, key_hash: str) -> bool:
        return await answered(self.records, lambda: self.clients.add(client, key_hash))

    async def client_by_key(self, key_hash: str) -> Client | None:
        return await answered(self.records, lambda: self.clients.by_key(key_hash))

    async def get_client(self, name: str) -> Client | None:
        return await answered(self.records, lambda: self.clients.get(name))

    async def list_clients(self) -> list[Client]:
        return await answered(self.records, self.clients.all)

    async def revoke_client(self, name: str) -> bool:
        return await answered(self.records, lambda: self.clients.revoke(name))

    async def rotate_key(self, name: str, key_hash: str, grace_seconds: float) -> bool:
        return await answered(self.records, lambda: self.clients.rotate(name, key_hash, grace_seconds))

    async def usage(self, name: str) -> Usage:
        return await answered(self.records, lambda: self.records.usage(name))

    async def take_token(self, name: str, rate: float, burst: float) -> Grant:
        return await answered(self.records, lambda: self.clients.take_token(name, rate, burst))

    async def changes(self, listening: Callable[[bool], None]) -> AsyncIterator[Change]:
        """A consumer of the log from its creation on (ordered, ephemeral: nats-py resets it after an
        outage); job messages are skipped, they change no record."""
        while True:
            _end_if_cancelled()
            subscription = None
            try:
                await self.records.ensure_open()
                subscription = await self.records.jetstream.subscribe(
                    changes_filter(self.records.stream), ordered_consumer=True, deliver_policy=DeliverPolicy.NEW)
                listening(True)
                async for message in subscription.messages:
                    media_id, event = media_of(message.subject)
                    if event == "deleted":
                        yield Change(media_id, None, json.loads(message.data or b"{}").get("owner") or DEFAULT_OWNER)
                    elif event in CHANGE_EVENTS and (record := readable(media_id, json.loads(message.data))):
                        yield Change(media_id, record, record.client)
            except Exception as exc:  # an outage, bad data
                _end_if_cancelled()
                listening(False)
                log.warning("events subscription lost, subscribing again: %r", exc)
            finally:  # also when the hub stops reading: a consumer left behind would be fed for nobody
                if subscription is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(subscription.unsubscribe(), RESUBSCRIBE_SECONDS)
            await asyncio.sleep(RESUBSCRIBE_SECONDS)


class NatsPublisher(_Connected):
    """Jobs are messages of the log, `<stream>.media.<id>.queued.<kind>[.<lane>]`, or its lane's
    light part `...queued.<kind>.<lane>.light` when the client had fewer than
    worker.fair_share_jobs waiting in the lane (backlog.py): published returns once JetStream
    acknowledged that the stream has it."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.counts = Counts(self.records)

    async def publish(self, media_id: str, media_type: str, lane: Priority = Priority.NORMAL,
                      client: str = DEFAULT_OWNER) -> None:
        kind, stream = media_kind(media_type), self.records.stream
        # Counted before the publish, so a worker's count down never comes before its count up.
        waiting = await self._count(kind, lane, client, 1) if self.counts.counted(kind) else None
        subject = job_subject(stream, media_id, kind, lane, light=goes_ahead(waiting, self.counts.light_jobs))
        try:
            await answered(self.records, lambda: self.records.jetstream.publish(
                subject, media_id.encode(), headers=job_headers(media_type, lane, client)))
        except BaseException:
            if waiting is not None:
                await self._count(kind, lane, client, -1)
            raise

    async def _count(self, kind: str, lane: Priority, client: str, step: int) -> int | None:
        try:
            return await answered(self.records, lambda: self.counts.count(kind, lane, client, step))
        except BackendUnavailable as exc:
            log.warning("could not count a job of %s in %s/%s (%s)", client, kind, lane, exc.detail)
            return None

    async def depth(self) -> int:
        """Jobs waiting for a worker, all media kinds and lanes together."""
        async def pending() -> int:
            infos = [await self.records.jetstream.consumer_info(self.records.stream, consumer)
                     for kind in MEDIA_KINDS for consumer in job_consumers(kind)]
            return sum(info.num_pending or 0 for info in infos)
        return await answered(self.records, pending)
