"""Queue names by kind of job: each kind of worker consumes a queue of its own.

Photos go to `<queue>` (the seed's `task_queue`), videos to `<queue>.video`, so a long video never
holds up photos, and completion webhooks to `<queue>.webhooks`, delivered by workers that never
touch a thumbnail. Each has its dead letters in `<name>.dead`.
"""

from __future__ import annotations

from thumbnailify.settings import Settings

KINDS = ("image", "video", "webhook")
MEDIA_KINDS = ("image", "video")  # the kinds the server queues jobs for
_SUFFIX = {"image": "", "video": ".video", "webhook": ".webhooks"}


def queue_name(base: str, kind: str) -> str:
    return base + _SUFFIX[kind]


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
    declaration whose arguments differ from those the queue was created with.

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


def given_up_by_broker(headers: dict[str, object], queue: str) -> bool:
    """Whether a dead letter is a job the broker itself gave up on (a quorum queue's delivery
    limit), not one a worker put there after an outage."""
    deaths = headers.get("x-death")
    return isinstance(deaths, list) and any(
        isinstance(death, dict) and death.get("reason") in ("delivery_limit", b"delivery_limit")
        and death.get("queue") in (queue, queue.encode())
        for death in deaths
    )
