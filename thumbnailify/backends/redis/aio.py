"""Media records in Redis hashes, listed through a sorted set by creation time (redis.asyncio)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from thumbnailify.backends.redis.clients import (
    ADD_CLIENT_SCRIPT,
    REVOKE_CLIENT_SCRIPT,
    ROTATE_KEY_SCRIPT,
    TAKE_TOKEN_SCRIPT,
    bucket_key,
    client_key,
    client_keys_key,
    clients_key,
    key_key,
)
from thumbnailify.backends.redis.layout import (
    ACQUIRE_LOCK_SCRIPT,
    CREATE_SCRIPT,
    DELETE_SCRIPT,
    RELEASE_LOCK_SCRIPT,
    TRANSITION_SCRIPT,
    Call,
    NotReplicated,
    client_options,
    create_call,
    created,
    delete_call,
    events_channel,
    index_key,
    lock_key,
    master_options,
    media_key,
    owner_index_key,
    pairs,
    phash_key,
    request_key,
    scored,
    text,
    text_hash,
    texts,
    transition_call,
    usage_key,
    wait_command,
)
from thumbnailify.backends.redis.uploads import (
    CREATE_UPLOAD_SCRIPT,
    DELETE_UPLOAD_SCRIPT,
    UPDATE_UPLOAD_SCRIPT,
    create_upload_call,
    delete_upload_call,
    refused_by,
    update_upload_call,
    upload_key,
    uploads_key,
)
from thumbnailify.clients import Client, Grant, Quota, Usage, take
from thumbnailify.record import DEFAULT_OWNER, Fields, MediaRecord, State, readable
from thumbnailify.server.backends import Change, Page
from thumbnailify.server.http.errors import BackendUnavailable
from thumbnailify.settings import Settings
from thumbnailify.upload_bounds import Full, UploadBounds

log = logging.getLogger(__name__)

P = ParamSpec("P")
RESUBSCRIBE_SECONDS = 1.0
R = TypeVar("R")


def _unavailable_on_error(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except RedisError as exc:
            raise BackendUnavailable("redis", str(exc) or type(exc).__name__) from exc

    return wrapper


class BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Connections to the master Sentinel names (found again after a failover: a connection that
    fails or meets a demoted master is dropped, the next one asks Sentinel), waiting for a free one
    past max_connections like the plain pool does."""


def connection_pool(settings: Settings) -> aioredis.ConnectionPool:
    conf = settings.redis
    # A burst of requests past max_connections waits for a free connection (up to pool_timeout)
    # instead of failing: a burst is not an outage.
    if not conf.sentinels.strip():
        return aioredis.BlockingConnectionPool.from_url(
            conf.url, max_connections=conf.max_connections, timeout=conf.pool_timeout, **client_options(conf)
        )
    sentinel = Sentinel(conf.sentinel_addresses(), socket_timeout=conf.timeout, socket_connect_timeout=conf.timeout)
    return BlockingSentinelPool(conf.sentinel_master, sentinel, max_connections=conf.max_connections,
                                timeout=conf.pool_timeout, **master_options(conf))


