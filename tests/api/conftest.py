"""The API in process: the real app (`thumbnailify.server.app.create_app`) served by aiohttp's test
server through the service's own HTTP layer (`thumbnailify.server.http.protocol.AppRunner`), and
the real worker machinery run on demand, in one of three modes (the `api_mode` fixture):

- embedded: SQLite state and queue, media on a volume, in a temporary folder (the default);
- distributed: the real Redis and RabbitMQ backends, under a key prefix and queue of the test's own;
- s3: distributed, with media in the session's SeaweedFS bucket under a prefix of the test's own.

A module whose contract must hold in every mode overrides `api_mode` with params. A missing
service fails the run (tests/conftest.py's `real_services`), never skips it.

A test posts, then `await api.drain()` (or `await api.wait(media_id)`, which drains first) runs the
jobs queued so far through `worker.__main__`'s own `build` and `handle`, until nothing is left to
do: no process to start, no log to watch, so every step happens when the test says.

What needs real processes, sockets held open on a timer, outages or kill -9 stays in the system
tests (tests/system with tests/harness.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy

from tests.harness import NATS_MODE, S3_MODE, Stored, nats_server_complaints, service_env
from thumbnailify.kinds import media_kind
from thumbnailify.record import State
from thumbnailify.server.app import create_app
from thumbnailify.server.http.protocol import AppRunner
from thumbnailify.server.resources import RESOURCES
from thumbnailify.settings import Settings, load_settings
from thumbnailify.worker.__main__ import build, handle
from thumbnailify.worker.backends import Consumer, Store
from thumbnailify.worker.handlers.image import apply_limits
from thumbnailify.worker.kinds import Runner
from thumbnailify.worker.liveness import Heartbeat
from thumbnailify.worker.scratch import ScratchDir

T = TypeVar("T")
RAW_REPLY_SECONDS = 10.0
API_MODES = ("embedded", "distributed", S3_MODE, NATS_MODE)
# A 202 means the broker has the job; its delivery to the in-process consumer may take a moment.
DELIVERY_POLL_SECONDS = 0.05
DRAIN_SECONDS = 30.0  # photo items still Processing after this long are left as they are


def embedded_env(workdir: Path, **overrides: str) -> dict[str, str]:
    """Settings as THUMBNAILIFY_* variables: embedded backends, everything under workdir."""
    return {
        "THUMBNAILIFY_BACKENDS_STORE": "sqlite",
        "THUMBNAILIFY_BACKENDS_QUEUE": "sqlite",
        "THUMBNAILIFY_BACKENDS_FILES": "filesystem",
        "THUMBNAILIFY_FILES_ROOT": str(workdir / "media"),
        "THUMBNAILIFY_SQLITE_PATH": str(workdir / "state.db"),
        "THUMBNAILIFY_WORKER_TEMP_DIR": str(workdir / "scratch"),
        "THUMBNAILIFY_LOG_LEVEL": "INFO",
    } | overrides


def mode_env(mode: str, workdir: Path, s3: dict[str, str], **overrides: str) -> dict[str, str]:
    """Settings for a mode: embedded as above; distributed (and s3) as tests/harness.py gives a
    Service, so the keys and queues are the test's own."""
    if mode == "embedded":
        return embedded_env(workdir, **overrides)
    return service_env(mode, workdir) | {
        "THUMBNAILIFY_BACKENDS_FILES": "filesystem",
        "THUMBNAILIFY_WORKER_TEMP_DIR": str(workdir / "scratch"),
    } | s3 | overrides


