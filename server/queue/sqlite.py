"""Jobs into the embedded SQLite queue; the insert runs in a thread."""

from __future__ import annotations

import asyncio
import sqlite3

from common.config import Settings
from common.sqlite import Database, SQLiteQueue
from server.errors import BackendUnavailable


class SQLitePublisher:
    name = "sqlite"

    def __init__(self, settings: Settings) -> None:
        self.path = settings.path(settings.sqlite.path)
        self.lease_seconds = settings.sqlite.lease_seconds
        self.queue: SQLiteQueue | None = None

    async def open(self) -> None:
        db = await asyncio.to_thread(Database, self.path)
        self.queue = SQLiteQueue(db, self.lease_seconds)

    @property
    def _queue(self) -> SQLiteQueue:
        assert self.queue is not None, "open() first"
        return self.queue

    async def ping(self) -> None:
        await self.depth()

    async def publish(self, media_id: str, media_type: str) -> None:
        try:
            await asyncio.to_thread(self._queue.put, media_id, media_type)
        except sqlite3.Error as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    async def depth(self) -> int:
        try:
            return await asyncio.to_thread(self._queue.depth)
        except sqlite3.Error as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    async def close(self) -> None:
        if self.queue is not None:
            self.queue.db.close()
