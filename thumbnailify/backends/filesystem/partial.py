"""A resumable upload's bytes on the volume: one file, `resumable/<upload id>`, each PATCH written
at its offset. The file only ever grows past the offset the store names while a PATCH is in
progress; the next PATCH writes from that offset again (a killed writer's tail is overwritten)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator
from pathlib import Path

from thumbnailify.server.http.errors import BackendUnavailable

FOLDER = "resumable"
WRITE_BYTES = 256 * 1024  # bytes gathered before one thread-pool write
READ_BYTES = 1024 * 1024


def _unavailable(exc: OSError) -> BackendUnavailable:
    return BackendUnavailable("files", str(exc))


class Appending:
    """One PATCH's bytes into the upload's file, at its offset."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset
        self.written = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._fd: int | None = None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        if os.fstat(fd).st_size < self.offset:  # never pad a lost file with zeros
            os.close(fd)
            raise OSError(f"{self.path} has fewer bytes than the upload's offset {self.offset}")
        os.ftruncate(fd, self.offset)  # whatever a killed PATCH left past the offset goes
        return fd

    def _flush(self, data: bytes) -> None:
        if self._fd is None:
            self._fd = self._open()
        os.pwrite(self._fd, data, self.offset + self.written)
        self.written += len(data)

    async def _flush_buffer(self) -> None:
        data, self._buffer, self._buffered = b"".join(self._buffer), [], 0
        try:
            await asyncio.to_thread(self._flush, data)
        except OSError as exc:
            raise _unavailable(exc) from exc

    async def write(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= WRITE_BYTES:
            await self._flush_buffer()

    async def commit(self) -> None:
        await self._flush_buffer()
        await asyncio.to_thread(self._close)

    async def discard(self) -> None:
        """Back to the offset this PATCH started at; never raises."""
        self._buffer, self._buffered = [], 0
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._truncate_and_close)

    def _truncate_and_close(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, self.offset)
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.fsync(fd)  # the store will say these bytes are there: they must be
            os.close(fd)


class FilePartial:
    def __init__(self, root: Path, upload_id: str) -> None:
        self.path = root / FOLDER / upload_id

    def append(self, offset: int) -> Appending:
        return Appending(self.path, offset)

    async def read(self, length: int) -> AsyncGenerator[bytes, None]:
        try:
            file = await asyncio.to_thread(open, self.path, "rb")
        except OSError as exc:
            raise _unavailable(exc) from exc
        try:
            left = length
            while left > 0:
                chunk = await asyncio.to_thread(file.read, min(READ_BYTES, left))
                if not chunk:
                    raise _unavailable(OSError(f"resumable upload has {length - left} of {length} bytes"))
                left -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(file.close)

    async def remove(self) -> None:
        try:
            await asyncio.to_thread(self.path.unlink, missing_ok=True)
        except OSError as exc:
            raise _unavailable(exc) from exc