@dataclass(frozen=True)
class Reply:
    """A response read to its end, shaped like the harness's (`status_code`, `json()`)."""

    status_code: int
    headers: CIMultiDictProxy[str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class ServiceTestServer(TestServer):
    """aiohttp's test server with the service's own HTTP layer (`thumbnailify.server.http.protocol.AppRunner`, set up as
    `server.__main__.serve` does): bodies never inflated, JSON answers to malformed requests..."""

    def __init__(self, app: web.Application, settings: Settings) -> None:
        super().__init__(app, host="127.0.0.1")
        self.settings = settings

    async def _make_runner(self, **_test_defaults: Any) -> web.AppRunner:
        conf = self.settings.server
        return AppRunner(self.app, keepalive_timeout=conf.keepalive_timeout, access_log=None,
                         shutdown_timeout=conf.shutdown_timeout)

    async def close(self) -> None:
        """As serve() stops: event streams would never finish on their own, and the shutdown would
        wait server.shutdown_timeout for them."""
        if RESOURCES in self.app:
            self.app[RESOURCES].events.close()
        await super().close()


@dataclass(frozen=True)
class WorkerParts:
    runner: Runner
    consumer: Consumer
    store: Store
    scratch: ScratchDir


class InProcessWorker:
    """One worker of a kind (photo unless told), as `python -m thumbnailify.worker` builds it, on a
    thread of its own. (A webhook worker's jobs run one at a time here, not in its pool.)

    Every call runs on that one thread, so the SQLite connections the worker opens (one per
    thread) stay its own, and the event loop keeps serving while a job runs. A job off the main
    thread has no SIGALRM time limit (see worker.jobs.time_limit); the test's own timeout bounds it.
    The watchdog and the signal handlers of `worker.__main__.main` are left out: the test process
    is not a worker to stop or restart.
    """

    def __init__(self, settings: Settings, kind: str = "image") -> None:
        self.settings = settings
        self.kind = kind
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="in-process-worker")
        self.parts: WorkerParts | None = None

    async def _on_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.thread, call)

    def _build(self) -> None:
        conf = self.settings.worker
        apply_limits(self.settings.limits)
        scratch = ScratchDir(self.settings.path(conf.temp_dir))
        runner, consumer, store = build(self.settings, self.kind, Heartbeat(conf.job_timeout + conf.stall_margin),
                                        scratch.path)
        self.parts = WorkerParts(runner, consumer, store, scratch)

    def _run_one(self) -> str | None:
        """The media_id of the job taken and run to its settlement; None when none came."""
        if self.parts is None:
            self._build()
        parts = self.parts
        assert parts is not None
        wait = 0 if self.settings.backends.queue == "sqlite" else DELIVERY_POLL_SECONDS
        delivery = parts.consumer.next(wait)
        if delivery is None:
            return None
        handle(parts.runner, parts.consumer, delivery)
        parts.scratch.empty()
        return delivery.media_id

    def _drain(self) -> int:
        done = 0
        while self._run_one() is not None:
            done += 1
        return done

    async def drain(self) -> int:
        """Run every job of its kind that can be taken now to its settlement, as `python -m thumbnailify.worker`
        would; how many ran. (A job deferred for a retry waits for its time.)"""
        return await self._on_thread(self._drain)

    async def run_one(self) -> str | None:
        """Take one job, as the worker's loop would, and run it: its media_id (None: none came)."""
        return await self._on_thread(self._run_one)

    def _close(self) -> None:
        if self.parts is not None:
            self.parts.consumer.close()
            self.parts.store.close()

    async def close(self) -> None:
        await self._on_thread(self._close)
        self.thread.shutdown()


