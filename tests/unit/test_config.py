"""Settings: the YAML file, THUMBNAILIFY_* overrides, their checks, and the docs written from them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pydantic
import pytest
import yaml

from scripts import settings_docs
from thumbnailify.settings import (
    DEFAULT_CONFIG_FILE,
    NOT_SETTINGS,
    PROJECT_ROOT,
    SETTING_VARIABLES,
    ConfigError,
    Settings,
    SizeBox,
    default_settings,
    keys,
    load_settings,
    sections,
)

MISSPELT_ON_PURPOSE = {"THUMBNAILIFY_SREVER_PORT"}  # test_launcher.py's refused variable
TEXT_FILES = {".py", ".md", ".yaml", ".yml", ".sh", ".toml", ".txt", ".cfg", ".ini", ".env", ""}


def all_keys() -> set[str]:
    return {f"{section}.{key}" for section, model in sections().items() for key in keys(model)}


def refusal(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as refused:
        load_settings(env)
    return str(refused.value)


def test_docs_are_written_from_the_settings() -> None:
    """config/config.yaml and the table in docs/configuration.md are what scripts.settings_docs writes."""
    for path, text in settings_docs.documents().items():
        assert path.read_text() == text, f"{path.name} is out of date: run python -m scripts.settings_docs"
    assert settings_docs.main(["--check"]) == 0
    # One generated table, in docs/configuration.md: the README links to it instead of keeping a copy.
    assert settings_docs.TABLE_START not in (PROJECT_ROOT / "README.md").read_text()


def dotted(values: dict[str, object], prefix: str = "") -> set[str]:
    """Every leaf of a nested mapping as `a.b.c`."""
    return set().union(*(dotted(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
                         for key, value in values.items()))


def test_config_yaml_states_every_default() -> None:
    raw = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    assert dotted(raw) == all_keys()
    assert raw["thumbnail"]["quality"] == {"jpeg": 85, "webp": 80, "avif": 60}
    assert load_settings({}) == default_settings()


def test_settings_table_has_a_row_per_key_with_its_default() -> None:
    table = settings_docs.settings_table()
    assert [key for key in sorted(all_keys()) if f"| `{key}` |" not in table] == []
    assert "| `limits.upload_memory` | `64MiB` |" in table  # the default as users write it
    assert "| `server.cors_origins` | empty |" in table


def test_every_thumbnailify_variable_in_the_repository_is_a_setting_or_allowed() -> None:
    """Docs, deployments, tests and scripts name only variables the settings accept."""
    listed = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    named: set[str] = set()
    for name in listed.stdout.split():
        path = PROJECT_ROOT / name
        if path.suffix in TEXT_FILES and path != Path(__file__) and path.is_file():
            named |= set(re.findall(r"THUMBNAILIFY_[A-Z0-9][A-Z0-9_]*", path.read_text(errors="replace")))
    assert "THUMBNAILIFY_AUTH_API_KEY" in named
    assert sorted(named - NOT_SETTINGS - MISSPELT_ON_PURPOSE - SETTING_VARIABLES.keys()) == []


def test_environment_overrides_with_types() -> None:
    settings = load_settings({
        "THUMBNAILIFY_SERVER_PORT": "9000",
        "THUMBNAILIFY_WORKER_JOB_TIMEOUT": "2",
        "THUMBNAILIFY_AUTH_API_KEY": "0123",
        "THUMBNAILIFY_BACKENDS_STORE": "redis",
        "THUMBNAILIFY_LOG_LEVEL": "debug",
    })
    assert settings.server.port == 9000
    assert settings.worker.job_timeout == 2.0 and isinstance(settings.worker.job_timeout, float)
    assert settings.auth.api_key == "0123"  # strings are taken verbatim
    assert settings.backends.store == "redis"
    assert settings.log.level == "DEBUG"


def test_settings_are_immutable() -> None:
    settings = load_settings({})
    with pytest.raises(pydantic.ValidationError):
        settings.server.port = 1  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        settings.server = settings.server  # type: ignore[misc]


def test_variables_that_are_not_settings_are_allowed() -> None:
    env = {"THUMBNAILIFY_URL": "http://127.0.0.1:8080", "THUMBNAILIFY_API_KEY": "k", "OTHER_SERVER_PORT": "x"}
    assert load_settings(env) == default_settings()


@pytest.mark.parametrize(
    ("env", "message"),
    [({"THUMBNAILIFY_SERVER_PROT": "8081"},
      "THUMBNAILIFY_SERVER_PROT: no such setting; expected THUMBNAILIFY_<SECTION>_<KEY> of a key in "
      "config/config.yaml, or one of THUMBNAILIFY_ADMIN_KEY, THUMBNAILIFY_API_KEY, THUMBNAILIFY_CONFIG, "
      "THUMBNAILIFY_URL; "
      "did you mean THUMBNAILIFY_SERVER_PORT?"),
     ({"THUMBNAILIFY_WORKERS_PROCESSES": "2"},
      "THUMBNAILIFY_WORKERS_PROCESSES: no such setting; expected THUMBNAILIFY_<SECTION>_<KEY> of a key in "
      "config/config.yaml, or one of THUMBNAILIFY_ADMIN_KEY, THUMBNAILIFY_API_KEY, THUMBNAILIFY_CONFIG, "
      "THUMBNAILIFY_URL; "
      "did you mean THUMBNAILIFY_WORKER_PROCESSES?"),
     ({"THUMBNAILIFY_QQQQQQQQQQQQQQQQ": "x"},
      "THUMBNAILIFY_QQQQQQQQQQQQQQQQ: no such setting; expected THUMBNAILIFY_<SECTION>_<KEY> of a key in "
      "config/config.yaml, or one of THUMBNAILIFY_ADMIN_KEY, THUMBNAILIFY_API_KEY, THUMBNAILIFY_CONFIG, "
      "THUMBNAILIFY_URL")],
)
def test_unknown_thumbnailify_variables_are_refused(env: dict[str, str], message: str) -> None:
    assert refusal(env) == message


def test_a_renamed_key_says_its_new_name(tmp_path: Path) -> None:
    assert refusal({"THUMBNAILIFY_THUMBNAIL_JPEG_QUALITY": "90"}).endswith(
        "; it is THUMBNAILIFY_THUMBNAIL_QUALITY_JPEG now")
    old = tmp_path / "old.yaml"
    old.write_text("thumbnail:\n  jpeg_quality: 90\n")
    assert refusal({"THUMBNAILIFY_CONFIG": str(old)}).endswith("; it is thumbnail.quality.jpeg now")


def test_quality_per_format_from_the_file_and_the_environment(tmp_path: Path) -> None:
    """`thumbnail.quality.<format>`: a group of keys in the file, THUMBNAILIFY_THUMBNAIL_QUALITY_<FORMAT>
    over it, the rest of the group from the defaults."""
    config = tmp_path / "config.yaml"
    config.write_text("thumbnail:\n  quality:\n    webp: 70\n    avif: 50\n")
    settings = load_settings({"THUMBNAILIFY_CONFIG": str(config), "THUMBNAILIFY_THUMBNAIL_QUALITY_AVIF": "40"})
    assert settings.thumbnail.quality.model_dump() == {"jpeg": 85, "webp": 70, "avif": 40}
    assert SETTING_VARIABLES["THUMBNAILIFY_THUMBNAIL_QUALITY_WEBP"] == ("thumbnail", "quality.webp")


@pytest.mark.parametrize(
    ("text", "message"),
    [("thumbnail:\n  quality:\n    jepg: 80\n",
      "thumbnail.quality.jepg: unknown key in {}; expected a key of jpeg, webp, avif; did you mean jpeg?"),
     ("thumbnail:\n  quality: 80\n", "thumbnail.quality in {}: got 80; expected a mapping of its keys"),
     ("thumbnail:\n  quality:\n    png: 80\n",
      "thumbnail.quality.png: unknown key in {}; expected a key of jpeg, webp, avif"),
     ("thumbnail:\n  quality:\n    webp: 0\n",
      "thumbnail.quality.webp in {}: got 0; expected a whole number from 1 to 100")],
)
def test_bad_quality_groups_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    assert refusal({"THUMBNAILIFY_CONFIG": str(config)}) == message.format(config)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [("THUMBNAILIFY_SERVER_PORT", "eighty", "got 'eighty'; expected a whole number from 1 to 65535"),
     ("THUMBNAILIFY_SERVER_PORT", "true", "got 'true'; expected a whole number from 1 to 65535"),
     ("THUMBNAILIFY_SERVER_PORT", "0", "got '0'; expected a whole number from 1 to 65535"),
     ("THUMBNAILIFY_SERVER_PORT", "65536", "got '65536'; expected a whole number from 1 to 65535"),
     ("THUMBNAILIFY_WORKER_METRICS_PORT", "-1", "got '-1'; expected a whole number from 0 to 65535"),
     ("THUMBNAILIFY_THUMBNAIL_QUALITY_JPEG", "0", "got '0'; expected a whole number from 1 to 100"),
     ("THUMBNAILIFY_THUMBNAIL_QUALITY_AVIF", "101", "got '101'; expected a whole number from 1 to 100"),
     ("THUMBNAILIFY_THUMBNAIL_WIDTH", "5000", "got '5000'; expected a whole number from 1 to 4096"),
     ("THUMBNAILIFY_WORKER_JOB_TIMEOUT", "0", "got '0'; expected a number above 0"),
     ("THUMBNAILIFY_WORKER_JOB_TIMEOUT", "nan", "got 'nan'; expected a number above 0"),
     ("THUMBNAILIFY_REDIS_TIMEOUT", "-2", "got '-2'; expected a number above 0"),
     ("THUMBNAILIFY_RETENTION_RAW_HOURS", "-1", "got '-1'; expected a number of 0 or more"),
     ("THUMBNAILIFY_WORKER_PROCESSES", "-1", "got '-1'; expected a whole number of 0 or more"),
     ("THUMBNAILIFY_WORKER_PREFETCH", "0", "got '0'; expected a whole number of 1 or more"),
     ("THUMBNAILIFY_WORKER_MAX_ATTEMPTS", "1.5", "got '1.5'; expected a whole number of 1 or more"),
     ("THUMBNAILIFY_SERVER_HOST", "", "got ''; expected text, not empty"),
     ("THUMBNAILIFY_RABBITMQ_QUEUE_TYPE", "stream", "got 'stream'; expected one of classic, quorum"),
     ("THUMBNAILIFY_LOG_FORMAT", "xml", "got 'xml'; expected one of text, json"),
     ("THUMBNAILIFY_LOG_LEVEL", "loud", "got 'LOUD'; expected one of CRITICAL, ERROR, WARNING, INFO, DEBUG")],
)
def test_bounds_and_types_are_checked(variable: str, value: str, message: str) -> None:
    section, key = SETTING_VARIABLES[variable]
    assert refusal({variable: value}) == f"{variable} sets {section}.{key}: {message}"


@pytest.mark.parametrize(
    ("value", "size"),
    [("64MiB", 64 << 20), ("1GiB", 1 << 30), ("0.5KiB", 512), ("1024", 1024), ("0", 0), (" 2MiB ", 2 << 20)],
)
def test_byte_sizes_are_bytes(value: str, size: int) -> None:
    assert load_settings({"THUMBNAILIFY_LIMITS_MAGICK_MEMORY": value}).limits.magick_memory == size


def test_byte_size_defaults_are_bytes() -> None:
    limits = default_settings().limits
    assert (limits.upload_memory, limits.magick_memory, limits.magick_map, limits.magick_disk) == (
        64 << 20, 96 << 20, 0, 1 << 30,
    )
    assert limits.max_upload_bytes == 20971520


@pytest.mark.parametrize(
    ("value", "message"),
    [("64MB", "'64MB' is not a byte size; expected a whole number of bytes or a number with KiB, MiB, GiB, e.g. 64MiB"),
     ("lots", "'lots' is not a byte size; expected a whole number of bytes or a number with KiB, MiB, GiB, e.g. 64MiB"),
     ("infGiB", "'infGiB' is not a byte size; expected a whole number of bytes or a number with KiB, MiB, GiB, "
                "e.g. 64MiB"),
     ("-1MiB", "got '-1MiB'; expected a whole number of 0 or more")],
)
def test_bad_byte_sizes_are_refused(value: str, message: str) -> None:
    assert refusal({"THUMBNAILIFY_LIMITS_UPLOAD_MEMORY": value}) == (
        f"THUMBNAILIFY_LIMITS_UPLOAD_MEMORY sets limits.upload_memory: {message}"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [("THUMBNAILIFY_BACKENDS_STORE", "redsi",
      "unknown backend 'redsi'; expected sqlite, redis or nats, or a module:Class of one's own"),
     ("THUMBNAILIFY_BACKENDS_FILES", "S3",
      "unknown backend 'S3'; expected filesystem or s3, or a module:Class of one's own"),
     ("THUMBNAILIFY_BACKENDS_QUEUE", "my.queue:",
      "unknown backend 'my.queue:'; expected sqlite, rabbitmq or nats, or a module:Class of one's own")],
)
def test_bad_backend_names_are_refused(variable: str, value: str, message: str) -> None:
    section, key = SETTING_VARIABLES[variable]
    assert refusal({variable: value}) == f"{variable} sets {section}.{key}: {message}"


@pytest.mark.parametrize(("store", "queue"), [("nats", "rabbitmq"), ("redis", "nats"), ("nats", "sqlite")])
def test_nats_is_chosen_for_store_and_queue_together(store: str, queue: str) -> None:
    refused = refusal({"THUMBNAILIFY_BACKENDS_STORE": store, "THUMBNAILIFY_BACKENDS_QUEUE": queue})
    assert "backends.store and backends.queue are `nats` together or not at all" in refused
    assert f"store {store!r}, queue {queue!r}" in refused


def test_backends_by_name_or_import_string() -> None:
    settings = load_settings({
        "THUMBNAILIFY_BACKENDS_QUEUE": "rabbitmq", "THUMBNAILIFY_BACKENDS_FILES": "my.files:Bucket",
    })
    assert (settings.backends.queue, settings.backends.files) == ("rabbitmq", "my.files:Bucket")


def test_another_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("server:\n  port: 7000\nlimits:\n  upload_memory: 1MiB\nauth:\n")
    settings = load_settings({"THUMBNAILIFY_CONFIG": str(good), "THUMBNAILIFY_SERVER_HOST": "0.0.0.0"})
    assert (settings.server.port, settings.server.host, settings.limits.upload_memory) == (7000, "0.0.0.0", 1 << 20)
    assert load_settings({"THUMBNAILIFY_CONFIG": str(good), "THUMBNAILIFY_SERVER_PORT": "7001"}).server.port == 7001


@pytest.mark.parametrize(
    ("text", "message"),
    [("server:\n  prot: 7000\n",
      "server.prot: unknown key in {file}; expected a key of host, port, processes, shutdown_timeout, "
      "recovery_min_age, backlog, keepalive_timeout, cors_origins, max_event_streams, event_stream_seconds, "
      "event_send_timeout; did you mean port?"),
     ("srever: {}\n",
      "srever: unknown section in {file}; expected a section of backends, server, worker, redis, rabbitmq, nats, "
      "sqlite, files, s3, limits, thumbnail, video, auth, retention, uploads, idempotency, webhooks, log; "
      "did you mean server?"),
     ("server:\n  port: true\n", "server.port in {file}: got True; expected a whole number from 1 to 65535"),
     ("server:\n  port: 8080.5\n", "server.port in {file}: got 8080.5; expected a whole number from 1 to 65535"),
     ("auth:\n  api_key: [a, b]\n", "auth.api_key in {file}: got ['a', 'b']; expected text"),
     ("server: 5\n", "server in {file}: got 5; expected a mapping of its keys"),
     ("- server\n", "{file}: expected a mapping of sections at the top level, got list"),
     ("server:\n  port: [\n", "{file}: not valid YAML at line 3: did not find expected node content")],
)
def test_bad_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert refusal({"THUMBNAILIFY_CONFIG": str(path)}) == message.format(file=path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert refusal({"THUMBNAILIFY_CONFIG": str(missing)}) == (
        f"THUMBNAILIFY_CONFIG: cannot read {missing}: No such file or directory"
    )


def test_relative_paths_are_from_the_project_root() -> None:
    settings = Settings()
    assert settings.path(settings.files.root) == PROJECT_ROOT / "var" / "media"
    assert settings.path("/data/media") == Path("/data/media")


def test_thumbnail_sizes_default_to_width_and_height() -> None:
    assert Settings().thumbnail.boxes() == (SizeBox("default", 100, 100),)
    settings = load_settings({"THUMBNAILIFY_THUMBNAIL_WIDTH": "200", "THUMBNAILIFY_THUMBNAIL_HEIGHT": "150"})
    assert settings.thumbnail.boxes() == (SizeBox("default", 200, 150),)


def test_thumbnail_sizes_in_config_order() -> None:
    settings = load_settings({"THUMBNAILIFY_THUMBNAIL_SIZES": " small=64x64, default=100x100,large=400x300 "})
    assert settings.thumbnail.boxes() == (
        SizeBox("small", 64, 64), SizeBox("default", 100, 100), SizeBox("large", 400, 300),
    )


def test_thumbnail_sizes_may_name_a_format() -> None:
    settings = load_settings({"THUMBNAILIFY_THUMBNAIL_SIZES":
                              "default=100x100,card=400x400:webp,hero=1200x1200:AVIF,a=1x1:jpeg,b=2x2:png,c=3x3:gif"})
    assert settings.thumbnail.boxes() == (
        SizeBox("default", 100, 100), SizeBox("card", 400, 400, "webp"), SizeBox("hero", 1200, 1200, "avif"),
        SizeBox("a", 1, 1, "jpeg"), SizeBox("b", 2, 2, "png"), SizeBox("c", 3, 3, "gif"),
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [("card=400x400:tiff",
      "'card=400x400:tiff' names no thumbnail format 'tiff'; expected one of jpeg, png, webp, avif, gif, or none "
      "(the source's own)"),
     ("card=400x400:jpg", "'card=400x400:jpg' names no thumbnail format 'jpg'; expected one of jpeg, png, webp, "
                          "avif, gif, or none (the source's own)"),
     ("card=400x400:", "'card=400x400:' names no thumbnail format ''; expected one of jpeg, png, webp, avif, gif, "
                       "or none (the source's own)"),
     ("card=400x400:heic", "'card=400x400:heic' names no thumbnail format 'heic'; expected one of jpeg, png, webp, "
                           "avif, gif, or none (the source's own)"),
     ("card=400x400:webp:avif", "'card=400x400:webp:avif' is not name=WIDTHxHEIGHT[:format]; expected e.g. "
                                "default=100x100,large=400x400:webp (name: a-z 0-9 _ -)"),
     ("card=400x0:webp", "'card=400x0:webp' is not name=WIDTHxHEIGHT[:format]; expected e.g. "
                         "default=100x100,large=400x400:webp (name: a-z 0-9 _ -)")],
)
def test_a_bad_size_format_fails_at_start(value: str, message: str) -> None:
    assert refusal({"THUMBNAILIFY_THUMBNAIL_SIZES": value}) == (
        f"THUMBNAILIFY_THUMBNAIL_SIZES sets thumbnail.sizes: {message}")


@pytest.mark.parametrize(
    "value",
    ["large", "large=400", "large=400x", "Large=400x400", "large=0x400", "large=400x400,large=100x100",
     "a=100x100,,b=10x10", "big=5000x5000", "x=1e3x100", "sp ace=10x10", "a=10x10:web p", "a=10x10 :webp"],
)
def test_bad_thumbnail_sizes_name_the_key(value: str) -> None:
    assert refusal({"THUMBNAILIFY_THUMBNAIL_SIZES": value}).startswith(
        "THUMBNAILIFY_THUMBNAIL_SIZES sets thumbnail.sizes: "
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [("THUMBNAILIFY_THUMBNAIL_SIZES", "large",
      "'large' is not name=WIDTHxHEIGHT[:format]; expected e.g. default=100x100,large=400x400:webp "
      "(name: a-z 0-9 _ -)"),
     ("THUMBNAILIFY_THUMBNAIL_SIZES", "big=5000x5000", "big is larger than 4096x4096; expected a smaller box"),
     ("THUMBNAILIFY_THUMBNAIL_SIZES", "a=1x1,a=2x2", "'a' is named twice; expected each name once"),
     ("THUMBNAILIFY_REDIS_SENTINELS", "127.0.0.1", "'127.0.0.1' is not host:port; expected host:port,host:port"),
     ("THUMBNAILIFY_REDIS_SENTINELS", "a:1,b:x", "'b:x' is not host:port; expected host:port,host:port"),
     ("THUMBNAILIFY_REDIS_SENTINELS", "a:70000", "'a:70000' is not host:port; expected host:port,host:port"),
     ("THUMBNAILIFY_SERVER_CORS_ORIGINS", "https://a.example,app.example",
      "'app.example' is not an origin; expected scheme://host[:port], e.g. https://app.example"),
     ("THUMBNAILIFY_SERVER_CORS_ORIGINS", "https://a.example/page",
      "'https://a.example/page' is not an origin; expected scheme://host[:port], e.g. https://app.example"),
     ("THUMBNAILIFY_WEBHOOKS_ALLOWED_HOSTS", "hooks.example,https://x.example",
      "'https://x.example' is not a host; expected host, host:port or *.domain (no scheme or path)")],
)
def test_bad_lists_name_the_variable_and_the_key(variable: str, value: str, message: str) -> None:
    section, key = SETTING_VARIABLES[variable]
    assert refusal({variable: value}) == f"{variable} sets {section}.{key}: {message}"


def test_lists() -> None:
    settings = load_settings({
        "THUMBNAILIFY_REDIS_SENTINELS": " 10.0.0.1:26379, [::1]:26380,sentinel-2:26381",
        "THUMBNAILIFY_SERVER_CORS_ORIGINS": "https://a.example/, http://127.0.0.1:8080",
        "THUMBNAILIFY_WEBHOOKS_ALLOWED_HOSTS": "hooks.example, *.example.org, 127.0.0.1:9000, [::1]:9",
    })
    assert settings.redis.sentinel_addresses() == [("10.0.0.1", 26379), ("::1", 26380), ("sentinel-2", 26381)]
    assert settings.server.cors_origin_set == {"https://a.example", "http://127.0.0.1:8080"}
    assert settings.webhooks.allowed_hosts == "hooks.example, *.example.org, 127.0.0.1:9000, [::1]:9"


def deployment_environments() -> dict[str, dict[str, str]]:
    """The THUMBNAILIFY_ settings each shipped deployment gives its processes."""
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    found = {f"compose {name}": {key: str(value) for key, value in service.get("environment", {}).items()}
             for name, service in compose["services"].items() if service.get("environment")}
    k8s: dict[str, str] = {}
    for name in ("configmap.yaml", "secret.yaml"):
        for document in yaml.safe_load_all((PROJECT_ROOT / "deploy" / "k8s" / name).read_text()):
            k8s |= document.get("data", {}) | document.get("stringData", {})
    found["k8s"] = k8s
    return {name: env for name, env in found.items() if any(key.startswith("THUMBNAILIFY_") for key in env)}


def test_shipped_deployments_have_valid_settings() -> None:
    environments = deployment_environments()
    assert {"compose server", "k8s"} <= environments.keys()
    for name, env in environments.items():
        settings = load_settings(env)
        assert settings.backends.store == "redis", name
