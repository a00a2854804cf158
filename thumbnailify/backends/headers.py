"""A job as a message of RabbitMQ or NATS: the body is the media_id, the headers say its media
type, its lane and its client (so a retry, a dead letter and its replay keep the lane). Headers
are untrusted: a lane none of ours is `normal`, a client that is no client's name the default one."""

from __future__ import annotations

from dataclasses import dataclass

from thumbnailify.clients import DEFAULT_CLIENT, valid_name
from thumbnailify.lanes import Priority, lane_of


def job_headers(media_type: str, lane: Priority, client: str) -> dict[str, str]:
    return {"media_type": media_type, "lane": lane, "client": client}


@dataclass(frozen=True)
class JobHeaders:
    media_type: str | None
    lane: Priority
    client: str
    reason: str  # why a dead letter is one ("" on a job)


def read_headers(headers: object) -> JobHeaders:
    """What a delivered message's headers say of its job; a message from before lanes is normal."""
    if not isinstance(headers, dict):
        headers = {}
    media_type, client, reason = headers.get("media_type"), headers.get("client"), headers.get("reason")
    return JobHeaders(media_type=media_type if isinstance(media_type, str) else None,
                      lane=lane_of(headers.get("lane")),
                      client=client if isinstance(client, str) and valid_name(client) else DEFAULT_CLIENT,
                      reason=reason if isinstance(reason, str) else "")
