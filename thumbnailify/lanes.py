"""Priority lanes: the lane a job waits in, and which lane a worker serves next.

A job's lane is its client's priority when it was uploaded: `high` for interactive uploads,
`normal`, `bulk` for imports. Every queue backend keeps one lane apart from the others (a RabbitMQ
queue per lane, a column of the embedded queue, a subject per lane in NATS), and every worker
chooses among the lanes that have work for it with `LanePicker`: a weighted round robin, so each
lane that has work gets a guaranteed share and a job in a lane that was idle goes next.

Within a lane, clients take turns in the embedded queue; RabbitMQ and NATS keep each lane in two
parts, the jobs of clients with a light backlog there (`goes_ahead`) and the rest, and a worker
serves a lane's light part first.
"""

from __future__ import annotations

import enum
from collections.abc import Collection


class Priority(enum.StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    BULK = "bulk"


LANES = tuple(Priority)  # in order of precedence within a round
# Jobs of each lane served per round while every lane has work: high 4/7 of the jobs, normal
# 2/7, bulk 1/7; a lane alone takes everything.
WEIGHTS = {Priority.HIGH: 4, Priority.NORMAL: 2, Priority.BULK: 1}


def lane_of(value: object) -> Priority:
    """A lane as a message or row stored it; anything else (a job from before lanes, a header
    someone else wrote) is `normal`."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return Priority.NORMAL
    try:
        return Priority(value)
    except ValueError:
        return Priority.NORMAL


class LanePicker:
    """Weighted round robin over the lanes that have work.

    In a round each lane may be served up to its weight; the highest lane with credit left and
    work waiting goes first. A round ends when no lane with work has credit left, and every lane's
    credit is then refilled. So while all lanes have work each is served its weight every round
    (at most 7 jobs: a bulk job waits for at most 6 others); a job arriving in a lane that still
    has credit (high, unless it took 4 jobs this round) is served next. Credit is kept while a lane
    is idle, so a lane that empties and refills between picks cannot take more than its share.
    """

    def __init__(self, weights: dict[Priority, int] | None = None) -> None:
        self.weights = dict(weights or WEIGHTS)
        self.credit = dict(self.weights)

    def pick(self, ready: Collection[Priority]) -> Priority | None:
        """The lane to serve now, among those with work (`ready`), charged one job; None if none."""
        lane = self._with_credit(ready)
        if lane is None and any(lane in ready for lane in LANES):
            self.credit = dict(self.weights)
            lane = self._with_credit(ready)
        if lane is not None:
            self.credit[lane] -= 1
        return lane

    def _with_credit(self, ready: Collection[Priority]) -> Priority | None:
        return next((lane for lane in LANES if lane in ready and self.credit[lane] > 0), None)


def goes_ahead(waiting: int | None, light_jobs: int) -> bool:
    """Whether a client's new job goes ahead of its lane's backlog: fewer than `light_jobs` of the
    client's jobs were waiting in the lane (`waiting`; None: not known, so it does not)."""
    return waiting is not None and waiting < light_jobs
