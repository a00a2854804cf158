"""One uploaded file on its way in, the same chain for every upload form.

A body reader (server/uploads/bodies.py) feeds the media's bytes in; each chunk passes the size limit,
the magic-byte check against the declared type (as soon as enough bytes are in), the SHA-256
and the files backend, in one pass. Only `finish` makes the file visible under its final name;
any failure before that leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from thumbnailify import media
from thumbnailify.memory import freed_bytes, release_freed
from thumbnailify.server.http.errors import ApiError
from thumbnailify.units import size_text


class Sink(Protocol):
    """Where the bytes go: a files backend's upload (server/files/), or nowhere."""

    async def write(self, data: bytes) -> None: ...
    async def commit(self) -> None: ...
    async def discard(self) -> None: ...


class Discard:
    """For a replayed request: its content is checked and hashed, but kept nowhere."""

    async def write(self, data: bytes) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def discard(self) -> None:
        return None


@dataclass(frozen=True)
class Received:
    size: int
    sha256: str


def too_large(limit: int) -> str:
    """Why a file over the limit is refused, the same for every way of uploading."""
    return f"the file is too large: the limit is {size_text(limit)}"


class Intake:
    def __init__(self, upload: Sink, declared: media.MediaType, max_bytes: int) -> None:
        self.upload = upload
        self.declared = declared
        self.max_bytes = max_bytes
        self.size = 0
        self.head = b""
        self.hash = hashlib.sha256()

    async def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise ApiError(413, too_large(self.max_bytes))
        if len(self.head) < media.SNIFF_BYTES:
            self.head += data[: media.SNIFF_BYTES - len(self.head)]
            if len(self.head) == media.SNIFF_BYTES:
                self._check_magic()
        self.hash.update(data)
        await self.upload.write(data)

    async def finish(self) -> Received:
        if self.size == 0:
            raise ApiError(400, "the body is empty; send the media")
        self._check_magic()
        await self.upload.commit()
        return Received(self.size, self.hash.hexdigest())

    def _check_magic(self) -> None:
        if not media.looks_like(self.head, self.declared):
            raise ApiError(
                415,
                f"the file is not {self.declared.name}: its first bytes look like {media.describe(self.head)}",
            )


async def take_in(chunks: AsyncGenerator[bytes, None], intake: Intake) -> Received:
    """Run a reader's chunks through the chain; on any failure remove what it wrote."""
    try:
        async for data in chunks:
            await intake.feed(data)
        return await intake.finish()
    except BaseException:
        await intake.upload.discard()
        raise
    finally:
        await chunks.aclose()  # stop reading the body as soon as the chain refuses it


class UploadSlots:
    """Bounds the memory uploads in flight hold in one process: past the bound, an upload waits
    for a slot (within its read timeout) instead of being refused or growing the process.

    Their buffers come from the heap (see LARGE_BLOCK in thumbnailify.server.__main__), which glibc
    keeps for reuse. IDLE_SECONDS after an upload ends, if none is in flight and the heap holds more
    than RELEASE_ABOVE free (a burst's leftovers, not the few buffers steady traffic reuses), that
    is handed back to the system, so a burst does not leave the process at its peak.
    """

    IDLE_SECONDS = 5.0
    RELEASE_ABOVE = 16 << 20

    def __init__(self, memory_bytes: int, per_upload_bytes: int, release: Callable[[], None] = release_freed,
                 freed: Callable[[], int | None] = freed_bytes) -> None:
        self.size = max(1, memory_bytes // per_upload_bytes)
        self._free = asyncio.Semaphore(self.size)
        self._release = release
        self._freed = freed
        self._in_flight = 0
        self._idle_check: asyncio.TimerHandle | None = None

    @property
    def in_flight(self) -> int:
        """Uploads holding a slot now."""
        return self._in_flight

    @contextlib.asynccontextmanager
    async def slot(self, patience: float) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(max(0.0, patience)):
                await self._free.acquire()
        except TimeoutError as exc:
            raise ApiError(503, "too many uploads in progress, try again later", {"Retry-After": "1"}) from exc
        self._in_flight += 1
        try:
            yield
        finally:
            self._free.release()
            self._in_flight -= 1
            if not self._in_flight and self._idle_check is None:  # one check at a time, not put off by each upload
                self._idle_check = asyncio.get_running_loop().call_later(self.IDLE_SECONDS, self._release_if_idle)

    def _release_if_idle(self) -> None:
        self._idle_check = None
        freed = self._freed()
        if self._in_flight or (freed is not None and freed < self.RELEASE_ABOVE):
            return
        # In a worker thread, but not free: while glibc trims an arena, an allocation in it waits
        # (up to ~20 ms with 200 MB free); hence only when idle, and only after a burst.
        with contextlib.suppress(RuntimeError):  # the loop's executor is shutting down: the process ends
            asyncio.get_running_loop().run_in_executor(None, self._release)

    def close(self) -> None:
        if self._idle_check is not None:
            self._idle_check.cancel()
            self._idle_check = None