class RedisStore:
    name = "redis"

    def __init__(self, settings: Settings) -> None:
        conf = settings.redis
        self.conf = conf
        self.prefix = conf.prefix
        self.index = index_key(conf.prefix)
        self.client = aioredis.Redis.from_pool(connection_pool(settings))
        self._create = self.client.register_script(CREATE_SCRIPT)
        self._transition = self.client.register_script(TRANSITION_SCRIPT)
        self._delete = self.client.register_script(DELETE_SCRIPT)
        self._acquire_lock = self.client.register_script(ACQUIRE_LOCK_SCRIPT)
        self._release_lock = self.client.register_script(RELEASE_LOCK_SCRIPT)
        self._create_upload = self.client.register_script(CREATE_UPLOAD_SCRIPT)
        self._update_upload = self.client.register_script(UPDATE_UPLOAD_SCRIPT)
        self._delete_upload = self.client.register_script(DELETE_UPLOAD_SCRIPT)
        self._add_client = self.client.register_script(ADD_CLIENT_SCRIPT)
        self._revoke_client = self.client.register_script(REVOKE_CLIENT_SCRIPT)
        self._rotate_key = self.client.register_script(ROTATE_KEY_SCRIPT)
        self._take_token = self.client.register_script(TAKE_TOKEN_SCRIPT)

    async def open(self) -> None:
        return None

    @_unavailable_on_error
    async def ping(self) -> None:
        await self.client.ping()

    async def _replicated(self, script: AsyncScript, call: Call) -> object:
        """Run a script; with redis.wait_replicas, only done once that many replicas have it."""
        if not self.conf.wait_replicas:
            return await script(**call)
        async with self.client.pipeline(transaction=False) as pipe:
            await script(**call, client=pipe)
            pipe.execute_command(*wait_command(self.conf))
            result, replicas = await pipe.execute()
        if replicas < self.conf.wait_replicas:
            raise NotReplicated(f"{replicas} of {self.conf.wait_replicas} replicas confirmed the write")
        return result

    @_unavailable_on_error
    async def create(self, media_id: str, record: MediaRecord, score: float, quota: Quota | None = None) -> None:
        created(await self._replicated(self._create, create_call(self.prefix, media_id, record, score, quota)), quota)

    @_unavailable_on_error
    async def get(self, media_id: str) -> MediaRecord | None:
        stored = text_hash(await self.client.hgetall(media_key(self.prefix, media_id)))
        return MediaRecord.from_stored(stored) if stored else None

    @_unavailable_on_error
    async def transition(self, media_id: str, expected_state: State, fields: Fields) -> bool:
        return bool(await self._replicated(self._transition,
                                           transition_call(self.prefix, media_id, expected_state, fields)))

    @_unavailable_on_error
    async def delete(self, media_id: str) -> bool:
        return bool(await self._replicated(self._delete, delete_call(self.prefix, media_id)))

    @_unavailable_on_error
    async def page(self, limit: int, after: tuple[float, str] | None, state: State | None,
                   owner: str | None = None) -> Page:
        """Newest first after the (score, id) cursor; Redis orders equal scores by id, as we do.

        A state, and a client, has an index of its own, so a filtered page reads only matching
        entries; a record that changed state or was deleted between the index read and its own is
        skipped, and so is one that cannot be read (logged). The default client's list walks the
        whole index (or its state's): records made before clients are in no client's index.
        """
        found: Page = []
        if owner is not None and owner != DEFAULT_OWNER:
            index = owner_index_key(self.prefix, owner)
        else:
            index = self.index if state is None else index_key(self.prefix, state)
        high: float | str = "+inf" if after is None else after[0]
        offset = 0
        while len(found) < limit:
            members = scored(await self.client.zrevrangebyscore(
                index, high, "-inf", start=offset, num=limit, withscores=True
            ))
            if not members:
                break
            offset += len(members)
            fresh = [(m, s) for m, s in members if after is None or (s, m) < after]
            async with self.client.pipeline(transaction=False) as pipe:
                for media_id, _ in fresh:
                    pipe.hgetall(media_key(self.prefix, media_id))
                records: list[dict[str, str]] = await pipe.execute()
            for (media_id, score), stored in zip(fresh, records, strict=True):
                record = readable(media_id, stored) if stored else None
                if record is not None and (state is None or record.state == state) and (
                        owner is None or record.client == owner):
                    found.append((media_id, score, record))
        return found[:limit]

    @_unavailable_on_error
    async def perceptual_hashes(self) -> str:
        return text(await self.client.get(phash_key(self.prefix))) or ""

    @_unavailable_on_error
    async def created_before(self, score: float, limit: int) -> list[str]:
        return texts(await self.client.zrangebyscore(self.index, "-inf", f"({score}", start=0, num=limit))

    @_unavailable_on_error
    async def acquire_lock(self, name: str, owner: str, seconds: float) -> bool:
        return bool(await self._acquire_lock(keys=[lock_key(self.prefix, name)], args=[owner, int(seconds * 1000)]))

    @_unavailable_on_error
    async def release_lock(self, name: str, owner: str) -> None:
        await self._release_lock(keys=[lock_key(self.prefix, name)], args=[owner])

    @_unavailable_on_error
    async def reserve_request(self, key: str, marker: str, seconds: float) -> str | None:
        name = request_key(self.prefix, key)
        while True:
            if await self.client.set(name, marker, nx=True, px=int(seconds * 1000)):
                return None
            found = text(await self.client.get(name))
            if found is not None:  # else it expired between the two calls: try again
                return found

    @_unavailable_on_error
    async def save_request(self, key: str, value: str, seconds: float) -> None:
        await self.client.set(request_key(self.prefix, key), value, px=int(seconds * 1000))

    @_unavailable_on_error
    async def release_request(self, key: str, marker: str) -> None:
        await self._release_lock(keys=[request_key(self.prefix, key)], args=[marker])  # delete if it holds marker

    @_unavailable_on_error
    async def create_upload(self, upload_id: str, fields: dict[str, str], expires: float,
                            bounds: UploadBounds) -> Full | None:
        call = create_upload_call(self.prefix, upload_id, fields, expires, bounds)
        return refused_by(await self._replicated(self._create_upload, call))

    @_unavailable_on_error
    async def get_upload(self, upload_id: str) -> dict[str, str] | None:
        return text_hash(await self.client.hgetall(upload_key(self.prefix, upload_id))) or None

    @_unavailable_on_error
    async def update_upload(self, upload_id: str, expected_offset: int, fields: dict[str, str]) -> bool:
        call = update_upload_call(self.prefix, upload_id, expected_offset, fields)
        return bool(await self._replicated(self._update_upload, call))

    @_unavailable_on_error
    async def delete_upload(self, upload_id: str) -> bool:
        return bool(await self._replicated(self._delete_upload, delete_upload_call(self.prefix, upload_id)))

    @_unavailable_on_error
    async def expired_uploads(self, before: float, limit: int) -> list[str]:
        return texts(await self.client.zrangebyscore(uploads_key(self.prefix), "-inf", f"({before}",
                                                     start=0, num=limit))

    @_unavailable_on_error
    async def add_client(self, client: Client, key_hash: str) -> bool:
        keys = [client_key(self.prefix, client.name), client_keys_key(self.prefix, client.name),
                clients_key(self.prefix), key_key(self.prefix, key_hash)]
        call: Call = {"keys": keys, "args": [client.name, key_hash, *pairs(client.stored())]}
        return bool(await self._replicated(self._add_client, call))

    @_unavailable_on_error
    async def client_by_key(self, key_hash: str) -> Client | None:
        name = text(await self.client.get(key_key(self.prefix, key_hash)))
        client = await self.get_client(name) if name else None
        return None if client is None or client.revoked else client

    @_unavailable_on_error
    async def get_client(self, name: str) -> Client | None:
        stored = text_hash(await self.client.hgetall(client_key(self.prefix, name)))
        return Client.from_stored(stored) if stored else None

    @_unavailable_on_error
    async def list_clients(self) -> list[Client]:
        names = sorted(texts(await self.client.smembers(clients_key(self.prefix))))
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(client_key(self.prefix, name))
            found: list[dict[str, str]] = await pipe.execute()
        return [Client.from_stored(stored) for stored in found if stored]

    @_unavailable_on_error
    async def revoke_client(self, name: str) -> bool:
        call: Call = {"keys": [client_key(self.prefix, name), client_keys_key(self.prefix, name)],
                      "args": [self.prefix]}
        return bool(await self._replicated(self._revoke_client, call))

    @_unavailable_on_error
    async def rotate_key(self, name: str, key_hash: str, grace_seconds: float) -> bool:
        keys = [client_key(self.prefix, name), client_keys_key(self.prefix, name), key_key(self.prefix, key_hash)]
        call: Call = {"keys": keys, "args": [self.prefix, name, key_hash, int(grace_seconds * 1000)]}
        return bool(await self._replicated(self._rotate_key, call))

    @_unavailable_on_error
    async def usage(self, name: str) -> Usage:
        held = text_hash(await self.client.hgetall(usage_key(self.prefix, name)))
        return Usage(int(held.get("items") or 0), int(held.get("bytes") or 0))

    @_unavailable_on_error
    async def take_token(self, name: str, rate: float, burst: float) -> Grant:
        taken, tokens = await self._take_token(keys=[bucket_key(self.prefix, name)], args=[rate, burst])
        left = float(tokens)
        return take(left + 1.0 if taken else left, rate)

    async def changes(self, listening: Callable[[bool], None]) -> AsyncIterator[Change]:
        """From the events channel the scripts publish on; a lost connection is re-subscribed.
        Listening once Redis confirmed the subscription (sending it is not enough: a read on
        another connection may reach Redis first)."""
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(events_channel(self.prefix))
                    while True:
                        message = await pubsub.get_message(timeout=10.0)
                        if message is None:
                            continue
                        if message["type"] == "subscribe":
                            listening(True)
                        elif message["type"] == "message":
                            change = json.loads(message["data"])
                            if change.get("deleted"):
                                yield Change(change["media_id"], None, change.get("owner") or DEFAULT_OWNER)
                            elif (record := readable(change["media_id"], change["record"])) is not None:
                                yield Change(change["media_id"], record, record.client)
            except Exception as exc:  # an outage, a failover (Sentinel names the master again), bad data
                listening(False)
                log.warning("events subscription lost, subscribing again: %r", exc)
                await asyncio.sleep(RESUBSCRIBE_SECONDS)

    async def close(self) -> None:
        await self.client.aclose()
