"""Queue names by kind of job: each kind of worker consumes a queue of its own.

Photos go to `<queue>` (the seed's `task_queue`), videos to `<queue>.video`, so a long video never
holds up photos, and completion webhooks to `<queue>.webhooks`, delivered by workers that never
touch a thumbnail. Each has its dead letters in `<name>.dead`.

A media kind's queue is its `normal` lane (thumbnailify.lanes); `<name>.high` and `<name>.bulk`
beside it hold the other lanes, with the same arguments and the same dead queue. Webhooks have one.
Each media lane's queue has `<lane's queue>.light` beside it, for the jobs of clients with few jobs
waiting in the lane (thumbnailify.lanes.goes_ahead): a worker takes from it first.
"""

from __future__ import annotations

from collections.abc import Collection

from thumbnailify.lanes import LANES, Priority
from thumbnailify.settings import Settings

KINDS = ("image", "video", "webhook")
MEDIA_KINDS = ("image", "video")  # the kinds the server queues jobs for
_SUFFIX = {"image": "", "video": ".video", "webhook": ".webhooks"}


def queue_name(base: str, kind: str) -> str:
    return base + _SUFFIX[kind]


def lanes(kind: str) -> tuple[Priority, ...]:
    """The lanes a kind's jobs wait in: every lane for media, one (normal) for webhooks."""
    return LANES if kind in MEDIA_KINDS else (Priority.NORMAL,)


def lane_queue(queue: str, lane: Priority) -> str:
    """A lane's RabbitMQ queue: the kind's own queue for normal (as before there were lanes), else
    `<queue>.<lane>`."""
    return queue if lane == Priority.NORMAL else f"{queue}.{lane}"


def light_queue(queue: str) -> str:
    """Where a lane's jobs wait whose client had few jobs waiting in it: `<lane's queue>.light`."""
    return f"{queue}.light"


def lane_queues(queue: str, kind: str) -> dict[Priority, tuple[str, ...]]:
    """Each lane's RabbitMQ queues for a kind, the one a worker takes from first first: a media
    lane's light part and its backlog, a webhook's one queue."""
    if kind not in MEDIA_KINDS:
        return {Priority.NORMAL: (queue,)}
    return {lane: (light_queue(lane_queue(queue, lane)), lane_queue(queue, lane)) for lane in LANES}


def prefetch(settings: Settings, kind: str) -> int:
    """How many deliveries a worker holds unacked at once: a webhook worker one per attempt it
    makes at once (webhooks.concurrency), the others worker.prefetch."""
    if kind == "webhook":
        return max(settings.worker.prefetch, settings.webhooks.concurrency)
    return settings.worker.prefetch


def media_kind(media_type: str) -> str:
    """The kind of worker that makes a media type's thumbnail: its main type (image, video)."""
    return media_type.partition("/")[0]


def dead_letter_queue(queue: str) -> str:
    """Where jobs go that failed on every retry, for an operator to inspect or replay."""
    return f"{queue}.dead"


def work_queue_arguments(settings: Settings, queue: str) -> dict[str, object]:
    """How every work queue is declared, by the server and the workers alike: RabbitMQ refuses a
    declaration whose arguments differ from those the queue was created with. `queue` is the
    kind's queue: its lanes' queues are declared with its arguments (one dead queue for all).

    A quorum queue (replicated, durable, never exclusive) counts deliveries itself and, past
    worker.max_attempts, dead-letters the job to `<queue>.dead`, at least once: the message leaves
    the queue only when the dead queue has it (which needs reject-publish overflow). A classic
    queue cannot become a quorum one: switching means a new queue name (see docs/scaling.md, "Quorum queues").
    """
    if settings.rabbitmq.queue_type == "classic":
        return {}
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": settings.worker.max_attempts,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(queue),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def given_up_by_broker(headers: dict[str, object], queues: Collection[str]) -> bool:
    """Whether a dead letter is a job the broker itself gave up on (a quorum queue's delivery
    limit) in one of `queues`, not one a worker put there after an outage."""
    deaths = headers.get("x-death")
    names = {*queues, *(queue.encode() for queue in queues)}
    return isinstance(deaths, list) and any(
        isinstance(death, dict) and death.get("reason") in ("delivery_limit", b"delivery_limit")
        and death.get("queue") in names
        for death in deaths
    )
