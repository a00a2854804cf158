"""How both sides use NATS: connection options, subject and bucket names, and the stream, buckets
and job consumers they declare (idempotently, whichever side starts first).

One stream, `<stream>`, is the log: every change of an item is one message on
`<stream>.media.<id>.<event>` (accepted, processing, updated, completed, failed, deleted) holding
the record after the change, and every job one on `<stream>.media.<id>.queued.<kind>` (its
`normal` lane) or `<stream>.media.<id>.queued.<kind>.<lane>` (`high`, `bulk`), so an item's whole
story is `<stream>.media.<id>.>`. Each kind and lane has a durable consumer of its own. A media
lane has a light part beside it, `<stream>.media.<id>.queued.<kind>.<lane>.light` (consumer
`jobs-<kind>-<lane>-light`), for the jobs of clients that had fewer than worker.fair_share_jobs
waiting in the lane (thumbnailify.lanes.goes_ahead), which workers take first; the counts are
keys `backlog.<kind>.<lane>.<client>` of `_meta` (backlog.py).
Key-value buckets named after the stream hold what must be read by key: the current records
(`_records`, changed by revision: compare-and-set), the list index (`_index`), locks,
Idempotency-Keys and content keys (`_meta`), resumable uploads (`_uploads`), clients with their
keys, usage and rate buckets (`_clients`), and the Completed items' perceptual hashes (`_phashes`,
one key `<id>.<hash>` per item, listed by subject).

Dead letters are a stream of their own, `<stream>_dead` on `<stream>.dead.<kind>`: bounded as
worker.dead_letter_max_length (per kind, as RabbitMQ bounds each dead queue) and dead_letter_max_age
say, the oldest going first, where a bound on the log would cut items' histories. It is a work
queue: a letter the replay tool took is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StreamConfig,
)
from nats.js.errors import BadRequestError

from thumbnailify.kinds import KINDS, MEDIA_KINDS, lanes
from thumbnailify.lanes import Priority
from thumbnailify.record import Fields, State
from thumbnailify.settings import NatsSettings, Settings

BUCKETS = ("records", "index", "meta", "uploads", "clients", "phashes")
PROGRESS_FRACTION = 3  # a running job reports progress this many times per ack wait


def connect_options(conf: NatsSettings) -> dict[str, Any]:
    """nats.connect's keywords: reconnecting for ever (an outage is an error per call, not a crash)."""
    options: dict[str, Any] = {
        "servers": [url.strip() for url in conf.servers.split(",") if url.strip()],
        "connect_timeout": conf.timeout,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
    }
    if conf.user:
        options |= {"user": conf.user, "password": conf.password}
    if conf.token:
        options["token"] = conf.token
    if conf.creds:
        options["user_credentials"] = conf.creds
    if conf.tls_ca:
        options["tls"] = ssl.create_default_context(cafile=conf.tls_ca)
    return options


async def connect(conf: NatsSettings) -> Client:
    async def quiet(_exc: Exception) -> None:  # nats-py logs each reconnect failure itself otherwise
        return None

    # With reconnects unbounded nats-py also tries the first connection for ever: bounded here, so a
    # NATS down at start-up is an error to retry on demand, not a start that never ends.
    try:
        return await asyncio.wait_for(nats.connect(**connect_options(conf), error_cb=quiet), conf.timeout * 2)
    except TimeoutError as exc:
        raise ConnectionError(f"no NATS server answered within {conf.timeout * 2:g}s") from exc


def bucket(conf: NatsSettings, role: str) -> str:
    return f"{conf.stream}_{role}"


def event_subject(stream: str, media_id: str, event: str) -> str:
    return f"{stream}.media.{media_id}.{event}"


def _lane_suffix(lane: Priority) -> str:
    """Nothing for normal: its jobs keep the subject and consumer they had before there were lanes."""
    return "" if lane == Priority.NORMAL else f".{lane}"


def _part(lane: Priority, light: bool) -> str:
    """The subject's tail after the kind: the lane (none for normal, whose jobs keep the subject they
    had before there were lanes), and `.light` for the lane's light part."""
    return f".{lane}.light" if light else _lane_suffix(lane)


def job_subject(stream: str, media_id: str, kind: str, lane: Priority = Priority.NORMAL, light: bool = False) -> str:
    """A job's subject; `light` for a job of a client with few jobs waiting in its lane."""
    return f"{stream}.media.{media_id}.queued.{kind}{_part(lane, light)}"


def jobs_filter(stream: str, kind: str, lane: Priority = Priority.NORMAL, light: bool = False) -> str:
    return f"{stream}.media.*.queued.{kind}{_part(lane, light)}"


def job_sources(kind: str) -> dict[Priority, tuple[tuple[str, bool], ...]]:
    """Each lane's consumers, the one a worker takes from first first, and whether it is a light part."""
    if kind not in MEDIA_KINDS:
        return {lane: ((job_consumer(kind, lane), False),) for lane in lanes(kind)}
    return {lane: ((job_consumer(kind, lane, light=True), True), (job_consumer(kind, lane), False))
            for lane in lanes(kind)}


def job_consumers(kind: str) -> list[str]:
    """Every consumer of a kind's jobs: each lane's and its light part's."""
    return [name for sources in job_sources(kind).values() for name, _ in sources]


