"""Settings: the YAML file, THUMBNAILIFY_* overrides, and the docs that describe them stay in step."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from common.config import DEFAULT_CONFIG_FILE, PROJECT_ROOT, ConfigError, Settings, SizeBox, load_settings


@pytest.fixture(autouse=True)
def real_services() -> None:
    """Pure unit tests: no Redis or RabbitMQ needed (overrides the session-wide check)."""


def all_keys() -> set[str]:
    return {
        f"{section.name}.{field.name}"
        for section in dataclasses.fields(Settings)
        for field in dataclasses.fields(section.default_factory())  # type: ignore[misc]
    }


def test_config_yaml_states_every_default() -> None:
    raw = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    defaults = Settings()
    for key in all_keys():
        section, name = key.split(".")
        assert name in raw[section], f"{key} missing from config.yaml"
        assert raw[section][name] == getattr(getattr(defaults, section), name), key
    assert load_settings({}) == defaults


def test_readme_config_table_names_every_key() -> None:
    table = [line for line in (PROJECT_ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    documented: set[str] = set()
    for line in table:
        section = None
        for found in re.findall(r"`([a-z0-9_]+(?:\.[a-z0-9_]+)?)`", line.split("|")[1]):
            section, _, name = found.rpartition(".") if "." in found else (section, ".", found)
            documented.add(f"{section}.{name}")
    assert all_keys() <= documented, sorted(all_keys() - documented)


def test_environment_overrides_with_types() -> None:
    settings = load_settings({
        "THUMBNAILIFY_SERVER_PORT": "9000",
        "THUMBNAILIFY_WORKER_JOB_TIMEOUT": "2",
        "THUMBNAILIFY_AUTH_API_KEY": "0123",
        "THUMBNAILIFY_BACKENDS_STORE": "redis",
    })
    assert settings.server.port == 9000
    assert settings.worker.job_timeout == 2.0 and isinstance(settings.worker.job_timeout, float)
    assert settings.auth.api_key == "0123"  # strings are taken verbatim, not parsed as YAML
    assert settings.backends.store == "redis"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [({"THUMBNAILIFY_SERVER_PORT": "eighty"}, "THUMBNAILIFY_SERVER_PORT"),
     ({"THUMBNAILIFY_SERVER_PORT": "true"}, "expected int")],
)
def test_wrong_types_are_refused(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(env)


def test_another_file_and_unknown_keys(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("server:\n  port: 7000\n")
    assert load_settings({"THUMBNAILIFY_CONFIG": str(good)}).server.port == 7000
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  prot: 7000\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings({"THUMBNAILIFY_CONFIG": str(bad)})
    worse = tmp_path / "worse.yaml"
    worse.write_text("srever: {}\n")
    with pytest.raises(ConfigError, match="srever"):
        load_settings({"THUMBNAILIFY_CONFIG": str(worse)})


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


@pytest.mark.parametrize(
    "value",
    ["large", "large=400", "large=400x", "Large=400x400", "large=0x400", "large=400x400,large=100x100",
     "a=100x100,,b=10x10", "big=5000x5000", "x=1e3x100", "sp ace=10x10"],
)
def test_bad_thumbnail_sizes_name_the_key(value: str) -> None:
    with pytest.raises(ConfigError, match=r"thumbnail\.sizes"):
        load_settings({"THUMBNAILIFY_THUMBNAIL_SIZES": value})


@pytest.mark.parametrize(
    ("env", "fragment"),
    [({"THUMBNAILIFY_RABBITMQ_QUEUE_TYPE": "stream"}, r"rabbitmq\.queue_type"),
     ({"THUMBNAILIFY_REDIS_SENTINELS": "127.0.0.1"}, r"redis\.sentinels"),
     ({"THUMBNAILIFY_REDIS_SENTINELS": "a:1,b:x"}, r"redis\.sentinels"),
     ({"THUMBNAILIFY_BACKENDS_STORE": "redsi"}, r"backends\.store: unknown backend 'redsi'"),
     ({"THUMBNAILIFY_BACKENDS_FILES": "S3"}, r"backends\.files")],
)
def test_bad_past_one_machine_values_name_the_key(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(env)


def test_sentinel_addresses() -> None:
    settings = load_settings({"THUMBNAILIFY_REDIS_SENTINELS": " 10.0.0.1:26379, [::1]:26380,sentinel-2:26381"})
    assert settings.redis.sentinel_addresses() == [("10.0.0.1", 26379), ("::1", 26380), ("sentinel-2", 26381)]
