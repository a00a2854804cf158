"""Fan-out of record changes to the event streams open in one server process.

One task per process reads the store's change stream (Redis pub/sub, or the embedded store's
changes table) and hands each change to every subscription, so a thousand idle streams cost a
thousand small buffers, not a thousand store connections. Each stream also holds a connection,
one open file: the hub keeps at most `limit` open, so the other requests keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterator

from thumbnailify.server.backends import Change

BACKLOG = 256  # changes one stream may fall behind by before it is closed (the client reconnects)


class Subscription:
    """The changes one stream waits for, as the hub hands them over."""

    def __init__(self) -> None:
        self._changes: deque[Change] = deque()
        self._ready = asyncio.Event()
        self.ended = False
        self.fell_behind = False  # ended because its reader did not keep up

    def offer(self, change: Change) -> None:
        if len(self._changes) >= BACKLOG:
            self.ended = self.fell_behind = True  # too slow a reader: better closed than silently behind
        else:
            self._changes.append(change)
        self._ready.set()

    def end(self, fell_behind: bool = False) -> None:
        self.ended = True
        self.fell_behind = self.fell_behind or fell_behind
        self._ready.set()

    async def next(self) -> Change | None:
        while not self._changes:
            if self.ended:
                return None
            self._ready.clear()
            await self._ready.wait()
        return None if self.ended else self._changes.popleft()


class TooManyStreams(Exception):
    """The process has as many streams open as it may."""


class EventHub:
    """Subscriptions to everything, and to one media each (found by id: a change costs the
    streams that want it, not every stream open), at most `limit` at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._everything: set[Subscription] = set()
        self._by_media: dict[str, set[Subscription]] = {}
        self._open = 0

    @contextlib.contextmanager
    def subscribe(self, media_id: str | None = None) -> Iterator[Subscription]:
        if self._open >= self.limit:
            raise TooManyStreams(f"{self._open} event streams open")
        subscription = Subscription()
        group = self._everything if media_id is None else self._by_media.setdefault(media_id, set())
        group.add(subscription)
        self._open += 1
        try:
            yield subscription
        finally:
            self._open -= 1
            group.discard(subscription)
            if media_id is not None and not group:
                self._by_media.pop(media_id, None)

    async def run(self, changes: AsyncIterator[Change]) -> None:
        async for change in changes:
            for subscription in [*self._everything, *self._by_media.get(change[0], ())]:
                subscription.offer(change)

    def close(self) -> None:
        """End every stream (server shutdown): clients reconnect to another process."""
        for subscription in [*self._everything, *(s for group in self._by_media.values() for s in group)]:
            subscription.end()

    @property
    def streams(self) -> int:
        return self._open