def backlog_key(kind: str, lane: Priority, client: str) -> str:
    """A client's count of jobs waiting in a lane, in `_meta`."""
    return f"backlog.{kind}.{lane}.{owner_token(client)}"


def changes_filter(stream: str) -> str:
    return f"{stream}.media.>"


def dead_subject(stream: str, kind: str) -> str:
    return f"{stream}.dead.{kind}"


def dead_stream(stream: str) -> str:
    return f"{stream}_dead"


def job_consumer(kind: str, lane: Priority = Priority.NORMAL, light: bool = False) -> str:
    """A lane's consumer (`jobs-<kind>[-<lane>]`), or its light part's (`jobs-<kind>-<lane>-light`)."""
    return f"jobs-{kind}{_part(lane, light).replace('.', '-')}"


def dead_consumer(kind: str) -> str:
    return f"dead-{kind}"


def media_of(subject: str) -> tuple[str, str]:
    """The media id and event of a subject of the log (`<stream>.media.<id>.<event>...`)."""
    parts = subject.split(".")
    return (parts[2], ".".join(parts[3:])) if len(parts) >= 4 else ("", "")


def event_of(fields: Fields, expected: State) -> str:
    """The event a change is, by the state it leaves the record in."""
    new = fields.get("state", expected)
    if new == State.COMPLETED:
        return "completed"
    if new == State.ERROR:
        return "failed"
    if "state" in fields:
        return "processing"
    return "updated"


def safe_key(text: str) -> str:
    """A KV key for text a client or a setting chose (KV keys allow only [-/_=.a-zA-Z0-9])."""
    return hashlib.sha256(text.encode()).hexdigest()


def score_micros(score: float) -> int:
    return round(score * 1_000_000)


def owner_token(owner: str) -> str:
    """A client's name as one token of a key ('.' separates tokens; '=' is in no client's name)."""
    return owner.replace(".", "=")


def index_key(state: str, owner: str, score: float, media_id: str) -> str:
    """The index entry of an item in a state: `<state>.>` lists a state, `*.<owner>.>` one client's
    items, `<state>.<owner>.>` both; the order by creation time is the page's to make."""
    return f"{state}.{owner_token(owner)}.{score_micros(score):017d}.{media_id}"


def open_upload_key(owner: str, upload_id: str) -> str:
    """An unfinished upload's key in `<stream>_uploads`: `open.>` counts every client's,
    `open.<owner>.*` one client's."""
    return f"open.{owner_token(owner)}.{upload_id}"


def index_pattern(state: str | None, owner: str | None) -> str:
    return f"{state or '*'}.{'*' if owner is None else owner_token(owner)}.>"


def parse_index_key(key: str) -> tuple[str, int, str]:
    """The state, the creation time (microseconds) and the media id of an index entry."""
    state, _owner, micros, media_id = key.split(".", 3)
    return state, int(micros), media_id


def job_consumer_config(settings: Settings, kind: str, lane: Priority = Priority.NORMAL,
                        light: bool = False) -> ConsumerConfig:
    """A durable pull consumer per kind and lane (and a lane's light part): explicit acks, a job
    handed out again after ack_wait without a sign of life. Photo and video jobs are delivered at
    most worker.max_attempts times (then the worker that hears of it records Error 422); webhook
    jobs count their own attempts."""
    stream = settings.nats.stream
    return ConsumerConfig(
        durable_name=job_consumer(kind, lane, light),
        filter_subject=jobs_filter(stream, kind, lane, light),
        ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=settings.nats.ack_wait,
        max_deliver=-1 if kind == "webhook" else settings.worker.max_attempts,
        max_ack_pending=-1,
    )


def log_config(conf: NatsSettings) -> StreamConfig:
    return StreamConfig(name=conf.stream, subjects=[f"{conf.stream}.media.>"], num_replicas=conf.replicas)


def dead_letters_config(settings: Settings) -> StreamConfig:
    """The dead letters' stream, with the worker's bounds (a stream's limits: 0 or -1 is none)."""
    conf, worker = settings.nats, settings.worker
    return StreamConfig(
        name=dead_stream(conf.stream), subjects=[dead_subject(conf.stream, ">")], num_replicas=conf.replicas,
        retention=RetentionPolicy.WORK_QUEUE, discard=DiscardPolicy.OLD,
        max_msgs_per_subject=worker.dead_letter_max_length or -1, max_age=worker.dead_letter_max_age,
    )


async def _add_or_update(js: JetStreamContext, config: StreamConfig) -> None:
    """Changed bounds are applied to a stream that exists (a stream's limits may change)."""
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)


async def declare(js: JetStreamContext, settings: Settings) -> None:
    """The streams, the buckets and the job consumers; those that exist are left as they are. The log
    comes first: a log declared when it also held the dead letters gives their subjects up to
    `<stream>_dead` (letters it holds from then stay in it, unread: replay them before upgrading)."""
    conf = settings.nats
    await _add_or_update(js, log_config(conf))
    await _add_or_update(js, dead_letters_config(settings))
    for role in BUCKETS:
        await js.create_key_value(KeyValueConfig(bucket=bucket(conf, role), history=1, replicas=conf.replicas))
    for kind in KINDS:
        for lane, sources in job_sources(kind).items():
            for _name, light in sources:
                # One that exists with another config (max_attempts changed, say) is kept as it is.
                with contextlib.suppress(BadRequestError):
                    await js.add_consumer(conf.stream, job_consumer_config(settings, kind, lane, light))
