"""Settings shared by server and worker: THUMBNAILIFY_* env vars, then config/config.yaml, then defaults.

Every value lives in a section (`redis.url`, `limits.max_pixels`, ...) and is defined once, below:
its type, default, bounds and description in one `Field`. `config/config.yaml` and the settings
table of docs/configuration.md are written from these definitions (`python -m scripts.settings_docs`).

To add a key: add one line to its section's class below, e.g.
    memory_limit: ByteSize = Field(size("512MiB"), description="what one worker may hold ...")
choosing the type from the aliases below (ByteSize, Port, Seconds, Count, AtLeastOne, ...) or giving
bounds in the Field (ge=, le=, gt=), then run `python -m scripts.settings_docs` (or `make
settings-docs`). Its variable (THUMBNAILIFY_<SECTION>_<KEY>), its checks, its line in
config/config.yaml and its row in docs/configuration.md follow. A new section is a Section subclass plus one
field of Settings. A group of keys inside a section (`thumbnail.quality.jpeg`, variable
THUMBNAILIFY_THUMBNAIL_QUALITY_JPEG) is a Section subclass as the type of a section's field.

Any value can be overridden from the environment as THUMBNAILIFY_<SECTION>_<KEY>, e.g.
THUMBNAILIFY_AUTH_API_KEY. The file to read is `config/config.yaml` of the checkout (or of the
working directory, for an installed package; without one, the defaults hold) unless
THUMBNAILIFY_CONFIG names another one. Everything is checked at start: a wrong value, an unknown
key or section, or a THUMBNAILIFY_ variable that names no setting is a ConfigError of one line.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources import InitSettingsSource

_SOURCE_ROOT = Path(__file__).resolve().parent.parent
# The checkout when running from one (make run, make test); else (an installed package, the
# images) the working directory, whose config/config.yaml is read if there is one.
PROJECT_ROOT = _SOURCE_ROOT if (_SOURCE_ROOT / "config" / "config.yaml").is_file() else Path.cwd()
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "config.yaml"
ENV_PREFIX = "THUMBNAILIFY_"
CONFIG_VARIABLE = f"{ENV_PREFIX}CONFIG"
# THUMBNAILIFY_ variables that are not settings: the file to read, and the command line client's own.
NOT_SETTINGS = frozenset({CONFIG_VARIABLE, f"{ENV_PREFIX}URL", f"{ENV_PREFIX}API_KEY", f"{ENV_PREFIX}ADMIN_KEY"})
SIZE_ENTRY = re.compile(r"([a-z0-9][a-z0-9_-]{0,31})=([1-9][0-9]{0,4})x([1-9][0-9]{0,4})(?::([A-Za-z0-9]*))?")
# The formats a size may name (`name=WxH:format`); without one, a size takes the source's kind.
THUMBNAIL_FORMATS = ("jpeg", "png", "webp", "avif", "gif")
MAX_SIDE = 4096  # a thumbnail box larger than this is a typo, not a thumbnail
IMPORT_STRING = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s]+")
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: ten times faster at each start
BOUNDS = ("ge", "gt", "le", "min_length")  # the constraints the fields below use, as error messages state them
LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]
LOG_LEVELS: tuple[str, ...] = typing.get_args(LogLevel)


class ConfigError(ValueError):
    """A setting cannot be used: the message (one line) names the variable or key, what is wrong, what is expected."""


BYTE_UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def byte_size(text: str) -> int:
    """A size as config writes it ("96MiB", "1GiB", or plain bytes) in bytes."""
    for unit, factor in BYTE_UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def _byte_size(value: object) -> object:
    if isinstance(value, str):
        try:
            return byte_size(value.strip())
        except (ValueError, OverflowError):
            raise ValueError(
                f"{value!r} is not a byte size; expected a whole number of bytes or a number with "
                f"{', '.join(BYTE_UNITS)}, e.g. 64MiB"
            ) from None
    return value  # an int from the YAML file; anything else fails as "not an integer"


def size(text: str) -> int:
    """A ByteSize default as the docs show it ("64MiB"): validate_default turns it into bytes at load, so
    the field holds an int while its default stays in words."""
    return typing.cast(int, text)


def _split(text: str) -> list[str]:
    return [entry.strip() for entry in text.split(",") if entry.strip()]


def _origins(text: str) -> str:
    for origin in _split(text):
        if not ORIGIN.fullmatch(origin.rstrip("/")):
            raise ValueError(f"{origin!r} is not an origin; expected scheme://host[:port], e.g. https://app.example")
    return text


def _hosts(text: str) -> str:
    for entry in _split(text):
        if re.search(r"[\s/@]", entry):
            raise ValueError(f"{entry!r} is not a host; expected host, host:port or *.domain (no scheme or path)")
    return text


def _log_level(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


# Field types with their checks; a section's field names one of these and gives its default and description.
ByteSize = Annotated[int, BeforeValidator(_byte_size), Field(ge=0)]  # "64MiB", "1GiB" or plain bytes
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0)]  # a timeout or an interval: 0 would never wait or spin
Count = Annotated[int, Field(ge=0)]
AtLeastOne = Annotated[int, Field(ge=1)]
Origins = Annotated[str, AfterValidator(_origins)]
Hosts = Annotated[str, AfterValidator(_hosts)]
Quality = Annotated[int, Field(ge=1, le=100)]


class Section(BaseModel):
    """A section of the settings: immutable, unknown keys refused, defaults checked like values."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_default=True, coerce_numbers_to_str=True, allow_inf_nan=False,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: object, info: ValidationInfo) -> object:
        """YAML's true is not 1: a number or a text is asked for (pydantic would take it)."""
        field = cls.model_fields[info.field_name or ""]
        if isinstance(value, bool) and field.annotation is not bool:
            raise ValueError(f"got {value!r}; expected {expectation(field)}")
        return value


