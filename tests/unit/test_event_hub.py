"""The event hub: at most `limit` streams, a change reaches the streams that want it, and the
store's change stream is read only while streams are open (a stream opens once it is read)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from thumbnailify.server.backends import Change
from thumbnailify.server.events import hub as hub_module
from thumbnailify.server.events.hub import BACKLOG, EventHub, TooManyStreams


class FakeStore:
    """A change stream that listens when told to, and counts its readers."""

    def __init__(self) -> None:
        self.changes: asyncio.Queue[Change] = asyncio.Queue()
        self.may_listen = asyncio.Event()
        self.may_listen.set()
        self.readers = 0
        self.most_readers = 0
        self.started = 0
        self.stop_seconds = 0.0  # how long a reader takes to end once cancelled (closing a subscription)
        self.heard: Callable[[bool], None] = lambda _now: None  # the last reader's: say a subscription lost

    async def read(self, listening: Callable[[bool], None]) -> AsyncIterator[Change]:
        self.heard = listening
        self.started += 1
        self.readers += 1
        self.most_readers = max(self.most_readers, self.readers)
        try:
            await self.may_listen.wait()
            listening(True)
            while True:
                yield await self.changes.get()
        finally:
            await asyncio.sleep(self.stop_seconds)
            self.readers -= 1


def change(media_id: str) -> Change:
    return Change(media_id, None, "default")  # a delete: the hub never looks inside


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


async def test_the_hub_holds_at_most_its_limit_and_frees_a_place_when_a_stream_ends(store: FakeStore) -> None:
    hub = EventHub(2, store.read)
    async with hub.subscribe(), hub.subscribe("some-id"):
        with pytest.raises(TooManyStreams):
            async with hub.subscribe():
                pass
        assert hub.streams == 2
    assert hub.streams == 0
    async with hub.subscribe() as subscription:
        for index in range(BACKLOG + 1):
            subscription.offer(change(str(index)))
        assert subscription.ended and subscription.fell_behind
    await hub.stop()


async def test_nothing_is_read_while_no_stream_is_open(store: FakeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "LINGER_SECONDS", 0.2)
    hub = EventHub(10, store.read)
    await asyncio.sleep(0.01)
    assert (store.started, hub.listening) == (0, False)
    async with hub.subscribe("a") as wanted, hub.subscribe("b") as other:
        assert store.readers == 1 and hub.listening
        await store.changes.put(change("a"))
        assert (await asyncio.wait_for(wanted.next(), 1))[0] == "a"
        assert not other._changes  # a change costs only the streams that want it
    assert store.readers == 1  # kept a while for a reconnecting client
    for _ in range(100):
        if not store.readers:
            break
        await asyncio.sleep(0.02)
    assert (store.readers, hub.listening) == (0, False)


async def test_a_stream_opens_once_the_reader_listens(store: FakeStore) -> None:
    store.may_listen.clear()
    hub = EventHub(10, store.read)
    opening = asyncio.ensure_future(hub.subscribe("a").__aenter__())
    await asyncio.sleep(0.05)
    assert not opening.done()  # a record read now could miss a change made before the reader listens
    store.may_listen.set()
    await asyncio.wait_for(opening, 1)
    await hub.stop()


async def test_a_store_that_never_listens_delays_a_stream_only_its_patience(
        store: FakeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "LISTEN_PATIENCE", 0.05)
    store.may_listen.clear()
    hub = EventHub(10, store.read)
    async with hub.subscribe("a"):
        assert store.readers == 1
    await hub.stop()
    assert store.readers == 0


async def test_one_reader_at_a_time_when_a_stream_opens_as_the_last_one_stops(
        store: FakeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "LINGER_SECONDS", 0.0)
    store.stop_seconds = 0.01
    hub = EventHub(10, store.read)
    for _ in range(10):
        async with hub.subscribe("a"):
            pass
        await asyncio.sleep(0.005)  # the reader is being stopped (it takes 0.01 s)
        async with hub.subscribe("a") as subscription:
            await store.changes.put(change("a"))
            assert (await asyncio.wait_for(subscription.next(), 1))[0] == "a"
    await hub.stop()
    assert store.most_readers == 1 and store.readers == 0


async def test_a_reader_that_ends_is_started_again_by_the_next_stream(store: FakeStore) -> None:
    hub = EventHub(10, store.read)
    async with hub.subscribe("a"):
        assert hub._reader is not None
        hub._reader.cancel()  # as a reader ended by a defect would be
        await asyncio.sleep(0.01)
        assert not hub.listening
    async with hub.subscribe("b") as subscription:
        assert hub.listening
        await store.changes.put(change("b"))
        assert (await asyncio.wait_for(subscription.next(), 1))[0] == "b"
    await hub.stop()
    assert store.started == 2


async def test_a_stream_opened_while_the_stores_subscription_is_lost_waits_for_it(store: FakeStore) -> None:
    hub = EventHub(10, store.read)
    async with hub.subscribe("a"):
        store.heard(False)  # an outage: the store subscribes again
        opening = asyncio.ensure_future(hub.subscribe("b").__aenter__())
        await asyncio.sleep(0.05)
        assert not opening.done()
        store.heard(True)
        await asyncio.wait_for(opening, 1)
    await hub.stop()
