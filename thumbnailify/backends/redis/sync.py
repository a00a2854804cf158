"""Media records in Redis, changed only from the state the worker expects (redis-py, blocking)."""

from __future__ import annotations

from typing import Any

import redis
from redis.commands.core import Script
from redis.sentinel import Sentinel

from thumbnailify.backends.redis.layout import (
    ATTEMPT_SCRIPT,
    SET_FIELDS_SCRIPT,
    TRANSITION_SCRIPT,
    Call,
    NotReplicated,
    client_options,
    content_key,
    master_options,
    media_key,
    pairs,
    text,
    text_hash,
    transition_call,
    wait_command,
)
from thumbnailify.record import Fields, MediaRecord, State
from thumbnailify.settings import Settings


def connect(settings: Settings) -> redis.Redis:
    """redis.url, or the master Sentinel names: a connection that fails or meets a demoted master
    is dropped and the next one asks Sentinel again, so a failover is followed by itself."""
    conf = settings.redis
    if not conf.sentinels.strip():
        return redis.Redis.from_url(conf.url, **client_options(conf))
    sentinel = Sentinel(conf.sentinel_addresses(), socket_timeout=conf.timeout, socket_connect_timeout=conf.timeout)
    client: redis.Redis = sentinel.master_for(conf.sentinel_master, **master_options(conf))  # unannotated
    return client


class RedisStore:
    transient: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

    def __init__(self, settings: Settings) -> None:
        conf = settings.redis
        self.conf = conf
        self.prefix = conf.prefix
        self.client = connect(settings)
        self._transition = self.client.register_script(TRANSITION_SCRIPT)
        self._attempt = self.client.register_script(ATTEMPT_SCRIPT)
        self._set_fields = self.client.register_script(SET_FIELDS_SCRIPT)

    def get(self, media_id: str) -> MediaRecord | None:
        stored = text_hash(self.client.hgetall(media_key(self.prefix, media_id)))
        return MediaRecord.from_stored(stored) if stored else None

    def _replicated(self, script: Script, call: Call) -> Any:  # what the script returns
        """Run a script; with redis.wait_replicas, only done once that many replicas have it (an
        outcome must not be lost in a failover after its job was acked)."""
        if not self.conf.wait_replicas:
            return script(**call)
        with self.client.pipeline(transaction=False) as pipe:
            script(**call, client=pipe)
            pipe.execute_command(*wait_command(self.conf))
            result, replicas = pipe.execute()
        if replicas < self.conf.wait_replicas:
            raise NotReplicated(f"{replicas} of {self.conf.wait_replicas} replicas confirmed the write")
        return result

    def transition(self, media_id: str, expected_state: State, fields: Fields) -> bool:
        return bool(self._replicated(self._transition, transition_call(self.prefix, media_id, expected_state, fields)))

    def add_attempt(self, media_id: str, delivery_token: str) -> int:
        return int(self._replicated(self._attempt, {"keys": [media_key(self.prefix, media_id)],
                                                    "args": [delivery_token]}))

    def set_fields(self, media_id: str, fields: Fields) -> bool:
        return bool(self._replicated(self._set_fields, {"keys": [media_key(self.prefix, media_id)],
                                                        "args": pairs(fields)}))

    def find_content(self, key: str) -> str | None:
        return text(self.client.get(content_key(self.prefix, key)))

    def remember_content(self, key: str, media_id: str) -> None:
        self.client.set(content_key(self.prefix, key), media_id)

    def close(self) -> None:
        self.client.close()
