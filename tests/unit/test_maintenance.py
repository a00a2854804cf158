"""The maintenance lease against the real embedded store: a server stopped while it asks for the
lease must not leave it held (the next process started would skip its recovery pass)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import SimpleNamespace

from thumbnailify.backends.sqlite.aio_store import SQLiteStore
from thumbnailify.server.background.maintenance import LEASE, maintain
from thumbnailify.server.tasks import cancel_until_done
from thumbnailify.settings import load_settings


async def stop_while_asking(tmp_path: Path) -> bool:
    """Cancel maintain() at its first wait (the lease's write in the store's thread); can another
    process take the lease right after?"""
    settings = load_settings({"THUMBNAILIFY_SQLITE_PATH": str(tmp_path / "state.db")})
    store = SQLiteStore(settings)
    await store.open()
    try:
        task = asyncio.create_task(maintain(SimpleNamespace(store=store, settings=settings)))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # maintain() now waits for the thread that writes the lease
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return await store.acquire_lock(LEASE, "the next process", 60)
    finally:
        await store.close()


def test_a_server_stopped_while_taking_the_lease_gives_it_back(tmp_path: Path) -> None:
    for attempt in range(5):
        assert asyncio.run(stop_while_asking(tmp_path / str(attempt)))


async def test_a_task_that_swallows_a_cancellation_still_ends_at_stop() -> None:
    """What a client library does when one cancellation is lost (taken for an outage the upkeep loop
    waits out): the server's stop cancels again instead of waiting for good."""
    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)
        await asyncio.sleep(60)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_until_done(task), 5)
    assert task.cancelled()


class FailsOnce(SQLiteStore):
    """The embedded store, whose first lease request fails the way no outage does (a defect)."""

    requests = 0

    async def acquire_lock(self, name: str, owner: str, seconds: float) -> bool:
        self.requests += 1
        if self.requests == 1:
            raise ValueError("a surprise")
        return await super().acquire_lock(name, owner, seconds)


async def test_a_round_that_fails_unexpectedly_does_not_end_the_later_ones(tmp_path: Path) -> None:
    settings = load_settings({"THUMBNAILIFY_SQLITE_PATH": str(tmp_path / "state.db"),
                              "THUMBNAILIFY_RETENTION_SWEEP_SECONDS": "0.05"})
    store = FailsOnce(settings)
    await store.open()
    task = asyncio.create_task(maintain(SimpleNamespace(store=store, settings=settings)))  # type: ignore[arg-type]
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if store.requests >= 3:
                break
        assert store.requests >= 3 and not task.done()
    finally:
        await cancel_until_done(task)
        await store.close()
