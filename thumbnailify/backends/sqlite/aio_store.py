"""Media records in the embedded SQLite file; the sync store runs in a thread."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from thumbnailify.backends.sqlite.clients import Clients
from thumbnailify.backends.sqlite.schema import Database, decoded
from thumbnailify.backends.sqlite.schema import SQLiteStore as SyncStore
from thumbnailify.backends.sqlite.uploads import Uploads
from thumbnailify.clients import Client, Grant, Quota, Usage
from thumbnailify.record import Fields, MediaRecord, State, readable
from thumbnailify.server.backends import Change, Page
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.settings import Settings
from thumbnailify.upload_bounds import Full, UploadBounds

log = logging.getLogger(__name__)

R = TypeVar("R")
POLL_SECONDS = 0.2  # how often a server process looks for changes others wrote
CHANGES_BATCH = 500
KEEP_CHANGES_SECONDS = 600.0  # the changes table is a short log, not history


class SQLiteStore:
    name = "sqlite"

    def __init__(self, settings: Settings) -> None:
        self.path = settings.path(settings.sqlite.path)
        self.store: SyncStore | None = None
        self.uploads: Uploads | None = None
        self.clients: Clients | None = None

    async def _run(self, call: Callable[..., R], *args: object) -> R:
        try:
            return await asyncio.to_thread(call, *args)
        except sqlite3.Error as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    async def open(self) -> None:
        self.store = SyncStore(await self._run(Database, self.path))
        self.uploads = await self._run(Uploads, self.store.db)
        self.clients = await self._run(Clients, self.store.db)

    @property
    def _store(self) -> SyncStore:
        assert self.store is not None, "open() first"
        return self.store

    async def ping(self) -> None:
        await self._run(self._store.ping)

    async def create(self, media_id: str, record: MediaRecord, score: float, quota: Quota | None = None) -> None:
        await self._run(self._store.create, media_id, record, score, quota)

    async def get(self, media_id: str) -> MediaRecord | None:
        return await self._run(self._store.get, media_id)

    async def transition(self, media_id: str, expected_state: State, fields: Fields) -> bool:
        return await self._run(self._store.transition, media_id, expected_state, fields)

    async def delete(self, media_id: str) -> bool:
        return await self._run(self._store.delete, media_id)

    async def page(self, limit: int, after: tuple[float, str] | None, state: State | None,
                   owner: str | None = None) -> Page:
        return await self._run(self._store.page, limit, after, state, owner)

    async def perceptual_hashes(self) -> str:
        return await self._run(self._store.perceptual_hashes)

    async def created_before(self, score: float, limit: int) -> list[str]:
        return await self._run(self._store.created_before, score, limit)

    async def acquire_lock(self, name: str, owner: str, seconds: float) -> bool:
        return await self._run(self._store.acquire_lock, name, owner, seconds)

    async def release_lock(self, name: str, owner: str) -> None:
        await self._run(self._store.release_lock, name, owner)

    async def reserve_request(self, key: str, marker: str, seconds: float) -> str | None:
        return await self._run(self._store.reserve_request, key, marker, seconds)

    async def save_request(self, key: str, value: str, seconds: float) -> None:
        await self._run(self._store.save_request, key, value, seconds)

    async def release_request(self, key: str, marker: str) -> None:
        await self._run(self._store.release_request, key, marker)

    @property
    def _uploads(self) -> Uploads:
        assert self.uploads is not None, "open() first"
        return self.uploads

    async def create_upload(self, upload_id: str, fields: dict[str, str], expires: float,
                            bounds: UploadBounds) -> Full | None:
        return await self._run(self._uploads.create, upload_id, fields, expires, bounds)

    async def get_upload(self, upload_id: str) -> dict[str, str] | None:
        return await self._run(self._uploads.get, upload_id)

    async def update_upload(self, upload_id: str, expected_offset: int, fields: dict[str, str]) -> bool:
        return await self._run(self._uploads.update, upload_id, expected_offset, fields)

    async def delete_upload(self, upload_id: str) -> bool:
        return await self._run(self._uploads.delete, upload_id)

    async def expired_uploads(self, before: float, limit: int) -> list[str]:
        return await self._run(self._uploads.expired, before, limit)

    @property
    def _clients(self) -> Clients:
        assert self.clients is not None, "open() first"
        return self.clients

    async def add_client(self, client: Client, key_hash: str) -> bool:
        return await self._run(self._clients.add, client, key_hash)

    async def client_by_key(self, key_hash: str) -> Client | None:
        return await self._run(self._clients.by_key, key_hash)

    async def get_client(self, name: str) -> Client | None:
        return await self._run(self._clients.get, name)

    async def list_clients(self) -> list[Client]:
        return await self._run(self._clients.all)

    async def revoke_client(self, name: str) -> bool:
        return await self._run(self._clients.revoke, name)

    async def rotate_key(self, name: str, key_hash: str, grace_seconds: float) -> bool:
        return await self._run(self._clients.rotate, name, key_hash, grace_seconds)

    async def usage(self, name: str) -> Usage:
        return await self._run(self._clients.usage, name)

    async def take_token(self, name: str, rate: float, burst: float) -> Grant:
        return await self._run(self._clients.take_token, name, rate, burst)

    async def changes(self, listening: Callable[[bool], None]) -> AsyncIterator[Change]:
        """Polls the changes table every writer (servers and workers) appends to, from its last row
        when it starts listening."""
        last: int | None = None
        next_prune = 0.0
        while True:
            try:
                if last is None:
                    last = await self._run(self._store.last_change)
                    listening(True)  # and for good: an outage keeps the cursor, nothing is missed
                rows = await self._run(self._store.changes_after, last, CHANGES_BATCH)
                if time.monotonic() > next_prune:
                    await self._run(self._store.prune_changes, time.time() - KEEP_CHANGES_SECONDS)
                    next_prune = time.monotonic() + KEEP_CHANGES_SECONDS / 10
            except BackendUnavailable as exc:
                log.warning("cannot read changes: %s", exc.detail)
                rows = []
            for change_id, media_id, text, owner in rows:
                last = change_id
                if not text:
                    yield Change(media_id, None, owner)
                elif (record := readable(media_id, decoded(text))) is not None:
                    yield Change(media_id, record, owner)
            if len(rows) < CHANGES_BATCH:
                await asyncio.sleep(POLL_SECONDS)

    async def close(self) -> None:
        if self.store is not None:
            self.store.db.close()
