"""The upload slots hand the heap back to the system once no upload has been in flight for a while,
and not while one is."""

from __future__ import annotations

import asyncio

from thumbnailify.server.uploads.intake import UploadSlots

IDLE = 0.05


def slots_counting(released: list[int]) -> UploadSlots:
    slots = UploadSlots(4, 1, release=lambda: released.append(1))
    slots.IDLE_SECONDS = IDLE
    return slots


async def settle() -> None:
    """Past the idle time, and the executor's call done."""
    await asyncio.sleep(IDLE * 4)


async def test_the_heap_goes_back_once_the_last_upload_is_done() -> None:
    released: list[int] = []
    slots = slots_counting(released)
    async with slots.slot(1):
        async with slots.slot(1):
            pass
        await settle()
        assert released == []  # one upload still in flight
    await settle()
    assert released == [1]
    await settle()
    assert released == [1]  # once per idle spell


async def test_an_upload_that_starts_meanwhile_puts_it_off() -> None:
    released: list[int] = []
    slots = slots_counting(released)
    async with slots.slot(1):
        pass
    async with slots.slot(1):  # within the idle time of the first
        await settle()
        assert released == []
    await settle()
    assert released == [1]