class ServerSettings(Section):
    """The HTTP API server."""

    host: str = Field("127.0.0.1", min_length=1, description="address the API listens on")
    port: Port = Field(8080, description="port the API listens on")
    processes: AtLeastOne = Field(1, description="server processes sharing the port (SO_REUSEPORT)")
    shutdown_timeout: Seconds = Field(30.0, description="seconds in-flight requests get after SIGTERM")
    recovery_min_age: float = Field(
        60.0, ge=0,
        description="the recovery pass (at start and with every sweep) re-queues Processing jobs untouched this long"
                    " (seconds)",
    )
    backlog: AtLeastOne = Field(
        1024,
        description="pending connections the listening socket holds, so a burst of clients is queued, not dropped",
    )
    keepalive_timeout: Seconds = Field(
        60.0,
        description="seconds a connection may go without a complete request (idle keep-alive, or headers still "
                    "trickling in) before it is closed",
    )
    cors_origins: Origins = Field(
        "",
        description="comma-separated origins (`https://app.example`) whose pages may call the API: CORS headers and "
                    "preflight answers, `Authorization` allowed; empty = no CORS headers",
    )
    max_event_streams: AtLeastOne = Field(
        512,
        description="event streams (`GET /events`, `GET /images/{id}/events`) one server process keeps open, and at "
                    "most half its open files limit; one more is a 503 with `Retry-After`",
    )
    event_stream_seconds: Seconds = Field(
        3600.0,
        description="seconds after which the server ends an event stream (clients reconnect and read the status "
                    "again)",
    )
    event_send_timeout: Seconds = Field(
        30.0,
        description="seconds one event may take to leave (and the kernel's bound on unacknowledged stream data); a "
                    "reader slower than that is disconnected",
    )

    @property
    def cors_origin_set(self) -> frozenset[str]:
        return frozenset(origin.rstrip("/") for origin in _split(self.cors_origins))


class WorkerSettings(Section):
    """The workers that make thumbnails and deliver webhooks."""

    processes: Count = Field(0, description="photo workers `make run` starts; 0 = one per CPU core")
    video_processes: Count = Field(
        1,
        description="video workers `make run` and `make stack` start (`python -m thumbnailify.worker --kind "
                    "video`, queue `<queue>.video`, never photos); 0 = videos wait in their queue",
    )
    webhook_processes: Count = Field(
        1, description="webhook workers `make run` starts (`python -m thumbnailify.worker --kind webhook`): they "
                       "deliver completion callbacks",
    )
    prefetch: AtLeastOne = Field(
        1, description="jobs a worker holds unacked at once (a webhook worker: at least `webhooks.concurrency`)",
    )
    fair_share_jobs: Count = Field(
        8,
        description="RabbitMQ and NATS: a client with fewer jobs than this waiting in a priority lane has its next "
                    "job go ahead of the lane's backlog (its light part, taken first), so one client's import cannot "
                    "hold up another's upload in the same lane; counted in Redis (`backends.store: redis`) or the "
                    "`<stream>_meta` bucket; 0 = first in, first out within a lane (the embedded queue always takes "
                    "clients in turns)",
    )
    job_timeout: Seconds = Field(60.0, description="seconds one thumbnail may take before its worker process is ended")
    max_attempts: AtLeastOne = Field(
        3, description="deliveries of one job (crash, timeout) before it ends as Error 422",
    )
    max_retries: Count = Field(
        6, description="tries through a store or volume outage before dead-lettering (Error 503)",
    )
    retry_base_delay: Seconds = Field(
        0.5, description="seconds before the first of those tries; doubles each retry up to `retry_max_delay`",
    )
    retry_max_delay: Seconds = Field(10.0, description="the longest back-off between those tries (seconds)")
    metrics_port: int = Field(
        0, ge=0, le=65535,
        description="port of each worker's `/metrics` (Prometheus) and `/health` (main-loop progress); the "
                    "launcher gives its workers this port and the next ones; 0 = off",
    )
    poll_interval: Seconds = Field(
        0.02, description="seconds between polls of the embedded queue by an idle worker",
    )
    stall_margin: Seconds = Field(
        30.0,
        description="seconds beyond `job_timeout` a worker's main loop may make no progress before it counts as stuck "
                    "(`/health` 503, the process exits to be restarted); keep it above `retry_max_delay` plus a few "
                    "store timeouts",
    )
    temp_dir: str = Field(
        "",
        description="where each worker keeps a folder of its own for ImageMagick's temporary files; empty = the "
                    "system temp dir (`$TMPDIR`, `/tmp`) + `/thumbnailify`",
    )
    memory_limit: ByteSize = Field(
        size("1GiB"),
        description="data memory of each worker process (`RLIMIT_DATA`, set at its start: heap and private maps, "
                    "not code nor thread stacks' untouched reserve); an allocation past it fails inside the decoder "
                    "and the job ends as an Error (413, or 422 where FFmpeg reports the failure as invalid data) "
                    "while the worker goes on with the next; `0` = no limit. Every file of the photo and video corpus "
                    "fits well within the default (`python -m bench.memory`)",
    )
    dead_letter_max_length: Count = Field(
        10000, description="dead letters kept (the oldest go first); 0 = no bound",
    )
    dead_letter_max_age: float = Field(
        1209600.0, ge=0, description="seconds a dead letter is kept (1209600: 14 days); 0 = no bound",
    )