class Api(Stored):
    """The app under test with the harness's vocabulary: post, get, upload, wait, thumbnail...
    and, from `Stored`, what its backends keep (files_of, stored, record, indexed...)."""

    def __init__(self, client: TestClient, settings: Settings, worker: InProcessWorker, workdir: Path, *,
                 mode: str, env: dict[str, str]) -> None:
        self.client = client
        self.workdir = workdir
        self.settings = settings
        self.worker = worker
        self.mode = mode
        self.env = env
        self.headers: dict[str, str] = {}  # sent with every request, like a requests.Session's

    @property
    def port(self) -> int:
        return self.client.server.port  # type: ignore[return-value]

    @property
    def url(self) -> str:
        return str(self.client.make_url(""))

    async def request(self, method: str, path: str, *, headers: dict | None = None, **kwargs: Any) -> Reply:
        async with self.client.request(method, path, headers=self.headers | (headers or {}), **kwargs) as response:
            return Reply(response.status, response.headers, await response.read())

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("DELETE", path, **kwargs)

    async def post(self, data: bytes, content_type: str | None, *, raw: bool = False, **kwargs: Any) -> Reply:
        """POST /images: the body in base64 unless raw, with this Content-Type (None: without one)."""
        body = data if raw else base64.b64encode(data)
        headers = {"Content-Type": content_type} if content_type is not None else {}
        headers |= kwargs.pop("headers", {})
        if content_type is None:  # aiohttp would add application/octet-stream to a bytes body
            kwargs["skip_auto_headers"] = ["Content-Type"]
        return await self.request("POST", "/images", data=body, headers=headers, **kwargs)

    async def upload(self, data: bytes, content_type: str) -> str:
        response = await self.post(data, content_type)
        assert response.status_code == 202, response.text
        return response.json()["media_id"]

    async def drain(self) -> int:
        """Run the queued photo jobs. On RabbitMQ a job the broker has confirmed may not have reached
        the consumer yet, so it drains until the store has no photo item left Processing (or, for a
        job deferred to a retry, until DRAIN_SECONDS)."""
        done = await self.worker.drain()
        if self.settings.backends.queue == "sqlite":
            return done  # the queue is the store: an empty take is exact
        deadline = asyncio.get_running_loop().time() + DRAIN_SECONDS
        while await self.processing_photos() and asyncio.get_running_loop().time() < deadline:
            done += await self.worker.drain()
        return done

    async def processing_photos(self) -> list[str]:
        """Every client's (read from the app's store: a client's key lists only its own)."""
        rows = await self.client.app[RESOURCES].store.page(1000, None, State.PROCESSING)
        return [media_id for media_id, _, record in rows if media_kind(record.media_type) == "image"]

    async def wait(self, media_id: str) -> dict:
        """The status once every queued job has run; the body with the HTTP status."""
        await self.drain()
        response = await self.get(f"/images/{media_id}")
        return response.json() | {"http_status": response.status_code}

    async def thumbnail(self, media_id: str) -> tuple[bytes, str]:
        response = await self.get(f"/images/{media_id}/thumbnail", params={"encoding": "binary"})
        assert response.status_code == 200, response.text
        return response.content, response.headers["Content-Type"]


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
def api_mode() -> str:
    """The mode of this module's apps: embedded unless the module says otherwise (see the docstring)."""
    return "embedded"


@pytest.fixture
async def make_api(aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, api_mode: str,
                   request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ApiFactory]:
    """Build the app (and its worker) in this module's mode with THUMBNAILIFY_* overrides; ready once
    /ready says so. Its Redis keys and RabbitMQ queues are removed after the test."""
    apis: list[Api] = []
    monkeypatch.setenv("MAGICK_TEMPORARY_PATH", "")  # a worker's ScratchDir sets it; restored after
    s3 = request.getfixturevalue("seaweed").settings_env() if api_mode == S3_MODE else {}

    async def make(**overrides: str) -> Api:
        workdir = tmp_path / f"api-{len(apis)}"
        env = mode_env(api_mode, workdir, s3, **overrides)
        settings = load_settings(env)
        worker = InProcessWorker(settings)
        client = await aiohttp_client(ServiceTestServer(create_app(settings), settings))
        api = Api(client, settings, worker, workdir, mode=api_mode, env=env)
        apis.append(api)
        ready = await client.get("/ready")
        assert ready.status == 200, f"{await ready.text()}\n{nats_server_complaints()}"
        return api

    yield make
    for api in apis:
        await api.worker.close()
        api.cleanup()


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    """The app with default settings and its worker."""
    return await make_api()


async def raw_request(port: int, head: str | bytes, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send bytes as they are (no client library fixing them up or cleaning the path); the first
    response back: status, lower-cased headers, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write((head.encode() if isinstance(head, str) else head) + body)
        await writer.drain()
        async with asyncio.timeout(RAW_REPLY_SECONDS):
            head_bytes = await reader.readuntil(b"\r\n\r\n")
            lines = head_bytes.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            payload = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(lines[0].split()[1]), headers, payload
    finally:
        writer.close()
