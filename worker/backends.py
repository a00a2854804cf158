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
    # by the queue's name: where that queue keeps its dead letters, for `python -m worker.replay`
    "dead_letters": {
        "rabbitmq": "worker.queue.rabbitmq:RabbitMQDeadLetters",
        "sqlite": "worker.queue.sqlite:SQLiteDeadLetters",
    },
}


class Store(Protocol):
    """Media records, as the worker changes them. Raises on outages (see TRANSIENT in jobs)."""

    def __init__(self, settings: Settings) -> None: ...
    def get(self, media_id: str) -> dict[str, str] | None: ...
    def transition(self, media_id: str, expected_state: str, fields: dict[str, str]) -> bool: ...
    def add_attempt(self, media_id: str, delivery_token: str) -> int: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Delivery:
    """One job as the queue handed it over; body and headers are untrusted."""

    media_id: str
    media_type: str | None
    redelivered: bool
    tag: object  # whatever the queue needs to ack this delivery
    token: str  # names this one delivery, so a repeated store call counts its attempt only once


class Consumer(Protocol):
    """The job queue's receiving end: at-least-once, one job at a time."""

    def __init__(self, settings: Settings) -> None: ...
    def next(self, timeout: float) -> Delivery | None: ...
    def ack(self, delivery: Delivery) -> None: ...
    def dead_letter(self, delivery: Delivery, reason: str) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class DeadLetter:
    """A job that met an outage on every retry, as the queue kept it for an operator."""

    media_id: str
    media_type: str
    reason: str
    tag: object


class DeadLetters(Protocol):
    """The dead letters present when opened, taken one at a time; each is then requeued or dropped."""

    def __init__(self, settings: Settings) -> None: ...
    def take(self) -> DeadLetter | None: ...
    def requeue(self, letter: DeadLetter) -> None: ...
    def drop(self, letter: DeadLetter) -> None: ...
    def close(self) -> None: ...
