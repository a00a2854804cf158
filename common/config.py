"""Settings shared by server and worker: config/config.yaml, then THUMBNAILIFY_* env vars.

Every value lives in a section (`redis.url`, `limits.max_pixels`, ...) and can be overridden from
the environment as THUMBNAILIFY_<SECTION>_<KEY>, e.g. THUMBNAILIFY_AUTH_API_KEY. The file to read
is `config/config.yaml` beside this package unless THUMBNAILIFY_CONFIG names another one.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "config.yaml"
ENV_PREFIX = "THUMBNAILIFY_"
SIZE_ENTRY = re.compile(r"([a-z0-9][a-z0-9_-]{0,31})=([1-9][0-9]{0,4})x([1-9][0-9]{0,4})")
MAX_SIDE = 4096  # a thumbnail box larger than this is a typo, not a thumbnail


class ConfigError(ValueError):
    """The config file or an override names an unknown key or a value of the wrong type."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    processes: int = 1
    shutdown_timeout: float = 30.0
    recovery_min_age: float = 60.0
    backlog: int = 1024
    keepalive_timeout: float = 60.0
    cors_origins: str = ""

    @property
    def cors_origin_set(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())


@dataclass(frozen=True)
class WorkerSettings:
    processes: int = 0
    video_processes: int = 1
    webhook_processes: int = 1
    prefetch: int = 1
    job_timeout: float = 60.0
    max_attempts: int = 3
    max_retries: int = 6
    retry_base_delay: float = 0.5
    retry_max_delay: float = 10.0
    metrics_port: int = 0
    poll_interval: float = 0.02
    stall_margin: float = 30.0
    temp_dir: str = ""
    memory_limit: str = "1GiB"
    dead_letter_max_length: int = 10000
    dead_letter_max_age: float = 1209600.0


# The backends shipped, by the name config chooses them with (server.backends and worker.backends
# map each to its class); a "module:Class" of one's own is also taken.
BACKEND_NAMES = {"store": ("sqlite", "redis"), "queue": ("sqlite", "rabbitmq"), "files": ("filesystem", "s3")}


@dataclass(frozen=True)
class BackendSettings:
    store: str = "sqlite"
    queue: str = "sqlite"
    files: str = "filesystem"

    def __post_init__(self) -> None:
        for kind, names in BACKEND_NAMES.items():
            name = getattr(self, kind)
            if name not in names and ":" not in name:
                raise ConfigError(f"backends.{kind}: unknown backend {name!r}; choose one of {', '.join(names)}")


