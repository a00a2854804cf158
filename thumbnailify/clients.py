"""Clients of one service: who a key belongs to, what it may take, and the keys themselves.

A key is 32 random bytes (base64url, after a `tfy_` tag that makes a leaked key easy to grep
for). Only its SHA-256 is stored. A slow password hash (bcrypt, scrypt, Argon2) would add nothing
here: it exists to make guessing a *low-entropy* secret expensive, and 256 random bits cannot be
guessed at any speed; while a salted slow hash would cost ~100 ms of CPU on every request and
could not be looked up by value (each stored hash would have to be tried). An unsalted SHA-256 is
a lookup key: one store read finds the client.

Both stores (Redis, SQLite) keep clients in the same flat form, read and written here.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from thumbnailify.lanes import Priority
from thumbnailify.record import DEFAULT_OWNER, Fields, iso, parse_iso

DEFAULT_CLIENT = DEFAULT_OWNER  # the client of `auth.api_key`, of no-auth mode, and of records made before clients
KEY_TAG = "tfy_"
KEY_BYTES = 32
# Lower-case letters, digits, '.', '_' and '-': a name goes into store keys, metric labels and logs.
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
MAX_KEY_LENGTH = 200  # a longer Authorization value is no key of ours, refused before hashing


class QuotaExceeded(Exception):
    """An upload that would take its client past a quota; `quota` names which."""

    def __init__(self, quota: str, limit: int) -> None:
        super().__init__(f"{quota} quota of {limit} reached")
        self.quota = quota
        self.limit = limit


@dataclass(frozen=True)
class Client:
    name: str
    created_at: datetime
    quota_bytes: int = 0  # 0: no quota
    quota_items: int = 0
    rate: float = 0.0  # uploads per second, 0: no limit
    priority: Priority = Priority.NORMAL
    revoked: bool = False

    @property
    def burst(self) -> float:
        """The bucket's size: one second's uploads, and at least one."""
        return max(1.0, self.rate)

    def stored(self) -> Fields:
        return {"name": self.name, "created_at": iso(self.created_at), "quota_bytes": str(self.quota_bytes),
                "quota_items": str(self.quota_items), "rate": repr(self.rate), "priority": self.priority,
                "revoked": "1" if self.revoked else ""}

    @classmethod
    def from_stored(cls, stored: Mapping[str, str]) -> Client:
        return cls(name=stored["name"], created_at=parse_iso(stored["created_at"]),
                   quota_bytes=int(stored.get("quota_bytes") or 0), quota_items=int(stored.get("quota_items") or 0),
                   rate=float(stored.get("rate") or 0), priority=Priority(stored.get("priority") or Priority.NORMAL),
                   revoked=stored.get("revoked") == "1")

    def public(self) -> dict[str, object]:
        """As the admin API and `keys list` show it (never a key or its hash)."""
        return {"name": self.name, "created_at": iso(self.created_at), "quota_bytes": self.quota_bytes or None,
                "quota_items": self.quota_items or None, "rate": self.rate or None, "priority": self.priority,
                "revoked": self.revoked}


@dataclass(frozen=True)
class Usage:
    items: int
    bytes: int


@dataclass(frozen=True)
class Quota:
    """What a client may hold; 0 is no bound."""

    items: int
    bytes: int


@dataclass(frozen=True)
class Grant:
    """One rate-limit decision: whether a token was taken, what is left, and when it is worth
    trying again (seconds; 0 when allowed)."""

    allowed: bool
    remaining: float
    retry_after: float


def new_key() -> str:
    return KEY_TAG + secrets.token_urlsafe(KEY_BYTES)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def valid_name(name: str) -> bool:
    return NAME.fullmatch(name) is not None


def refill(tokens: float, at: float, now: float, rate: float, burst: float) -> tuple[float, float]:
    """A token bucket's tokens at `now`, and the time they are counted from. A clock that went
    backwards (`now` < `at`: another process's clock, or a stepped one) adds nothing and keeps `at`,
    so the bucket neither refills twice nor goes negative. The Redis script does the same."""
    if now <= at:
        return tokens, at
    return min(burst, tokens + (now - at) * rate), now


def take(tokens: float, rate: float) -> Grant:
    """Take one token from a bucket holding `tokens` (already refilled)."""
    if tokens >= 1.0:
        return Grant(True, tokens - 1.0, 0.0)
    return Grant(False, tokens, (1.0 - tokens) / rate)
