"""Fan-out of record changes to the event streams open in one server process.

One task per process reads the store's change stream (Redis pub/sub, NATS, or the embedded store's
changes table) and hands each change to every subscription, so a thousand idle streams cost a
thousand small buffers, not a thousand store connections. Each stream also holds a connection,
one open file: the hub keeps at most `limit` open, so the other requests keep theirs.

The reader runs only while streams are open (and LINGER_SECONDS after the last one ends, for the
clients that reconnect): without it a busy server received and parsed every change of every
record for nobody (6 % of its event loop's time taking uploads). A stream opens once the reader
listens, so a change made after its subscription is never missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable

from thumbnailify.server.backends import Change
from thumbnailify.server.tasks import cancel_until_done

log = logging.getLogger(__name__)

BACKLOG = 256  # changes one stream may fall behind by before it is closed (the client reconnects)
LINGER_SECONDS = 60.0  # the reader outlives the last stream this long
LISTEN_PATIENCE = 5.0  # a stream waits this long for the reader to listen (the store may be out)

# The store's change stream: every change from the moment it calls its argument with True on (False:
# its subscription was lost, True again once it is back).
Changes = Callable[[Callable[[bool], None]], AsyncIterator[Change]]


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

    def __init__(self, limit: int, changes: Changes) -> None:
        self.limit = limit
        self._changes = changes
        self._everything: set[Subscription] = set()
        self._by_media: dict[str, set[Subscription]] = {}
        self._open = 0
        self._reader: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._stopping: asyncio.Task[None] | None = None
        self._stop_timer: asyncio.TimerHandle | None = None

    @contextlib.asynccontextmanager
    async def subscribe(self, media_id: str | None = None) -> AsyncIterator[Subscription]:
        if self._open >= self.limit:
            raise TooManyStreams(f"{self._open} event streams open")
        subscription = Subscription()
        group = self._everything if media_id is None else self._by_media.setdefault(media_id, set())
        group.add(subscription)
        self._open += 1
        try:
            await self._listen()
            yield subscription
        finally:
            self._open -= 1
            group.discard(subscription)
            if media_id is not None and not group:
                self._by_media.pop(media_id, None)
            if not self._open:
                self._stop_timer = asyncio.get_running_loop().call_later(LINGER_SECONDS, self._stop_reader)

    async def _listen(self) -> None:
        """Start the reader if it is not running, and wait until it listens."""
        self._cancel_stop_timer()
        if self._stopping is not None:  # one reader at a time: each change reaches a stream once
            await asyncio.wait({self._stopping})
            self._stopping = None
        if self._reader is None or self._reader.done():
            self._listening = asyncio.Event()
            self._reader = asyncio.create_task(self._read(self._listening))
        try:
            async with asyncio.timeout(LISTEN_PATIENCE):
                await self._listening.wait()
        except TimeoutError:
            pass  # the store is out: the stream opens, and its changes come once the reader gets through

    async def _read(self, listening: asyncio.Event) -> None:
        def heard(now: bool) -> None:  # a stream opened while the store's subscription is lost waits for it
            if now:
                listening.set()
            else:
                listening.clear()

        try:
            async for change in self._changes(heard):
                for subscription in [*self._everything, *self._by_media.get(change[0], ())]:
                    subscription.offer(change)
        except Exception:  # the stores' readers survive outages themselves: this is a defect
            log.exception("the change reader ended; the next stream starts another")

    def _cancel_stop_timer(self) -> None:
        """Call off the reader's stop that the last stream's end set for later."""
        if self._stop_timer is not None:
            self._stop_timer.cancel()
            self._stop_timer = None

    def _stop_reader(self) -> None:
        self._stop_timer = None
        if not self._open and self._reader is not None and self._stopping is None:
            self._stopping = asyncio.create_task(cancel_until_done(self._reader))
            self._reader = None

    def close(self) -> None:
        """End every stream (server shutdown): clients reconnect to another process."""
        for subscription in [*self._everything, *(s for group in self._by_media.values() for s in group)]:
            subscription.end()

    async def stop(self) -> None:
        """End the reader (server shutdown, once the streams ended)."""
        self._cancel_stop_timer()
        for task in (self._stopping, self._reader):
            if task is not None:
                await cancel_until_done(task)
        self._stopping = self._reader = None

    @property
    def listening(self) -> bool:
        """Whether the reader runs (streams are open, or were within LINGER_SECONDS)."""
        return self._reader is not None and not self._reader.done()

    @property
    def streams(self) -> int:
        return self._open