@dataclass(frozen=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "thumbnailify:"
    timeout: float = 2.0
    max_connections: int = 64
    pool_timeout: float = 10.0
    sentinels: str = ""  # "host:port,host:port": find the master through Sentinel instead of url
    sentinel_master: str = "mymaster"
    wait_replicas: int = 0  # replicas that must have each write before it counts as done (WAIT)

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        addresses = []
        for entry in self.sentinels.split(","):
            host, _, port = entry.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(f"redis.sentinels: {entry.strip()!r} is not host:port")
            addresses.append((host.strip("[]"), int(port)))
        return addresses

    def __post_init__(self) -> None:
        if self.sentinels.strip():
            self.sentinel_addresses()


@dataclass(frozen=True)
class RabbitMQSettings:
    url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    queue: str = "task_queue"
    publish_timeout: float = 5.0
    channels: int = 16
    queue_type: str = "classic"  # classic | quorum (a new queue name: RabbitMQ cannot convert one)

    def __post_init__(self) -> None:
        if self.queue_type not in ("classic", "quorum"):
            raise ConfigError(f"rabbitmq.queue_type: {self.queue_type!r} is not classic or quorum")


@dataclass(frozen=True)
class SQLiteSettings:
    path: str = "var/thumbnailify.db"
    lease_seconds: float = 300.0


@dataclass(frozen=True)
class FilesSettings:
    root: str = "var/media"


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str = ""  # empty: AWS S3 in region; else an S3-compatible server (SeaweedFS, MinIO...)
    bucket: str = "thumbnailify"
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = ""
    prefix: str = ""  # before every object name, e.g. "thumbnailify/"
    timeout: float = 10.0  # seconds for one request; connecting gets at most half of it


@dataclass(frozen=True)
class LimitsSettings:
    max_upload_bytes: int = 20 * 1024 * 1024
    max_files: int = 100
    upload_idle_timeout: float = 30.0
    upload_timeout: float = 300.0
    upload_memory: str = "64MiB"
    max_pixels: int = 50_000_000
    max_animation_pixels: int = 8_000_000
    magick_memory: str = "96MiB"
    magick_map: str = "0"
    magick_disk: str = "1GiB"
    magick_width: int = 16000
    magick_height: int = 16000


class SizeBox(typing.NamedTuple):
    name: str
    width: int
    height: int


@dataclass(frozen=True)
class ThumbnailSettings:
    width: int = 100
    height: int = 100
    sizes: str = ""  # "name=WxH,..."; empty: the one size default=<width>x<height>
    max_frames: int = 100
    jpeg_quality: int = 85

    def __post_init__(self) -> None:
        self.boxes()  # a bad value fails at load, naming the key, not at the first job

    def boxes(self) -> tuple[SizeBox, ...]:
        """The named boxes every image is made in, in config order (the first is the default)."""
        if not self.sizes.strip():
            return (SizeBox("default", self.width, self.height),)
        boxes: list[SizeBox] = []
        for entry in self.sizes.split(","):
            found = SIZE_ENTRY.fullmatch(entry.strip())
            if found is None:
                raise ConfigError(
                    f"thumbnail.sizes: {entry.strip()!r} is not name=WIDTHxHEIGHT "
                    "(name: a-z 0-9 _ -, e.g. default=100x100,large=400x400)"
                )
            box = SizeBox(found[1], int(found[2]), int(found[3]))
            if max(box.width, box.height) > MAX_SIDE:
                raise ConfigError(f"thumbnail.sizes: {box.name} is larger than {MAX_SIDE}x{MAX_SIDE}")
            if any(known.name == box.name for known in boxes):
                raise ConfigError(f"thumbnail.sizes: {box.name!r} is named twice")
            boxes.append(box)
        return tuple(boxes)


@dataclass(frozen=True)
class VideoSettings:
    scan_seconds: float = 5.0


@dataclass(frozen=True)
class AuthSettings:
    api_key: str = ""


@dataclass(frozen=True)
class RetentionSettings:
    raw_hours: float = 0.0
    media_days: float = 0.0
    sweep_seconds: float = 300.0


@dataclass(frozen=True)
class IdempotencySettings:
    ttl_seconds: float = 86400.0


@dataclass(frozen=True)
class WebhookSettings:
    secret: str = ""
    allowed_hosts: str = ""
    timeout: float = 5.0
    retry_base_delay: float = 5.0
    max_attempts: int = 8
    concurrency: int = 16
    per_host: int = 2


@dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"
    format: str = "text"


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    backends: BackendSettings = field(default_factory=BackendSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    rabbitmq: RabbitMQSettings = field(default_factory=RabbitMQSettings)
    sqlite: SQLiteSettings = field(default_factory=SQLiteSettings)
    files: FilesSettings = field(default_factory=FilesSettings)
    s3: S3Settings = field(default_factory=S3Settings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    thumbnail: ThumbnailSettings = field(default_factory=ThumbnailSettings)
    video: VideoSettings = field(default_factory=VideoSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    idempotency: IdempotencySettings = field(default_factory=IdempotencySettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    log: LogSettings = field(default_factory=LogSettings)

    def path(self, value: str) -> Path:
        """A configured path; relative ones are taken from the project root, not the cwd."""
        path = Path(value)
        return path if path.is_absolute() else PROJECT_ROOT / path


BYTE_UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def byte_size(text: str) -> int:
    """A size as config writes it ("96MiB", "1GiB", or plain bytes) in bytes."""
    for unit, factor in BYTE_UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def _coerce(value: object, kind: type, where: str) -> object:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if value is None and kind is str:
        return ""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def _section(cls: type, raw: dict[str, object], env: typing.Mapping[str, str], name: str) -> object:
    hints = typing.get_type_hints(cls)
    unknown = set(raw) - set(hints)
    if unknown:
        raise ConfigError(f"{name}: unknown keys {sorted(unknown)}")
    values: dict[str, object] = {}
    for key, kind in hints.items():
        env_name = f"{ENV_PREFIX}{name}_{key}".upper()
        if env_name in env:
            text = env[env_name]
            # Strings stay verbatim (an API key "0123" must not become 83); others parse as YAML.
            value: object = text if kind is str else yaml.safe_load(text)
            values[key] = _coerce(value, kind, env_name)
        elif key in raw:
            values[key] = _coerce(raw[key], kind, f"{name}.{key}")
    return cls(**values)


def load_settings(env: typing.Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file, apply THUMBNAILIFY_<SECTION>_<KEY> overrides, validate types."""
    env = os.environ if env is None else env
    path = Path(env.get(f"{ENV_PREFIX}CONFIG") or DEFAULT_CONFIG_FILE)
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    hints = typing.get_type_hints(Settings)
    unknown = set(raw) - set(hints)
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}")
    sections = {
        f.name: _section(hints[f.name], raw.get(f.name) or {}, env, f.name)
        for f in dataclasses.fields(Settings)
    }
    return Settings(**sections)  # type: ignore[arg-type]
