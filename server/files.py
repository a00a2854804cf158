"""The shared media volume, from the server's side: uploads in, thumbnails out (aiofiles)."""

from __future__ import annotations

import asyncio
import contextlib

import aiofiles
import aiofiles.os

from common.config import Settings
from common.media import MediaType
from common.volume import Volume
from server.errors import BackendUnavailable


class Upload:
    """An upload being written under a temporary name; commit() renames it into place."""

    def __init__(self, volume: Volume, media_id: str) -> None:
        self.final = volume.raw_path(media_id)
        self.temp = volume.temp_path(self.final)
        self._file: aiofiles.threadpool.binary.AsyncBufferedIOBase | None = None

    async def write(self, data: bytes) -> None:
        try:
            if self._file is None:
                self._file = await aiofiles.open(self.temp, "wb")
            await self._file.write(data)
        except OSError as exc:
            raise BackendUnavailable("volume", str(exc)) from exc

    async def commit(self) -> None:
        try:
            if self._file is None:
                raise BackendUnavailable("volume", "nothing was written")
            await self._file.close()
            self._file = None
            await aiofiles.os.replace(self.temp, self.final)
        except OSError as exc:
            raise BackendUnavailable("volume", str(exc)) from exc

    async def discard(self) -> None:
        """Remove whatever this upload left, committed or not; never raises."""
        if self._file is not None:
            await self._file.close()
            self._file = None
        for path in (self.temp, self.final):
            with contextlib.suppress(OSError):
                await aiofiles.os.remove(path)


class FilesystemFiles:
    name = "volume"

    def __init__(self, settings: Settings) -> None:
        self.volume = Volume(settings.path(settings.files.root))

    async def open(self) -> None:
        await asyncio.to_thread(self.volume.prepare)

    async def ping(self) -> None:
        try:
            await asyncio.to_thread(self.volume.check_writable)
        except OSError as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    def upload(self, media_id: str) -> Upload:
        return Upload(self.volume, media_id)

    async def raw_exists(self, media_id: str) -> bool:
        return await aiofiles.os.path.exists(self.volume.raw_path(media_id))

    async def read_thumbnail(self, media_id: str, media_type: MediaType) -> bytes | None:
        try:
            async with aiofiles.open(self.volume.thumb_path(media_id, media_type), "rb") as file:
                return await file.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    async def remove(self, media_id: str, media_type: MediaType | None) -> None:
        try:
            await asyncio.to_thread(self.volume.remove, media_id, media_type)
        except OSError as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    async def close(self) -> None:
        return None

