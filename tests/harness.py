"""Start the real service as processes, the way `make run` / `make stack` do, and talk HTTP to it.

Each Service gets its own volume, SQLite file, Redis key prefix, RabbitMQ queue and NATS stream (with
its buckets), so tests never see each other's jobs even on one shared Redis, RabbitMQ and NATS.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TypeVar

import nats
import nats.errors
import obstore
import pika
import psutil
import redis
import requests
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError, KeyNotFoundError, NotFoundError

from thumbnailify.backends.nats.layout import BUCKETS, dead_stream, index_key, job_consumers
from thumbnailify.backends.s3.bucket import open_bucket
from thumbnailify.kinds import KINDS, MEDIA_KINDS, dead_letter_queue, lane_queues, queue_name
from thumbnailify.lanes import Priority
from thumbnailify.record import DEFAULT_OWNER
from thumbnailify.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def run_sizes() -> str:
    """The thumbnail sizes `make run` gives the service (the Makefile's RUN_SIZES)."""
    found = re.search(r"^RUN_SIZES := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, "the Makefile sets no RUN_SIZES"
    return found[1]
REDIS_PORT = 6379
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
AMQP_PORT = 5672
AMQP_URL = f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/%2F"
MODES = ("embedded", "distributed")
S3_MODE = "s3"  # distributed, with media in a bucket (a SeaweedFS the suite starts) instead of a volume
NATS_MODE = "nats"  # state, queue and history in one NATS JetStream log; media on a volume
ALL_MODES = (*MODES, NATS_MODE)  # the families the shared API and fault suites run in
# On NATS the job of a worker killed mid-job returns one nats.ack_wait later (docs/operations.md,
# "Crashes"): 3 s for a test's service instead of the default 30.
KILLED_JOB_RETURNS = {NATS_MODE: {"THUMBNAILIFY_NATS_ACK_WAIT": "3"}}
NATS_PORT = 4222
NATS_URL = f"nats://127.0.0.1:{NATS_PORT}"
TERMINAL = ("Completed", "Error")
# A worker's ready line, in text or JSON logs.
PHOTO_WORKER_READY = re.compile(r'worker ready"?[^\n]*?kind"?[=:] ?"?image')
VIDEO_WORKER_READY = re.compile(r'worker ready"?[^\n]*?kind"?[=:] ?"?video')


def _local_port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


# Below the kernel's ephemeral range: a port from it (bind to port 0) can be taken by any outgoing
# connection before the service binds it, and on a loaded machine one was.
SERVICE_PORTS = range(20000, min(32000, _local_port_range()[0]))


def free_port() -> int:
    """A port nothing listens on now, outside the range the kernel hands to outgoing connections."""
    for port in random.sample(SERVICE_PORTS, 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {SERVICE_PORTS}")


def service_env(mode: str, workdir: Path, **overrides: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    env = {
        "THUMBNAILIFY_SERVER_PORT": str(free_port()),
        "THUMBNAILIFY_FILES_ROOT": str(workdir / "media"),
        "THUMBNAILIFY_SQLITE_PATH": str(workdir / "state.db"),
        "THUMBNAILIFY_REDIS_URL": REDIS_URL,
        "THUMBNAILIFY_REDIS_PREFIX": f"test-{tag}:",
        "THUMBNAILIFY_RABBITMQ_URL": AMQP_URL,
        "THUMBNAILIFY_RABBITMQ_QUEUE": f"test-{tag}",
        "THUMBNAILIFY_BACKENDS_STORE": {"embedded": "sqlite", NATS_MODE: "nats"}.get(mode, "redis"),
        "THUMBNAILIFY_BACKENDS_QUEUE": {"embedded": "sqlite", NATS_MODE: "nats"}.get(mode, "rabbitmq"),
        "THUMBNAILIFY_NATS_SERVERS": NATS_URL,
        "THUMBNAILIFY_NATS_STREAM": f"test-{tag}",
        "THUMBNAILIFY_S3_PREFIX": f"test-{tag}/",
        "THUMBNAILIFY_LOG_LEVEL": "INFO",
    }
    env.update(overrides)
    return env


def delete_queues(base: str) -> None:
    """Every RabbitMQ queue a service on `base` (rabbitmq.queue) declares: each kind's, per lane, and
    its dead queue."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for kind in KINDS:
            queue = queue_name(base, kind)
            for name in (*(name for names in lane_queues(queue, kind).values() for name in names),
                         dead_letter_queue(queue)):
                channel.queue_delete(name)
    finally:
        connection.close()


class Stored:
    """What a service in one mode keeps, read straight from its backends (not through the API):
    shared by the real processes (`Service`) and the app in process (tests/api's `Api`).
    Needs `mode` and `env` (its THUMBNAILIFY_* variables)."""

    mode: str
    env: dict[str, str]

    def cleanup(self) -> None:
        """Remove this service's Redis keys and RabbitMQ queues, or its NATS stream and buckets."""
        if self.mode == "embedded":
            return
        if self.mode == NATS_MODE:
            on_nats(self.env, remove_nats_stream)
            return
        if not self.env.get("THUMBNAILIFY_REDIS_SENTINELS"):  # else the Redis is the test's own
            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(f"{self.env['THUMBNAILIFY_REDIS_PREFIX']}*"))
            if keys:
                client.delete(*keys)
            client.close()
        delete_queues(self.env["THUMBNAILIFY_RABBITMQ_QUEUE"])

    # -- what is stored ---------------------------------------------------------------------
    @property
    def queue(self) -> str:
        return self.env["THUMBNAILIFY_RABBITMQ_QUEUE"]

    @property
    def redis_url(self) -> str:
        return self.env["THUMBNAILIFY_REDIS_URL"]

    def media_dir(self, kind: str) -> Path:
        return Path(self.env["THUMBNAILIFY_FILES_ROOT"]) / kind

    def files_of(self, media_id: str) -> list[Path]:
        """What names the item on the volume (or in the bucket): `raw/<id>`, `thumbs/<id>`..."""
        if self.mode == S3_MODE:
            found = set()
            for name in self.objects():
                parts = PurePosixPath(name).parts
                hit = next((i for i, part in enumerate(parts) if media_id in part), None)
                if hit is not None:
                    found.add(Path(*parts[: hit + 1]))
            return sorted(found)
        root = Path(self.env["THUMBNAILIFY_FILES_ROOT"])
        return sorted(p for p in root.rglob(f"*{media_id}*"))

    def stored(self, folder: str) -> list[str]:
        """Names in a folder of the layout (`raw`, `thumbs`), on the volume or in the bucket."""
        if self.mode == S3_MODE:
            return sorted({PurePosixPath(name).parts[1] for name in self.objects(folder)})
        path = self.media_dir(folder)
        return sorted(p.name for p in path.iterdir()) if path.exists() else []

    def wait_uploads_removed(self, timeout: float = 10) -> None:
        """Until no upload is stored: a worker removes one just after it records the item's end
        (retention.raw_hours 0), so a terminal state seen by a client may come a moment earlier."""
        wait_until(lambda: self.stored("raw") == [], timeout, "the uploads removed")

    def objects(self, folder: str = "") -> list[str]:
        """Names of this service's objects in the bucket (s3 mode), e.g. raw/<id>."""
        bucket = open_bucket(load_settings(self.env).s3)
        return sorted(meta["path"] for batch in obstore.list(bucket, folder or None) for meta in batch)

    def record(self, media_id: str) -> dict[str, str] | None:
        """The stored state record, read straight from the backend (not through the API)."""
        if self.mode == NATS_MODE:
            return on_nats(self.env, lambda js, stream: nats_value(js, f"{stream}_records", media_id))
        if self.mode != "embedded":
            client = redis.Redis.from_url(self.redis_url, decode_responses=True)
            try:
                return client.hgetall(f"{self.env['THUMBNAILIFY_REDIS_PREFIX']}media:{media_id}") or None
            finally:
                client.close()
        conn = sqlite3.connect(self.env["THUMBNAILIFY_SQLITE_PATH"])
        try:
            row = conn.execute("SELECT record FROM media WHERE media_id = ?", (media_id,)).fetchone()
        finally:
            conn.close()
        return json.loads(row[0]) if row else None

    def indexed(self, media_id: str) -> bool:
        if self.mode == NATS_MODE:
            return on_nats(self.env, lambda js, stream: nats_indexed(js, stream, media_id))
        if self.mode != "embedded":
            client = redis.Redis.from_url(self.redis_url)
            try:
                return client.zscore(f"{self.env['THUMBNAILIFY_REDIS_PREFIX']}index", media_id) is not None
            finally:
                client.close()
        return self.record(media_id) is not None


T = TypeVar("T")


def on_nats(env: dict[str, str], call: Callable[[JetStreamContext, str], Awaitable[T]]) -> T:
    """Run one call with a JetStream context of the service's NATS, on a thread of its own (the
    caller may be inside an event loop: tests/api)."""
    async def connected() -> T:
        client = await nats.connect(env.get("THUMBNAILIFY_NATS_SERVERS", NATS_URL))
        try:
            return await call(client.jetstream(), env["THUMBNAILIFY_NATS_STREAM"])
        finally:
            await client.close()

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, connected()).result()


async def nats_value(js: JetStreamContext, bucket: str, key: str) -> dict[str, str] | None:
    try:
        entry = await (await js.key_value(bucket)).get(key)
    except (KeyNotFoundError, BucketNotFoundError):
        return None
    return json.loads(entry.value or b"{}")


async def nats_indexed(js: JetStreamContext, stream: str, media_id: str) -> bool:
    """Whether any state's list index names the item (its keys: `<state>.<owner>.<micros>.<id>`)."""
    info = await js.stream_info(f"KV_{stream}_index", subjects_filter=f"$KV.{stream}_index.*.*.*.{media_id}")
    return bool(info.state.subjects)


async def nats_history(js: JetStreamContext, stream: str, media_id: str) -> list[tuple[str, dict[str, str]]]:
    """Every message of an item in the log, oldest first: (event, the record after it)."""
    found = []
    subscription = await js.subscribe(f"{stream}.media.{media_id}.>", ordered_consumer=True)
    try:
        while True:
            try:
                message = await subscription.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                return found
            event = message.subject.split(".", 3)[3]
            found.append((event, json.loads(message.data) if message.data.startswith(b"{") else {}))
    finally:
        await subscription.unsubscribe()


async def nats_write_records(js: JetStreamContext, stream: str,
                             records: dict[str, tuple[dict[str, str], float]]) -> None:
    """Write records straight into the buckets, as the server would have: each with its score and
    one index entry for its state (entries it had before removed). {media id: (record, score)}."""
    index, kept = await js.key_value(f"{stream}_index"), await js.key_value(f"{stream}_records")
    listed = await js.stream_info(f"KV_{stream}_index", subjects_filter=f"$KV.{stream}_index.>")
    former = [subject.split(".", 2)[2] for subject in listed.state.subjects or {}]

    async def write(media_id: str, record: dict[str, str], score: float) -> None:
        for key in former:
            if key.endswith(f".{media_id}"):
                await index.purge(key)
        await index.put(index_key(record["state"], record.get("owner") or DEFAULT_OWNER, score, media_id), b"")
        await kept.put(media_id, json.dumps(record | {"score": repr(score)}).encode())

    items = list(records.items())
    for start in range(0, len(items), 100):  # a hundred at once: quick, and no flood of a shared NATS
        await asyncio.gather(*(write(media_id, *entry) for media_id, entry in items[start:start + 100]))


async def nats_jobs_waiting(js: JetStreamContext, stream: str) -> int:
    """Photo and video jobs in the log no worker has taken yet, every lane."""
    infos = [await js.consumer_info(stream, consumer)
             for kind in MEDIA_KINDS for consumer in job_consumers(kind)]
    return sum(info.num_pending or 0 for info in infos)


async def nats_lose_jobs(js: JetStreamContext, stream: str) -> None:
    """Remove every job message from the log, as if lost between the store and the queue."""
    await js.purge_stream(stream, subject=f"{stream}.media.*.queued.>")


async def nats_dead_letters(js: JetStreamContext, stream: str) -> int:
    return (await js.stream_info(dead_stream(stream))).state.messages


async def remove_nats_stream(js: JetStreamContext, stream: str) -> None:
    for name in (stream, dead_stream(stream), *(f"KV_{stream}_{role}" for role in BUCKETS)):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)



STALE_AFTER = 3600.0  # seconds: no test lasts an hour, so a test stream this old was left by a killed run
ANCHOR_STREAM = "thumbnailify-tests-anchor"  # never deleted: see prepare_shared_nats


async def prepare_shared_nats(url: str = NATS_URL) -> int:
    """Anchor the shared NATS server's account folder, then remove the streams and buckets of tests
    whose run was killed before its cleanup (they hold the server's files open: enough of them and
    it refuses to create streams); another run's live streams are younger than STALE_AFTER and stay.
    Returns how many went.

    The anchor: when its last stream is deleted, nats-server 2.9 removes the account's folder, and
    a stream created by another test at that moment fails ("could not create storage directory ...
    no such file or directory", seen as "error creating store for stream"). A stream that is never
    deleted keeps the folder."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        with contextlib.suppress(BadRequestError):  # made by another test process at the same moment
            await js.add_stream(name=ANCHOR_STREAM, subjects=[f"{ANCHOR_STREAM}.unused"])
        now, removed, offset = time.time(), 0, 0
        while True:
            reply = json.loads((await client.request("$JS.API.STREAM.LIST", json.dumps({"offset": offset}).encode(),
                                                     timeout=10)).data)
            streams = reply.get("streams") or []
            for info in streams:
                name = info["config"]["name"]
                created = datetime.fromisoformat(info["created"][:26].rstrip("Z") + "+00:00").timestamp()
                if name.startswith(("test-", "KV_test-")) and now - created > STALE_AFTER:
                    with contextlib.suppress(NotFoundError):
                        await js.delete_stream(name)
                        removed += 1
            offset += len(streams)
            if not streams or offset >= reply.get("total", 0):
                return removed
    finally:
        await client.close()



# Where the NATS server logs: Debian's service, or the one `make services` starts.
NATS_LOGS = (Path("/var/log/nats-server.log"), ROOT / "var" / "nats" / "nats.log")


def nats_server_complaints(lines: int = 5) -> str:
    """The NATS server's last warnings and errors, when its log is readable: why it refused a request
    (its replies to the client say only "error creating store for stream")."""
    texts = []
    for log in NATS_LOGS:
        with contextlib.suppress(OSError):
            texts.append(log.read_text(errors="replace"))
    if not texts:
        return f"(no NATS server log readable at {', '.join(map(str, NATS_LOGS))})"
    text = "\n".join(texts)
    return "\n".join([line for line in text.splitlines() if "[WRN]" in line or "[ERR]" in line][-lines:])


class Service(Stored):
    """`python -m thumbnailify` (server + supervised workers) with its own backends' namespace."""

    def __init__(self, mode: str, workdir: Path, *, workers: int = 1, video_workers: int = 0, webhook_workers: int = 0,
                 open_files: tuple[int, int] | None = None, **overrides: str) -> None:
        """One photo worker and nothing else by default: each worker process costs a start-up's CPU, so
        a test that needs a second photo worker, a video worker or a webhook worker asks for it."""
        workdir.mkdir(parents=True, exist_ok=True)
        overrides = {"THUMBNAILIFY_WORKER_WEBHOOK_PROCESSES": str(webhook_workers)} | overrides
        self.mode = mode
        self.open_files = open_files  # (soft, hard) RLIMIT_NOFILE to start the launcher with
        self.workdir = workdir
        self.workers = workers
        self.video_workers = video_workers
        self.env = service_env(mode, workdir, **overrides)
        self.port = int(self.env["THUMBNAILIFY_SERVER_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "service.log"
        self.http = requests.Session()

    # -- life cycle -------------------------------------------------------------------------
    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()

    def start(self, timeout: float = 60, *, wait: bool = True) -> Service:
        """Start the launcher and, unless told not to, wait until every worker and backend is ready."""
        seen_before = self.ready_workers()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "thumbnailify", "--workers", str(self.workers),
             "--video-workers", str(self.video_workers)],
            cwd=ROOT, env=os.environ | self.env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=self._limit_open_files if self.open_files else None,  # noqa: PLW1509 (setrlimit only)
        )
        if not wait:
            return self
        try:
            self.wait_ready(timeout, seen_before)
        except BaseException:
            self.stop(signal.SIGKILL, timeout=10)  # a service that never got ready must not outlive the test
            raise
        return self

    def _limit_open_files(self) -> None:
        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, self.open_files)

    def ready_workers(self) -> tuple[int, int]:
        """How many photo and video workers have said they are ready, in this service's log."""
        logs = self.logs()
        return len(PHOTO_WORKER_READY.findall(logs)), len(VIDEO_WORKER_READY.findall(logs))

    def wait_ready(self, timeout: float, seen_before: tuple[int, int]) -> None:
        """Until /ready answers 200 and every photo and video worker of this start has said it is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is None or self.process.poll() is None, self.logs()
            try:
                ready = self.http.get(f"{self.url}/ready", timeout=2).status_code == 200
            except requests.RequestException:  # not listening yet, or too busy starting to answer
                ready = False
            photo, video = (now - before for now, before in zip(self.ready_workers(), seen_before, strict=True))
            if ready and photo >= self.workers and video >= self.video_workers:
                return
            time.sleep(0.1)
        raise AssertionError(f"service not ready after {timeout}s:\n{self.logs()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        if self.process is None:
            return 0
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            return process.wait()

    def kill_all(self) -> None:
        """SIGKILL the launcher and every process under it, as a power cut would."""
        if self.process is None:
            return
        family = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        for proc in family:
            proc.kill()
        psutil.wait_procs(family, timeout=10)
        self.process.wait()
        self.process = None

    def worker_pids(self, kind: str = "image") -> list[int]:
        """The workers of one kind (by default the photo workers)."""
        assert self.process is not None
        pids = []
        for child in psutil.Process(self.process.pid).children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE and child.cmdline()[-2:] == ["--kind", kind]:
                    pids.append(child.pid)
            except psutil.Error:
                continue  # exited meanwhile
        return pids

    def server_pid(self) -> int:
        """The server process (`python -m thumbnailify.server`) the launcher started."""
        assert self.process is not None
        for child in psutil.Process(self.process.pid).children():
            with contextlib.suppress(psutil.Error):
                if child.status() != psutil.STATUS_ZOMBIE and child.cmdline()[-2:] == ["-m", "thumbnailify.server"]:
                    return child.pid
        raise AssertionError("no server process")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- HTTP -------------------------------------------------------------------------------
    def post(self, data: bytes, content_type: str | None, *, raw: bool = False, **kwargs: object) -> requests.Response:
        body = data if raw else base64.b64encode(data)
        headers = {"Content-Type": content_type} if content_type is not None else {}
        headers |= kwargs.pop("headers", {})  # type: ignore[operator]
        return self.http.post(f"{self.url}/images", data=body, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return self.http.get(f"{self.url}{path}", timeout=30, **kwargs)

    def delete(self, path: str, **kwargs: object) -> requests.Response:
        return self.http.delete(f"{self.url}{path}", timeout=30, **kwargs)

    def upload(self, data: bytes, content_type: str) -> str:
        response = self.post(data, content_type)
        assert response.status_code == 202, response.text
        return response.json()["media_id"]

    def wait(self, media_id: str, timeout: float = 60) -> dict:
        """Poll until the media is Completed or Error; returns the body with the HTTP status."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.get(f"/images/{media_id}")
            body = response.json()
            if body.get("state") in TERMINAL or time.monotonic() > deadline:
                return body | {"http_status": response.status_code}
            time.sleep(0.05)

    def thumbnail(self, media_id: str) -> tuple[bytes, str]:
        response = self.get(f"/images/{media_id}/thumbnail", params={"encoding": "binary"})
        assert response.status_code == 200, response.text
        return response.content, response.headers["Content-Type"]


def report(name: str, **figures: object) -> None:
    """Figures of a fault test, printed for the closing note (run with -s to see them)."""
    print(f"\nFAULT-FIGURES {name}: " + json.dumps(figures))


def distinct_jpeg(data: bytes, index: int) -> bytes:
    """The same picture with a comment of its own: other bytes, so no upload reuses another's
    thumbnails and each one is really decoded."""
    comment = f"copy {index}".encode()
    return data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def queue_status(queue: str) -> pika.spec.Queue.DeclareOk | None:
    """The broker's counts for a queue (messages, consumers), or None when it does not exist."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        return connection.channel().queue_declare(queue, durable=True, passive=True).method
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        connection.close()


def queue_depth(queue: str) -> int:
    status = queue_status(queue)
    assert status is not None, f"no queue {queue}"
    return status.message_count


def lane_depth(queue: str) -> int:
    """Photo jobs waiting in the normal lane of `queue` (rabbitmq.queue): its light part and its backlog."""
    return sum(queue_depth(name) for name in lane_queues(queue, "image")[Priority.NORMAL])


def publish_raw(queue: str, body: bytes, headers: dict | None) -> None:
    """Put a message on the work queue as a foreign or broken producer would."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2, headers=headers))
    finally:
        connection.close()


def wait_until(predicate: object, timeout: float, message: str = "condition", interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class PrivateRedis:
    """A Redis of the test's own (append-only file, so data survives its restarts) to stop at will."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir),
             "--pidfile", str(self.workdir / "redis.pid")],
            check=True, stdout=subprocess.DEVNULL,
        )
        wait_until(self.answers, 10, "private redis to start")

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: not self.answers(), 10, "private redis to stop")

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False


class PrivateNats:
    """A nats-server of the test's own with JetStream on disk (so the log survives its restarts),
    to stop and start at will."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.workdir / "jetstream")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, 10, "private nats-server to start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def answers(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0
