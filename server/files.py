"""The shared media volume, from the server's side: uploads in, thumbnails out (aiofiles)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiofiles
import aiofiles.os

from common.config import Settings
from common.media import MediaType
from common.volume import Volume
from server.errors import BackendUnavailable


class Upload:
    """An upload's decoded bytes: kept in memory up to SPILL_BYTES, then streamed to the file.

    A typical photo is then written in one thread-pool call instead of one per operation (open,
    each write, close), which is most of the cost of an upload. The worker sees the file only
    after the job is published, so it is written under its final name.
    """

    SPILL_BYTES = 1024 * 1024

    def __init__(self, volume: Volume, media_id: str) -> None:
        self.path = volume.raw_path(media_id)
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._file: aiofiles.threadpool.binary.AsyncBufferedIOBase | None = None

    async def write(self, data: bytes) -> None:
        if self._file is None and self._buffered + len(data) <= self.SPILL_BYTES:
            self._buffer.append(data)
            self._buffered += len(data)
            return
        try:
            if self._file is None:
                self._file = await aiofiles.open(self.path, "wb")
                await self._file.write(b"".join(self._buffer))
                self._buffer = []
            await self._file.write(data)
        except OSError as exc:
            raise BackendUnavailable("volume", str(exc)) from exc

    async def commit(self) -> None:
        try:
            if self._file is None:
                await _write_file(self.path, b"".join(self._buffer))
                self._buffer = []
            else:
                await self._file.close()
                self._file = None
        except OSError as exc:
            raise BackendUnavailable("volume", str(exc)) from exc

    async def discard(self) -> None:
        """Remove whatever this upload wrote; never raises."""
        self._buffer = []
        if self._file is not None:
            with contextlib.suppress(OSError):
                await self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            await aiofiles.os.remove(self.path)


@aiofiles.os.wrap
def _write_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)


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

    async def read_thumbnail(self, media_id: str, media_type: MediaType, size: str | None) -> bytes | None:
        """One size of the thumbnail; size None is the one thumbnail of a record without sizes."""
        if size is None:
            path = self.volume.legacy_thumb_path(media_id, media_type)
        else:
            path = self.volume.thumb_path(media_id, media_type, size)
        try:
            async with aiofiles.open(path, "rb") as file:
                return await file.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    async def remove(self, media_id: str) -> None:
        try:
            await asyncio.to_thread(self.volume.remove, media_id)
        except OSError as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    async def close(self) -> None:
        return None