# The backends shipped, by the name config chooses them with (server.backends and worker.backends
# map each to its class); a "module:Class" of one's own is also taken.
BACKEND_NAMES = {"store": ("sqlite", "redis", "nats"), "queue": ("sqlite", "rabbitmq", "nats"),
                 "files": ("filesystem", "s3")}


class BackendSettings(Section):
    """Chosen by name and loaded dynamically (or a `module:Class` of one's own). Embedded (one machine,
    no servers): sqlite/sqlite. Distributed (many machines): store redis, queue rabbitmq, or both nats
    (one NATS JetStream log as state, queue and history); files on a shared volume or in S3."""

    store: str = Field("sqlite", description="state store: `sqlite` (embedded), `redis` or `nats` (with queue `nats`)")
    queue: str = Field("sqlite", description="job queue: `sqlite` (embedded), `rabbitmq` or `nats` (with store `nats`)")
    files: str = Field(
        "filesystem",
        description="where uploads and thumbnails live: `filesystem` (local disk, or a shared volume on every "
                    "machine) or `s3` (an S3-compatible bucket: no shared directory at all)",
    )

    @field_validator("store", "queue", "files")
    @classmethod
    def _known_backend(cls, name: str, info: ValidationInfo) -> str:
        names = BACKEND_NAMES[info.field_name or ""]
        if name not in names and not IMPORT_STRING.fullmatch(name):
            choices = f"{', '.join(names[:-1])} or {names[-1]}"
            raise ValueError(f"unknown backend {name!r}; expected {choices}, or a module:Class of one's own")
        return name

    @model_validator(mode="after")
    def _nats_together(self) -> BackendSettings:
        # The log is the queue: jobs are events of the records the store keeps, so neither goes alone.
        if (self.store == "nats") != (self.queue == "nats"):
            raise ValueError("backends.store and backends.queue are `nats` together or not at all "
                             f"(store {self.store!r}, queue {self.queue!r})")
        return self


class RedisSettings(Section):
    """The Redis state store (backends.store: redis)."""

    url: str = Field("redis://127.0.0.1:6379/0", min_length=1, description="the Redis state store")
    prefix: str = Field("thumbnailify:", description="put before every Redis key")
    timeout: Seconds = Field(2.0, description="seconds for one command or connect")
    max_connections: AtLeastOne = Field(
        64, description="connections per server process; a burst past it waits up to `pool_timeout` for a free one",
    )
    pool_timeout: Seconds = Field(
        10.0, description="seconds a request waits for a free connection past `max_connections` (then 503)",
    )
    sentinels: str = Field(
        "",
        description="`host:port,host:port` of Redis Sentinels: server and workers ask them for the master named "
                    "`sentinel_master` and follow a failover by themselves (`redis.url` then only gives the database "
                    "number and password); empty = connect to `redis.url`",
    )
    sentinel_master: str = Field("mymaster", min_length=1, description="the master's name in Sentinel")
    wait_replicas: Count = Field(
        0,
        description="replicas each write must reach (Redis `WAIT`, up to `redis.timeout`) before it counts: with 1 "
                    "and at least two replicas a failover loses nothing that was answered 202 or acked; a write fewer "
                    "replicas confirm is a 503 (server) or retried (worker)",
    )

    @field_validator("sentinels")
    @classmethod
    def _sentinel_list(cls, text: str) -> str:
        if text.strip():
            _sentinel_addresses(text)
        return text

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return _sentinel_addresses(self.sentinels)


