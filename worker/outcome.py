"""What became of a delivery, as every kind of worker's runner tells its queue how to settle it."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class Outcome(Enum):
    COMPLETED = "completed"
    ERROR = "error"
    SKIPPED = "skipped"
    DEAD_LETTERED = "dead_lettered"
    RETRY_LATER = "retry_later"


class Verdict(NamedTuple):
    """What became of a delivery, and so how the queue settles it (RETRY_LATER: after retry_in s)."""

    outcome: Outcome
    reason: str
    retry_in: float = 0.0
