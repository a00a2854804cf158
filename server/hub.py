"""Fan-out of record changes to the event streams open in one server process.

One task per process reads the store's change stream (Redis pub/sub, or the embedded store's
changes table) and hands each change to every subscription, so a thousand idle streams cost a
thousand small buffers, not a thousand store connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterator

from server.backends import Change

BACKLOG = 256  # changes one stream may fall behind by before it is closed (the client reconnects)


class Subscription:
    """The changes one stream waits for: all of them, or one media's."""

    def __init__(self, media_id: str | None) -> None:
        self.media_id = media_id
        self._changes: deque[Change] = deque()
        self._ready = asyncio.Event()
        self.ended = False

    def offer(self, change: Change) -> None:
        if self.media_id is not None and change[0] != self.media_id:
            return
        if len(self._changes) >= BACKLOG:
            self.ended = True  # too slow a reader: better closed than silently behind
        else:
            self._changes.append(change)
        self._ready.set()

    def end(self) -> None:
        self.ended = True
        self._ready.set()

    async def next(self) -> Change | None:
        while not self._changes:
            if self.ended:
                return None
            self._ready.clear()
            await self._ready.wait()
        return None if self.ended else self._changes.popleft()


class EventHub:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()

    @contextlib.contextmanager
    def subscribe(self, media_id: str | None = None) -> Iterator[Subscription]:
        subscription = Subscription(media_id)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    async def run(self, changes: AsyncIterator[Change]) -> None:
        async for change in changes:
            for subscription in list(self._subscriptions):
                subscription.offer(change)

    def close(self) -> None:
        """End every stream (server shutdown): clients reconnect to another process."""
        for subscription in list(self._subscriptions):
            subscription.end()

    @property
    def streams(self) -> int:
        return len(self._subscriptions)
