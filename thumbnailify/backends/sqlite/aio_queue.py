"""Jobs into the embedded SQLite queue (one queue per kind of media); inserts run in a thread."""

from __future__ import annotations

import asyncio
import sqlite3

from thumbnailify.backends.sqlite.schema import Database, SQLiteQueue
from thumbnailify.clients import DEFAULT_CLIENT
from thumbnailify.kinds import MEDIA_KINDS, media_kind
from thumbnailify.lanes import Priority
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.settings import Settings


class SQLitePublisher:
    name = "sqlite"

    def __init__(self, settings: Settings) -> None:
        self.path = settings.path(settings.sqlite.path)
        self.lease_seconds = settings.sqlite.lease_seconds
        self.queues: dict[str, SQLiteQueue] = {}

    async def open(self) -> None:
        db = await asyncio.to_thread(Database, self.path)
        self.queues = {kind: SQLiteQueue(db, self.lease_seconds, kind) for kind in MEDIA_KINDS}

    async def ping(self) -> None:
        await self.depth()

    async def publish(self, media_id: str, media_type: str, lane: Priority = Priority.NORMAL,
                      client: str = DEFAULT_CLIENT) -> None:
        try:
            await asyncio.to_thread(self.queues[media_kind(media_type)].put, media_id, media_type, lane, client)
        except sqlite3.Error as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    async def depth(self) -> int:
        """Jobs waiting, all kinds together."""
        try:
            return sum(await asyncio.gather(*(asyncio.to_thread(q.depth) for q in self.queues.values())))
        except sqlite3.Error as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    async def close(self) -> None:
        if self.queues:
            next(iter(self.queues.values())).db.close()