def _sentinel_addresses(text: str) -> list[tuple[str, int]]:
    addresses = []
    for entry in text.split(","):
        host, _, port = entry.strip().rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{entry.strip()!r} is not host:port; expected host:port,host:port")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


class RabbitMQSettings(Section):
    """The RabbitMQ work queue (backends.queue: rabbitmq)."""

    url: str = Field("amqp://guest:guest@127.0.0.1:5672/%2F", min_length=1, description="the RabbitMQ broker")
    queue: str = Field("task_queue", min_length=1,
                       description="the work queue of normal jobs (`<queue>.high`, `<queue>.bulk` beside it for the "
                                   "other priority lanes; dead letters: `<queue>.dead`)")
    publish_timeout: Seconds = Field(5.0, description="seconds to wait for a publisher confirm")
    channels: AtLeastOne = Field(16, description="confirm-mode channels per server process")
    queue_type: Literal["classic", "quorum"] = Field(
        "classic",
        description="`classic` or `quorum` (replicated; the broker itself dead-letters a job delivered more than "
                    "`worker.max_attempts` times, and a worker records it as Error 422). An existing queue keeps its "
                    "type: switch with a new `rabbitmq.queue` name (see docs/scaling.md)",
    )


class NatsSettings(Section):
    """The NATS JetStream log (backends.store and backends.queue: nats)."""

    servers: str = Field("nats://127.0.0.1:4222", min_length=1,
                         description="NATS servers, comma-separated URLs (a cluster's members)")
    stream: str = Field(
        "thumbnailify", pattern=r"^[A-Za-z0-9_-]+$",
        description="the stream holding every item's events (`<stream>.media.<id>.<event>`); its key-value "
                    "buckets are named after it (`<stream>_records`, `<stream>_index`, `<stream>_meta`, "
                    "`<stream>_uploads`, `<stream>_clients`, `<stream>_phashes`), and so is the dead letters' stream "
                    "(`<stream>_dead`)",
    )
    replicas: AtLeastOne = Field(1, description="copies of the stream and buckets in a NATS cluster (3: R3)")
    user: str = Field("", description="user name, with `nats.password` (empty: none)")
    password: str = Field("", description="password of `nats.user`")
    token: str = Field("", description="an authentication token (empty: none)")
    creds: str = Field("", description="a credentials file (JWT and NKey seed; empty: none)")
    tls_ca: str = Field("", description="a CA bundle to verify the servers' TLS certificates (empty: no TLS "
                                        "unless a `tls://` server URL asks for it)")
    timeout: Seconds = Field(5.0, description="seconds to wait for a connection, a reply or a publish "
                                              "acknowledgement")
    ack_wait: Seconds = Field(
        30.0, description="seconds a worker may hold a job without a sign of life before it is handed out again "
                          "(a worker reports progress every third of it while a job runs, so a killed worker's job "
                          "returns two thirds to one ack wait after the kill)",
    )


class SQLiteSettings(Section):
    """The embedded state store and queue (backends.store and backends.queue: sqlite)."""

    path: str = Field("var/thumbnailify.db", min_length=1, description="the embedded state and queue's database")
    lease_seconds: Seconds = Field(300.0, description="a claimed job returns to the queue if not acked by then")


class FilesSettings(Section):
    """The media volume (backends.files: filesystem)."""

    root: str = Field(
        "var/media", min_length=1,
        description="the media volume (`raw/` uploads, `thumbs/<id>/<size>.<ext>` thumbnails)",
    )


class S3Settings(Section):
    """backends.files: s3 — media in an S3-compatible bucket, no shared directory."""

    endpoint_url: str = Field(
        "",
        description="the S3 API to use (`http://127.0.0.1:8333` for `make s3`, SeaweedFS, MinIO, Ceph, R2...); empty "
                    "= AWS S3 in `s3.region`",
    )
    bucket: str = Field("thumbnailify", min_length=1, description="the bucket (it must exist)")
    region: str = Field("us-east-1", min_length=1, description="the bucket's region")
    access_key: str = Field(
        "", description="credentials; empty = the usual AWS sources (`AWS_*` variables, web identity, instance role)",
    )
    secret_key: str = Field("", description="the secret of `s3.access_key`")
    prefix: str = Field(
        "",
        description="put before every object name (`<prefix>raw/<id>`, `<prefix>thumbs/<id>/<size>.<ext>`), e.g. "
                    "`thumbnailify/`, so several services can share a bucket",
    )
    timeout: Seconds = Field(
        10.0,
        description="seconds one request may take; past it the bucket counts as unavailable",
    )
    connect_timeout: Seconds = Field(
        1.0,
        description="seconds to connect (TCP and TLS, at most `s3.timeout`): an endpoint that accepts no connection "
                    "is a 503 after about twice this (one retry), a refused connection at once; raise it only for an "
                    "endpoint far away",
    )


