"""How many jobs each client has waiting in each RabbitMQ lane, in Redis: what lets a client with
a few jobs go ahead of another's backlog in the same lane (see thumbnailify.lanes.goes_ahead).

One key per lane queue and client, `<prefix>backlog:<lane queue>:<client>`: counted up before a
job is published into the lane (and down again if the publish fails), down when a worker takes
it. The count is a hint for ordering, never for correctness, so it is allowed to drift and kept
bounded instead: a job taken twice (its worker died before the ack) counts down twice and the
count stops at 0; a count left up by a publisher that died between the count and the publish
lasts only while the client keeps the lane busy (the key expires after BACKLOG_TTL_SECONDS
without a job of that client queued or taken), and a key holding no whole number is read as 0.
Either side that cannot reach Redis goes on without the count: the job waits in the lane's
backlog, first in first out, as before there were counts.
"""

from __future__ import annotations

import logging

import redis
import redis.asyncio as aioredis

from thumbnailify.backends.redis.sync import connect
from thumbnailify.settings import Settings

log = logging.getLogger(__name__)

BACKLOG_TTL_SECONDS = 3600  # a count no job of its client touched for this long is forgotten
FAILURES = (redis.RedisError, OSError)

# KEYS[1] the count; ARGV[1] its TTL. Returns the jobs waiting before this one.
ADD_SCRIPT = """
local waiting = math.floor(tonumber(redis.call('GET', KEYS[1])) or 0)
if waiting < 0 then waiting = 0 end
redis.call('SET', KEYS[1], waiting + 1, 'EX', ARGV[1])
return waiting
"""

# KEYS[1] the count; ARGV[1] its TTL. Returns the jobs still waiting; never below 0.
TAKE_SCRIPT = """
local waiting = math.floor(tonumber(redis.call('GET', KEYS[1])) or 0) - 1
if waiting <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], waiting, 'EX', ARGV[1])
return waiting
"""


def backlog_key(prefix: str, queue: str, client: str) -> str:
    return f"{prefix}backlog:{queue}:{client}"


def counted(settings: Settings) -> bool:
    """Whether a RabbitMQ deployment counts backlogs: its store is Redis, and fair share is on."""
    return settings.backends.store == "redis" and settings.worker.fair_share_jobs > 0


class Backlogs:
    """The server's side (asyncio): counted up at publish. Its client comes from the caller (and
    is closed here), so the workers, which import this module, do not load the server's side of
    the Redis backend."""

    def __init__(self, prefix: str, client: aioredis.Redis) -> None:
        self.prefix = prefix
        self.client = client
        self._add = self.client.register_script(ADD_SCRIPT)
        self._take = self.client.register_script(TAKE_SCRIPT)

    async def add(self, queue: str, client: str) -> int | None:
        """Count a job in; the client's jobs that were waiting in the lane before it, None if unknown."""
        try:
            return int(await self._add(keys=[backlog_key(self.prefix, queue, client)], args=[BACKLOG_TTL_SECONDS]))
        except FAILURES as exc:
            log.warning("could not count a job of %s in %s (%s); it waits in the lane's backlog", client, queue, exc)
            return None

    async def take(self, queue: str, client: str) -> None:
        """Count a job out again (its publish failed)."""
        try:
            await self._take(keys=[backlog_key(self.prefix, queue, client)], args=[BACKLOG_TTL_SECONDS])
        except FAILURES as exc:
            log.warning("could not count a job of %s out of %s (%s)", client, queue, exc)

    async def close(self) -> None:
        await self.client.aclose()


class SyncBacklogs:
    """The worker's side (blocking): counted down at take, up at a retry or a replay."""

    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.redis.prefix
        self.client = connect(settings)
        self._add = self.client.register_script(ADD_SCRIPT)
        self._take = self.client.register_script(TAKE_SCRIPT)

    def add(self, queue: str, client: str) -> int | None:
        try:
            return int(self._add(keys=[backlog_key(self.prefix, queue, client)], args=[BACKLOG_TTL_SECONDS]))
        except FAILURES as exc:
            log.warning("could not count a job of %s in %s (%s); it waits in the lane's backlog", client, queue, exc)
            return None

    def take(self, queue: str, client: str) -> None:
        try:
            self._take(keys=[backlog_key(self.prefix, queue, client)], args=[BACKLOG_TTL_SECONDS])
        except FAILURES as exc:
            log.warning("could not count a job of %s out of %s (%s)", client, queue, exc)

    def close(self) -> None:
        self.client.close()
