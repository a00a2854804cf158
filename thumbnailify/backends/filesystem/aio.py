"""The shared media volume, from the server's side: uploads in, thumbnails out (aiofiles)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import aiofiles
import aiofiles.os

from thumbnailify.backends.filesystem.partial import FilePartial
from thumbnailify.backends.filesystem.volume import Volume
from thumbnailify.backends.layout import StoredFile
from thumbnailify.media import MediaType
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.settings import Settings

SCAN_BATCH = 1000
WRITER_THREADS = 2
T = TypeVar("T")


class Upload:
    """An upload's bytes: gathered in memory up to BUFFER_BYTES, then written to a temporary file
    a whole batch per call to the volume's writer threads.

    A typical photo is written in one call instead of one per operation (open, each write, close),
    which is most of the cost of an upload; a larger one in one call per BUFFER_BYTES rather than
    one per chunk the socket gave (a 3 MB photo arrives in a hundred).
    The bytes go to a temporary name and `commit` renames them into place, so a server killed
    mid-upload never leaves a file under a final name (the retention sweep removes stale
    temporary files).
    """

    BUFFER_BYTES = 128 * 1024  # a 100 KB photo still goes in one call

    def __init__(self, volume: Volume, media_id: str, writer: Executor) -> None:
        self.path = volume.raw_path(media_id)
        self.temp = volume.temp_path(self.path)
        self._writer = writer
        self._pending: Future[Any] | None = None  # the last call handed to the writer threads
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._file: BinaryIO | None = None

    async def write(self, data: bytes) -> None:
        if self._buffered and self._buffered + len(data) > self.BUFFER_BYTES:
            await self._flush()  # never more than BUFFER_BYTES held, or one chunk larger than that
        self._buffer.append(data)
        self._buffered += len(data)

    async def _flush(self) -> None:
        batch, self._buffer, self._buffered = self._buffer, [], 0
        try:
            self._file = await self._run(_append, self._file, self.temp, batch)
        except OSError as exc:
            raise BackendUnavailable("files", str(exc)) from exc

    async def commit(self) -> None:
        try:
            if self._file is None:
                await self._run(_write_and_rename, self.temp, self.path, b"".join(self._buffer))
                self._buffer, self._buffered = [], 0
            else:
                batch, self._buffer, self._buffered = self._buffer, [], 0
                file, self._file = self._file, None
                await self._run(_finish, file, batch, self.temp, self.path)
        except OSError as exc:
            raise BackendUnavailable("files", str(exc)) from exc

    async def discard(self) -> None:
        """Remove whatever this upload wrote, committed or not; never raises but for a cancellation.
        A write whose request was cancelled goes on in its thread: it is waited for first, or it
        could rename the file into place, or open it, after this removed it."""
        self._buffer, self._buffered = [], 0
        file, self._file = self._file, None
        pending, self._pending = self._pending, None
        if pending is not None and not pending.cancelled():  # cancelled: it never started
            try:
                opened = await asyncio.wrap_future(pending)
            except Exception:  # the write failed: it removed or closed what it had made
                opened = None
            if file is None and isinstance(opened, io.IOBase):  # a first batch's, cancelled
                file = cast(BinaryIO, opened)
        try:
            await self._run(_close_and_unlink, file, self.temp, self.path)
        except RuntimeError:  # the writer threads are shut down (the server is stopping)
            _close_and_unlink(file, self.temp, self.path)

    async def _run(self, func: Callable[..., T], *args: object) -> T:
        """`func` on the writer threads. If the request is cancelled meanwhile, a call already
        started still ends in its thread, and discard() waits for it. (Not asyncio.shield: its extra
        future costs each upload a turn of the event loop; 0.94 x the uploads a second in 9
        alternating rounds, against 1.00 x this way.)"""
        self._pending = self._writer.submit(func, *args)
        return await asyncio.wrap_future(self._pending)


def _append(file: BinaryIO | None, temp: Path, batch: list[bytes]) -> BinaryIO:
    """The batch written to the temporary file, opened first if this is the first batch."""
    if file is None:
        file = temp.open("wb")
    try:
        file.writelines(batch)
    except BaseException:
        file.close()
        raise
    return file


def _finish(file: BinaryIO, batch: list[bytes], temp: Path, final: Path) -> None:
    with file:
        file.writelines(batch)
    os.replace(temp, final)


def _write_and_rename(temp: Path, final: Path, data: bytes) -> None:
    """Four system calls (open, write, close, rename) rather than Path.write_bytes' eight (it
    adds fstat, ioctl, lseek, and the unlink a finally made after every rename): a writer thread
    takes the GIL back from the event loop after each one, which the loop then waits for."""
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            rest = memoryview(data)
            while rest:
                rest = rest[os.write(fd, rest):]
        finally:
            os.close(fd)
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _close_and_unlink(file: BinaryIO | None, *paths: Path) -> None:
    if file is not None:
        with contextlib.suppress(OSError):
            file.close()
    _unlink_quietly(*paths)


def _unlink_quietly(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


class FilesystemFiles:
    name = "files"
    upload_memory = Upload.BUFFER_BYTES

    def __init__(self, settings: Settings) -> None:
        self.volume = Volume(settings.path(settings.files.root))
        # Two threads write the uploads. Creating or renaming a file locks its folder (raw/): the
        # default pool's six threads doing that at once spun on the lock while file creation was
        # slow (perf: 14 % of the server's CPU under ingest load). One thread was not enough: each
        # of its system calls waits for the event loop to let go of the GIL (binary ingest -28 %).
        self.writer = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="volume-writer")

    async def open(self) -> None:
        await asyncio.to_thread(self.volume.prepare)

    async def ping(self) -> None:
        try:
            await asyncio.to_thread(self.volume.check_writable)
        except OSError as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    def upload(self, media_id: str) -> Upload:
        return Upload(self.volume, media_id, self.writer)

    def partial(self, upload_id: str) -> FilePartial:
        return FilePartial(self.volume.root, upload_id)

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
        """Every file of the item, whatever state its record is in (or if it has none)."""
        try:
            await asyncio.to_thread(self.volume.remove, media_id)
        except OSError as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    async def scan(self) -> AsyncIterator[StoredFile]:
        """Everything stored, a thousand entries per thread hop. A volume that fails meanwhile is
        unavailable, as for every other call: the sweep's round ends and maintenance goes on."""
        entries = self.volume.scan()
        while True:
            try:
                batch = await asyncio.to_thread(lambda: list(itertools.islice(entries, SCAN_BATCH)))
            except OSError as exc:
                raise BackendUnavailable(self.name, str(exc)) from exc
            if not batch:
                return
            for item in batch:
                yield item

    async def remove_stored(self, item: StoredFile) -> None:
        try:
            await asyncio.to_thread(self.volume.remove_stored, item)
        except OSError as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc

    async def close(self) -> None:
        self.writer.shutdown(wait=False)  # what it still has to write, it writes before the process ends

