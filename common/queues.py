"""Queue names by kind of job: each kind of worker consumes a queue of its own.

Photos go to `<queue>` (the seed's `task_queue`), videos to `<queue>.video`, so a long video never
holds up photos, and completion webhooks to `<queue>.webhooks`, delivered by workers that never
touch a thumbnail. Each has its dead letters in `<name>.dead`.
"""

from __future__ import annotations

KINDS = ("image", "video", "webhook")
MEDIA_KINDS = ("image", "video")  # the kinds the server queues jobs for
_SUFFIX = {"image": "", "video": ".video", "webhook": ".webhooks"}


def queue_name(base: str, kind: str) -> str:
    return base + _SUFFIX[kind]


def media_kind(media_type: str) -> str:
    """The kind of worker that makes a media type's thumbnail: its main type (image, video)."""
    return media_type.partition("/")[0]


def dead_letter_queue(queue: str) -> str:
    """Where jobs go that failed on every retry, for an operator to inspect or replay."""
    return f"{queue}.dead"
