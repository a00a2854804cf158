"""Fixtures: the real Redis, RabbitMQ and NATS must answer (a missing one fails the run, never skips it)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import nats.errors
import pika
import pytest
import redis

import thumbnailify.worker  # noqa: F401 - first: it sets ImageMagick's variables before any test module loads Wand
from scripts.seaweed import DEFAULT_PORTS, SeaweedFS
from tests.harness import AMQP_URL, MODES, NATS_URL, REDIS_URL, S3_MODE, Service, free_port, prepare_shared_nats

PHOTOS = Path(__file__).resolve().parent / "data" / "photos"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first. xdist's worksteal hands each test process a block of the list and lets
    the idle ones take from the end of the others' blocks: the long tests then start at once, one
    after another in the first process, while the rest of its block goes to the others. A long test
    near the end of the list ran alone at the end of the run."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session", autouse=True)
def real_services() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not answering at {REDIS_URL} (run `make services`): {exc}")
    try:
        pika.BlockingConnection(pika.URLParameters(AMQP_URL)).close()
    except pika.exceptions.AMQPError as exc:
        pytest.fail(f"RabbitMQ is not answering at {AMQP_URL} (run `make services`): {exc!r}")
    try:
        asyncio.run(prepare_shared_nats())
    except (OSError, nats.errors.Error) as exc:
        pytest.fail(f"NATS is not answering at {NATS_URL} (run `make services`): {exc!r}")


@pytest.fixture(scope="session", autouse=True)
def normal_scheduling() -> None:
    """A test process left in a real-time class (a native library may switch it) would pass it on to
    every service it starts, and they would starve the shared Redis and RabbitMQ of CPU."""
    policy = os.sched_getscheduler(0)
    if policy in (os.SCHED_FIFO, os.SCHED_RR):
        pytest.fail(f"the test process runs under real-time scheduling (policy {policy}); see tests/videos.py")


def running(service: Service) -> Iterator[Service]:
    with service:
        yield service


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A real S3 server (SeaweedFS, from requirements-dev.txt) on spare ports, for the s3 mode."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"), ports={flag: free_port() for flag in DEFAULT_PORTS})
    server.start()
    yield server
    server.stop()


def service_in(request: pytest.FixtureRequest, workdir: Path, **overrides: str) -> Service:
    """A Service in the mode the fixture is parametrised with; s3 brings the suite's SeaweedFS."""
    mode = request.param
    if mode == S3_MODE:
        overrides = request.getfixturevalue("seaweed").settings_env() | overrides
    return Service(mode, workdir, **overrides)


@pytest.fixture(scope="module", params=MODES)
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The whole service with two workers, in each mode: behaviour must not differ between them."""
    yield from running(Service(request.param, tmp_path_factory.mktemp(request.param)))


@pytest.fixture(scope="module", params=MODES)
def idle_service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """No workers: every accepted job stays Processing."""
    idle = Service(request.param, tmp_path_factory.mktemp(f"idle-{request.param}"), workers=0, video_workers=0)
    yield from running(idle)


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(PHOTOS.iterdir()) if p.suffix in (".jpg", ".png")}