class LimitsSettings(Section):
    """What one upload, one image and one worker may use."""

    max_upload_bytes: ByteSize = Field(
        size("20MiB"),
        description="decoded upload size limit (413); the base64 text may be at most 4/3 of it plus 1/16 for line "
                    "breaks",
    )
    max_files: AtLeastOne = Field(100, description="files one multipart upload may carry (413 past it)")
    max_resumable_bytes: ByteSize = Field(
        size("2GiB"),
        description="size limit of a resumable (tus) upload, checked against `Upload-Length` at creation (413)",
    )
    upload_idle_timeout: Seconds = Field(
        30.0, description="seconds an upload may send nothing before it is cut off (408, connection closed)",
    )
    upload_timeout: Seconds = Field(
        300.0, description="seconds a whole upload body may take (408, connection closed)",
    )
    upload_memory: ByteSize = Field(
        size("64MiB"),
        description="per server process, what uploads in flight may buffer (~224 KiB each: 128 KiB of the upload, "
                    "96 KiB aiohttp reads ahead); past it an upload waits for its turn (its waiting counts against "
                    "`limits.upload_timeout`; 503 if it never came)",
    )
    max_pixels: AtLeastOne = Field(
        50_000_000,
        description="source pixels (50 MP; a video's frame size), checked from the header before decoding (Error "
                    "413); the video decoder is held to it too",
    )
    max_animation_pixels: AtLeastOne = Field(
        8_000_000,
        description="frames x canvas pixels an animated GIF/WebP may decode; frames past it are left out (as past "
                    "`thumbnail.max_frames`), which keeps a worker's memory bounded",
    )
    magick_memory: ByteSize = Field(
        size("96MiB"),
        description="ImageMagick pixel cache in RAM; past it the cache goes to memory-mapped files (`magick_map`), "
                    "then to disk (`magick_disk`)",
    )
    magick_map: ByteSize = Field(
        size("0"),
        description="ImageMagick pixel cache in memory-mapped files. A mapped cache counts in the worker's RSS, so it "
                    "is off: "
                    "what does not fit in `magick_memory` (a 12 MP HEIC, a 20 MP PNG) goes to disk, slower but within "
                    "256 MB",
    )
    magick_disk: ByteSize = Field(
        size("1GiB"),
        description="ImageMagick pixel cache on disk, past `magick_memory` and `magick_map`; beyond it the job fails",
    )
    magick_width: AtLeastOne = Field(
        16000, description="widest image ImageMagick will hold (the policy file caps it at 16000)",
    )
    magick_height: AtLeastOne = Field(
        16000, description="tallest image ImageMagick will hold (the policy file caps it at 16000)",
    )


class SizeBox(typing.NamedTuple):
    name: str
    width: int
    height: int
    format: str | None = None  # one of THUMBNAIL_FORMATS; None: the source's kind


def _parse_sizes(text: str) -> tuple[SizeBox, ...]:
    boxes: list[SizeBox] = []
    for entry in text.split(","):
        found = SIZE_ENTRY.fullmatch(entry.strip())
        if found is None:
            raise ValueError(
                f"{entry.strip()!r} is not name=WIDTHxHEIGHT[:format]; expected e.g. "
                "default=100x100,large=400x400:webp (name: a-z 0-9 _ -)"
            )
        chosen = None if found[4] is None else found[4].lower()
        if chosen is not None and chosen not in THUMBNAIL_FORMATS:
            raise ValueError(
                f"{entry.strip()!r} names no thumbnail format {found[4]!r}; expected one of "
                f"{', '.join(THUMBNAIL_FORMATS)}, or none (the source's own)"
            )
        box = SizeBox(found[1], int(found[2]), int(found[3]), chosen)
        if max(box.width, box.height) > MAX_SIDE:
            raise ValueError(f"{box.name} is larger than {MAX_SIDE}x{MAX_SIDE}; expected a smaller box")
        if any(known.name == box.name for known in boxes):
            raise ValueError(f"{box.name!r} is named twice; expected each name once")
        boxes.append(box)
    return tuple(boxes)


class QualitySettings(Section):
    """Encoder quality of each lossy thumbnail format (PNG and GIF are lossless)."""

    jpeg: Quality = Field(85, description="JPEG thumbnail quality, 1-100 (photos and videos)")
    webp: Quality = Field(80, description="WebP thumbnail quality, 1-100 (lossy WebP)")
    avif: Quality = Field(60, description="AVIF thumbnail quality, 1-100 (libavif's scale)")


