"""The upload slots: each upload holds one while it is read, whatever way it ends; and after a burst
the heap goes back to the system once no upload is in flight, off the event loop, while steady
traffic keeps reusing it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from thumbnailify.server.http.errors import ApiError
from thumbnailify.server.uploads.intake import UploadSlots

IDLE = 0.05
BURST = 64 << 20  # what the heap holds free after a burst of uploads
STEADY = 1 << 20  # the few buffers steady traffic reuses


class Heap:
    def __init__(self, freed: int) -> None:
        self.freed = freed
        self.released_in: list[threading.Thread] = []

    def release(self) -> None:
        self.released_in.append(threading.current_thread())
        self.freed = 0


def slots_over(heap: Heap, size: int = 4) -> UploadSlots:
    slots = UploadSlots(size, 1, release=heap.release, freed=lambda: heap.freed)
    slots.IDLE_SECONDS = IDLE
    return slots


async def one_after_another(slots: UploadSlots, count: int, pause: float) -> None:
    """`count` uploads, each ending `pause` seconds before the next begins."""
    for _ in range(count):
        async with slots.slot(1):
            pass
        await asyncio.sleep(pause)


async def eventually(done: Callable[[], bool], patience: float = 5.0) -> None:
    deadline = time.monotonic() + patience
    while not done():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.01)


async def test_after_a_burst_the_heap_goes_back_once_no_upload_is_in_flight() -> None:
    heap = Heap(BURST)
    slots = slots_over(heap)
    async with slots.slot(1):
        async with slots.slot(1):
            pass
        await asyncio.sleep(IDLE * 3)
        assert heap.released_in == []  # one upload still in flight
    await eventually(lambda: len(heap.released_in) == 1)
    assert heap.released_in[0] is not threading.current_thread()  # not on the event loop
    await asyncio.sleep(IDLE * 3)
    assert len(heap.released_in) == 1  # once, until uploads come again


async def test_steady_traffic_keeps_its_heap() -> None:
    heap = Heap(STEADY)
    slots = slots_over(heap)
    await one_after_another(slots, 3, IDLE * 2)
    assert heap.released_in == []


async def test_uploads_that_keep_coming_do_not_put_it_off_for_ever() -> None:
    """One ending every IDLE / 3: a check after each idle spell, not one pushed back by every upload."""
    heap = Heap(BURST)
    slots = slots_over(heap)
    await one_after_another(slots, 30, IDLE / 3)
    await eventually(lambda: len(heap.released_in) >= 1)


async def test_close_calls_off_a_pending_check() -> None:
    heap = Heap(BURST)
    slots = slots_over(heap)
    async with slots.slot(1):
        pass
    slots.close()
    await asyncio.sleep(IDLE * 3)
    assert heap.released_in == []


async def test_a_slot_is_given_back_however_the_upload_ends() -> None:
    heap = Heap(BURST)
    slots = slots_over(heap, size=1)
    async with slots.slot(1):
        with pytest.raises(ApiError) as refused:  # no slot within its patience: 503
            async with slots.slot(0.01):
                pass
        assert refused.value.status == 503
        waiting = asyncio.create_task(slots.slot(10).__aenter__())  # cancelled while it waits
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    with pytest.raises(ValueError):  # the upload failed
        async with slots.slot(1):
            raise ValueError

    async def cut_off() -> None:
        async with slots.slot(1):
            await asyncio.sleep(10)

    reading = asyncio.create_task(cut_off())  # cancelled while it reads
    await asyncio.sleep(0.01)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    async with asyncio.timeout(1):  # the one slot is free again
        async with slots.slot(1):
            pass
    await eventually(lambda: len(heap.released_in) == 1)
