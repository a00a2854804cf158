"""Media records in the embedded SQLite file (the same store the server uses)."""

from __future__ import annotations

from common.config import Settings
from common.sqlite import Database
from common.sqlite import SQLiteStore as SharedStore


class SQLiteStore(SharedStore):
    def __init__(self, settings: Settings) -> None:
        super().__init__(Database(settings.path(settings.sqlite.path)))

    def close(self) -> None:
        self.db.close()