class ThumbnailSettings(Section):
    """The thumbnails made of every upload."""

    width: int = Field(
        100, ge=1, le=MAX_SIDE,
        description="the width of the one size `default` when `thumbnail.sizes` is empty (ignored when it is set)",
    )
    height: int = Field(
        100, ge=1, le=MAX_SIDE,
        description="the height of the one size `default` when `thumbnail.sizes` is empty (ignored when it is set)",
    )
    sizes: str = Field(
        "",
        description="the named boxes every image is made in, from one decode: `name=WIDTHxHEIGHT[:format],...` in "
                    "the order listed, the first being the default (e.g. `default=100x100,card=400x400:webp`; names "
                    f"`a-z 0-9 _ -`, at most {MAX_SIDE}x{MAX_SIDE}; format one of {', '.join(THUMBNAIL_FORMATS)}, "
                    "else the source's own). Empty: one size, `default=<width>x<height>`",
    )
    max_frames: AtLeastOne = Field(100, description="frames kept of an animated GIF/WebP")
    quality: QualitySettings = Field(default_factory=QualitySettings, description=QualitySettings.__doc__)

    @field_validator("sizes")
    @classmethod
    def _size_list(cls, text: str) -> str:
        if text.strip():
            _parse_sizes(text)  # a bad value fails at load, naming the key, not at the first job
        return text

    def boxes(self) -> tuple[SizeBox, ...]:
        """The named boxes every image is made in, in config order (the first is the default)."""
        if not self.sizes.strip():
            return (SizeBox("default", self.width, self.height),)
        return _parse_sizes(self.sizes)


class VideoSettings(Section):
    """Video thumbnails."""

    scan_seconds: float = Field(
        5.0, ge=0,
        description="a video's thumbnail is its first frame this early whose mean luma is above 16 (not black), else "
                    "its first frame",
    )


class AuthSettings(Section):
    """Who may call the API."""

    api_key: str = Field(
        "",
        description="when set, `Authorization: Bearer <key>` is required (not on `/health`, `/ready` and the web "
                    "page, which asks for the key itself); this key is the client named `default`",
    )
    admin_key: str = Field(
        "",
        description="when set, the admin API (`/admin/keys`, `thumbnailify keys ...`) takes this Bearer key and "
                    "every other request needs a client's key (or `auth.api_key`); empty = no admin API",
    )
    rotate_grace_seconds: float = Field(
        86400.0, ge=0,
        description="after `keys rotate`, how long a client's old key keeps working beside the new one",
    )
    metric_clients: int = Field(
        20, ge=0,
        description="clients named in per-client metrics, the first seen by each process; the rest count as `other`",
    )

    @field_validator("admin_key")
    @classmethod
    def _not_the_api_key(cls, admin_key: str, info: ValidationInfo) -> str:
        if admin_key and admin_key == info.data.get("api_key"):
            raise ValueError("must differ from auth.api_key: the admin key is no client's")
        return admin_key

    @property
    def enabled(self) -> bool:
        """Whether requests need a key at all."""
        return bool(self.api_key or self.admin_key)


class RetentionSettings(Section):
    """How long uploads and items are kept."""

    raw_hours: float = Field(
        0.0, ge=0,
        description="hours an upload is kept once its item is Completed or Error; 0 = removed at once (an Error 503 "
                    "keeps it for a replay)",
    )
    media_days: float = Field(
        0.0, ge=0, description="days an item is kept after its upload, then removed as a DELETE would; 0 = forever",
    )
    sweep_seconds: Seconds = Field(
        300.0, description="how often the sweep runs (and the recovery pass with it), and once at start",
    )


class UploadsSettings(Section):
    """Resumable uploads (tus 1.0 at `/uploads/`)."""

    resumable_hours: float = Field(
        24.0, gt=0,
        description="hours an unfinished resumable upload is kept (`Upload-Expires`), then swept with its bytes; a "
                    "finished one's answer (its `media_id`) is kept as long",
    )
    max_unfinished: AtLeastOne = Field(
        1000, description="unfinished resumable uploads kept at once, over all server processes and clients (503 past "
                          "it)",
    )
    max_unfinished_per_client: AtLeastOne = Field(
        100, description="unfinished resumable uploads one client keeps at once (503 past it, before the total is "
                         "reached); without keys every caller is the one client `default`; above `max_unfinished` it "
                         "never comes into play",
    )


class IdempotencySettings(Section):
    """Replays of requests with an Idempotency-Key."""

    ttl_seconds: Seconds = Field(
        86400.0, description="how long the answer to a request with an `Idempotency-Key` is kept for replays (seconds)",
    )


