"""Media records in the embedded SQLite file (the same store the server uses)."""

from __future__ import annotations

import sqlite3

from thumbnailify.backends.sqlite.schema import Database
from thumbnailify.backends.sqlite.schema import SQLiteStore as SharedStore
from thumbnailify.settings import Settings


class SQLiteStore(SharedStore):
    transient: tuple[type[BaseException], ...] = (sqlite3.OperationalError, OSError)  # locked, disk full

    def __init__(self, settings: Settings) -> None:
        super().__init__(Database(settings.path(settings.sqlite.path)))

    def close(self) -> None:
        self.db.close()
