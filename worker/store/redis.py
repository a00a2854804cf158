"""Media records in Redis, changed only from the state the worker expects (redis-py, blocking)."""

from __future__ import annotations

import redis

from common.config import Settings
from common.keys import (
    ATTEMPT_SCRIPT,
    SET_FIELDS_SCRIPT,
    TRANSITION_SCRIPT,
    client_options,
    content_key,
    media_key,
    pairs,
    transition_call,
)


class RedisStore:
    def __init__(self, settings: Settings) -> None:
        conf = settings.redis
        self.prefix = conf.prefix
        self.client = redis.Redis.from_url(conf.url, **client_options(conf))
        self._transition = self.client.register_script(TRANSITION_SCRIPT)
        self._attempt = self.client.register_script(ATTEMPT_SCRIPT)
        self._set_fields = self.client.register_script(SET_FIELDS_SCRIPT)

    def get(self, media_id: str) -> dict[str, str] | None:
        return self.client.hgetall(media_key(self.prefix, media_id)) or None

    def transition(self, media_id: str, expected_state: str, fields: dict[str, str]) -> bool:
        return bool(self._transition(**transition_call(self.prefix, media_id, expected_state, fields)))

    def add_attempt(self, media_id: str, delivery_token: str) -> int:
        return int(self._attempt(keys=[media_key(self.prefix, media_id)], args=[delivery_token]))

    def set_fields(self, media_id: str, fields: dict[str, str]) -> bool:
        return bool(self._set_fields(keys=[media_key(self.prefix, media_id)], args=pairs(fields)))

    def find_content(self, key: str) -> str | None:
        return self.client.get(content_key(self.prefix, key))

    def remember_content(self, key: str, media_id: str) -> None:
        self.client.set(content_key(self.prefix, key), media_id)

    def close(self) -> None:
        self.client.close()