class WebhookSettings(Section):
    """Completion webhooks (callback_url)."""

    secret: str = Field(
        "",
        description="completion webhooks are off until set; the HMAC-SHA256 key of `Thumbnailify-Signature`",
    )
    allowed_hosts: Hosts = Field(
        "", description="comma-separated `host`, `host:port` or `*.domain` a `callback_url` may name",
    )
    timeout: Seconds = Field(
        5.0, description="seconds one delivery may take (connect and answer); anything but a 2xx is retried",
    )
    retry_base_delay: Seconds = Field(5.0, description="seconds before a delivery's first retry, doubling each time")
    max_attempts: AtLeastOne = Field(8, description="delivery attempts before the callback is `failed`")
    concurrency: AtLeastOne = Field(
        16, description="attempts one webhook worker process makes at once, over all hosts",
    )
    per_host: AtLeastOne = Field(
        2, description="attempts one webhook worker process makes at once to one `host:port`, so a slow "
                       "receiver delays only itself",
    )


class LogSettings(Section):
    """Logs, on stderr."""

    level: Annotated[LogLevel, BeforeValidator(_log_level)] = Field(
        "INFO", description=f"the least severe level logged: {', '.join(LOG_LEVELS)}",
    )
    format: Literal["text", "json"] = Field("text", description="`text`, or `json` for one JSON object per line")


