"""The worker's backends by name, as config/config.yaml chooses them (see common.loader)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from common.config import Settings

TABLE: dict[str, dict[str, str]] = {
    "store": {
        "redis": "worker.store.redis:RedisStore",
        "sqlite": "worker.store.sqlite:SQLiteStore",
    },
    "queue": {
        "rabbitmq": "worker.queue.rabbitmq:RabbitMQConsumer",
        "sqlite": "worker.queue.sqlite:SQLiteConsumer",
    },
}


class Store(Protocol):
    """Media records, as the worker changes them. Raises on outages (see TRANSIENT in jobs)."""

    def __init__(self, settings: Settings) -> None: ...
    def get(self, media_id: str) -> dict[str, str] | None: ...
    def transition(self, media_id: str, expected_state: str, fields: dict[str, str]) -> bool: ...
    def add_attempt(self, media_id: str) -> int: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Delivery:
    """One job as the queue handed it over; body and headers are untrusted."""

    media_id: str
    media_type: str | None
    redelivered: bool
    tag: object  # whatever the queue needs to ack this delivery


class Consumer(Protocol):
    """The job queue's receiving end: at-least-once, one job at a time."""

    def __init__(self, settings: Settings) -> None: ...
    def next(self, timeout: float) -> Delivery | None: ...
    def ack(self, delivery: Delivery) -> None: ...
    def dead_letter(self, delivery: Delivery, reason: str) -> None: ...
    def close(self) -> None: ...
