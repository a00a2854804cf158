"""Request bodies as the upload chain takes them: one reader per upload form, each bounded.

Every reader yields the media's bytes chunk by chunk as they arrive, so nothing holds a whole
body. The raw bytes on the wire are capped (base64 may carry line breaks, not gigabytes of
them) and so is the time: a client that stalls longer than the idle timeout, or whose whole body
takes longer than the total one, is cut off.
"""

from __future__ import annotations

import asyncio
import binascii
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

import pybase64
from aiohttp import StreamReader

from thumbnailify.units import size_text

T = TypeVar("T")

# Line breaks (as `base64` CLI output has) and stray blanks are tolerated, nothing else.
WHITESPACE = b" \t\r\n"


class InvalidBase64(ValueError):
    pass


class BodyTooLarge(ValueError):
    pass


class BodyTimeout(TimeoutError):
    pass


@dataclass(frozen=True)
class ReadLimits:
    max_bytes: int  # raw bytes the body may have on the wire
    idle_timeout: float  # seconds between two chunks
    deadline: float  # loop time by which the whole body must be in

    async def wait(self, read: Awaitable[T]) -> T:
        """One read of the body, cut off at the idle timeout or the deadline."""
        remaining = self.deadline - asyncio.get_running_loop().time()
        try:
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(min(self.idle_timeout, remaining)):
                return await read
        except TimeoutError as exc:
            if asyncio.iscoroutine(read):
                read.close()
            raise BodyTimeout("the upload stalled or took too long; send it again") from exc


async def raw_chunks(stream: StreamReader, limits: ReadLimits) -> AsyncGenerator[bytes, None]:
    """The body as it arrives, within the byte cap and both timeouts."""
    received = 0
    while True:
        chunk = await limits.wait(stream.readany())
        if not chunk:
            return
        received += len(chunk)
        if received > limits.max_bytes:
            raise BodyTooLarge(f"the upload is too large: its body is over {size_text(limits.max_bytes)}")
        yield chunk


def base64_wire_bytes(decoded_limit: int) -> int:
    """The most base64 text a body of decoded_limit bytes needs, with room for line breaks."""
    encoded = (decoded_limit + 2) // 3 * 4
    return encoded + encoded // 16 + 4096


async def base64_chunks(stream: StreamReader, limits: ReadLimits) -> AsyncGenerator[bytes, None]:
    """The decoded media of a base64 body (standard alphabet, padding required)."""
    decoder = Base64Decoder()
    async for chunk in raw_chunks(stream, limits):
        decoded = decoder.feed(chunk)
        if decoded:
            yield decoded
    decoder.finish()


class Base64Decoder:
    """Feed body chunks in, get decoded bytes out; strict alphabet and padding."""

    def __init__(self) -> None:
        self._pending = b""
        self._padded = False

    def feed(self, chunk: bytes) -> bytes:
        if any(blank in chunk for blank in (b"\n", b"\r", b" ", b"\t")):  # a scan is cheaper than a copy
            chunk = chunk.translate(None, WHITESPACE)
        data = self._pending + chunk if self._pending else chunk
        if not data:
            return b""
        if self._padded:
            raise InvalidBase64("data after the final '=' padding")
        whole = len(data) - len(data) % 4
        self._pending = data[whole:]
        block = data[:whole]
        if not block:
            return b""
        try:
            # pybase64 (SIMD) validates alphabet and padding ~40x faster than binascii's strict mode.
            decoded = pybase64.b64decode(block, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidBase64(f"{exc} (standard alphabet A-Z a-z 0-9 + / with '=' padding)") from exc
        self._padded = block.endswith(b"=")
        return decoded

    def finish(self) -> None:
        if self._pending:
            raise InvalidBase64("length is not a multiple of 4 (is the '=' padding missing?)")