class _EnvironmentSource(PydanticBaseSettingsSource):
    """THUMBNAILIFY_<SECTION>_<KEY> from a mapping, taken verbatim: an API key "0123" stays "0123"."""

    def __init__(self, settings_cls: type[BaseSettings], env: typing.Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.env = env

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every variable at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, text in self.env.items():
            if name.startswith(ENV_PREFIX) and name not in NOT_SETTINGS:
                section, key = _setting_of(name)
                *groups, last = key.split(".")
                place = values.setdefault(section, {})
                for group in groups:
                    place = place.setdefault(group, {})
                place[last] = text
        return values


class _YamlSource(InitSettingsSource):
    """The YAML file: a mapping of sections, each a mapping of keys (an empty section is all defaults)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        try:
            # No file where the default one would be (an installed package): the defaults hold.
            text = "" if path == DEFAULT_CONFIG_FILE and not path.exists() else path.read_text()
            raw = yaml.load(text, Loader=YAML_LOADER) or {}
        except OSError as exc:
            raise ConfigError(f"{CONFIG_VARIABLE}: cannot read {path}: {exc.strerror}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
            raise ConfigError(f"{path}: not valid YAML{line}: {problem}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(raw).__name__}")
        super().__init__(settings_cls, {name: {} if value is None else value for name, value in raw.items()})


def config_file(env: typing.Mapping[str, str]) -> Path:
    return Path(env.get(CONFIG_VARIABLE) or DEFAULT_CONFIG_FILE)


class Settings(BaseSettings):
    """Every setting, by section. Sources, first wins: the environment, the YAML file, the defaults."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    backends: BackendSettings = Field(default_factory=BackendSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    rabbitmq: RabbitMQSettings = Field(default_factory=RabbitMQSettings)
    nats: NatsSettings = Field(default_factory=NatsSettings)
    sqlite: SQLiteSettings = Field(default_factory=SQLiteSettings)
    files: FilesSettings = Field(default_factory=FilesSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    thumbnail: ThumbnailSettings = Field(default_factory=ThumbnailSettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    uploads: UploadsSettings = Field(default_factory=UploadsSettings)
    idempotency: IdempotencySettings = Field(default_factory=IdempotencySettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, *_sources(settings_cls, os.environ)

    def path(self, value: str) -> Path:
        """A configured path; relative ones are taken from the project root, not the cwd."""
        path = Path(value)
        return path if path.is_absolute() else PROJECT_ROOT / path


def _sources(settings_cls: type[BaseSettings], env: typing.Mapping[str, str]) -> tuple[PydanticBaseSettingsSource, ...]:
    return _EnvironmentSource(settings_cls, env), _YamlSource(settings_cls, config_file(env))


def sections() -> dict[str, type[Section]]:
    """Each section's name and model, in the order the docs list them."""
    return {name: _section_model(field) for name, field in Settings.model_fields.items()}


def _section_model(field: FieldInfo) -> type[Section]:
    model = field.annotation
    if not (isinstance(model, type) and issubclass(model, Section)):
        raise TypeError(f"a field of Settings is a Section, not {model!r}")
    return model


def group_model(field: FieldInfo) -> type[Section] | None:
    """The keys a key holds when it is a group of its own (`thumbnail.quality.jpeg`), else None."""
    model = field.annotation
    return model if isinstance(model, type) and issubclass(model, Section) else None


def keys(model: type[Section]) -> dict[str, FieldInfo]:
    """A section's keys, a group's as `group.key`, in the order they are defined."""
    found: dict[str, FieldInfo] = {}
    for key, field in model.model_fields.items():
        group = group_model(field)
        found |= {f"{key}.{inner}": value for inner, value in keys(group).items()} if group else {key: field}
    return found


def env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key.replace('.', '_')}".upper()


# Each THUMBNAILIFY_ variable that sets a key, and the (section, key) it sets.
SETTING_VARIABLES = {
    env_name(section, key): (section, key) for section, model in sections().items() for key in keys(model)
}
# Keys of earlier releases under their new names: a config that names an old one is told which.
RENAMED = {"thumbnail.jpeg_quality": "thumbnail.quality.jpeg"}
RENAMED_VARIABLES = {env_name(*old.split(".", 1)): env_name(*new.split(".", 1)) for old, new in RENAMED.items()}


def _setting_of(variable: str) -> tuple[str, str]:
    """The (section, key) a THUMBNAILIFY_ variable sets; a misspelt one is refused, not ignored."""
    if variable in SETTING_VARIABLES:
        return SETTING_VARIABLES[variable]
    close = difflib.get_close_matches(variable, [*SETTING_VARIABLES, *NOT_SETTINGS], n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    if variable in RENAMED_VARIABLES:
        hint = f"; it is {RENAMED_VARIABLES[variable]} now"
    raise ConfigError(
        f"{variable}: no such setting; expected {ENV_PREFIX}<SECTION>_<KEY> of a key in config/config.yaml, "
        f"or one of {', '.join(sorted(NOT_SETTINGS))}{hint}"
    )


def default_settings() -> Settings:
    """The defaults alone, from no file and no environment (what the docs state)."""
    return Settings(_build_sources=((), {}))


def load_settings(env: typing.Mapping[str, str] | None = None) -> Settings:
    """Read THUMBNAILIFY_* variables (os.environ unless given), then the YAML file, then defaults; check all."""
    env = os.environ if env is None else env
    try:
        return Settings(_build_sources=(_sources(Settings, env), {}))
    except ValidationError as exc:
        raise ConfigError(_first_problem(exc, env)) from None


def _first_problem(exc: ValidationError, env: typing.Mapping[str, str]) -> str:
    """One line: which variable or key, what is wrong with it, and what is expected."""
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"]]
    section_model = sections().get(loc[0])
    if section_model is None:
        return _unknown(loc[0], list(sections()), f"section in {config_file(env)}", "section")
    if len(loc) == 1:  # the section's own: keys that do not go together, or not a mapping at all
        return (f"{loc[0]}: {error['ctx']['error']}" if error["type"] == "value_error"
                else f"{loc[0]} in {config_file(env)}: got {error['input']!r}; expected a mapping of its keys")
    model, path = section_model, [loc[0]]
    for part in loc[1:]:
        found = model.model_fields.get(part)
        if found is None:
            return _unknown(".".join([*path, part]), list(model.model_fields), f"key in {config_file(env)}", "key")
        path.append(part)
        field, group = found, group_model(found)
        if group is None:
            break
        model = group
    else:  # the error is a group's own: it is not a mapping
        return f"{'.'.join(path)} in {config_file(env)}: got {error['input']!r}; expected a mapping of its keys"
    key = ".".join(path[1:])
    variable = env_name(loc[0], key)
    where = f"{variable} sets {loc[0]}.{key}" if variable in env else f"{loc[0]}.{key} in {config_file(env)}"
    if error["type"] == "value_error":
        return f"{where}: {error['ctx']['error']}"
    return f"{where}: got {error['input']!r}; expected {expectation(field)}"


def _unknown(name: str, known: list[str], what: str, kind: str) -> str:
    close = difflib.get_close_matches(name.rpartition(".")[2], known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    if name in RENAMED:
        hint = f"; it is {RENAMED[name]} now"
    return f"{name}: unknown {what}; expected a {kind} of {', '.join(known)}{hint}"


WORDS: dict[object, str] = {int: "a whole number", float: "a number", str: "text"}


def expectation(field: FieldInfo) -> str:
    """What a field takes, in words: its type and its bounds."""
    kind = field.annotation
    if typing.get_origin(kind) is Literal:
        return f"one of {', '.join(map(str, typing.get_args(kind)))}"
    words = WORDS.get(kind, str(kind))
    bounds = {name: getattr(rule, name) for rule in field.metadata for name in BOUNDS if hasattr(rule, name)}
    if "ge" in bounds and "le" in bounds:
        return f"{words} from {bounds['ge']} to {bounds['le']}"
    if "ge" in bounds:
        return f"{words} of {bounds['ge']} or more"
    if "gt" in bounds:
        return f"{words} above {bounds['gt']}"
    if "min_length" in bounds:
        return f"{words}, not empty"
    return words

