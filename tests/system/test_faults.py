"""Delivery guarantees under faults, on the real services: a 202 always ends Completed or Error.

These tests kill workers, stop RabbitMQ and a Redis of their own, and race DELETEs against
workers. Each restores what it stopped in a `finally`, so the machine is left as it was. Figures
are printed (run with -s to see them) for the closing note.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pika
import psutil
import pytest
import redis
import requests
from PIL import Image

from tests.harness import (
    AMQP_PORT,
    AMQP_URL,
    MODES,
    REDIS_PORT,
    ROOT,
    PrivateRedis,
    Service,
    distinct_jpeg,
    publish_raw,
    queue_depth,
    wait_until,
)
from tests.proxy import TcpProxy

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def camera_jpeg(seed: int, photo: bytes) -> bytes:
    """A 12 MP JPEG made from a real photo, so a job takes a camera-sized decode."""
    image = Image.open(io.BytesIO(photo)).convert("RGB").resize((4000, 3000), Image.Resampling.BILINEAR)
    noise = Image.effect_noise((4000, 3000), 12 + seed % 5).convert("RGB")
    buffer = io.BytesIO()
    Image.blend(image, noise, 0.08).save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def big_jpeg(photos: dict[str, bytes]) -> bytes:
    return camera_jpeg(1, photos["coffee.jpg"])


def report(name: str, **figures: object) -> None:
    print(f"\nFAULT-FIGURES {name}: " + json.dumps(figures))


@pytest.mark.parametrize("mode", MODES)
def test_kill_9_worker_mid_stream_loses_nothing(mode: str, tmp_path: Path, big_jpeg: bytes) -> None:
    with Service(mode, tmp_path) as service:
        ids = [service.upload(distinct_jpeg(big_jpeg, i), "image/jpeg") for i in range(100)]
        kills = 0
        for _ in range(2):
            time.sleep(0.4)
            victim = service.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            kills += 1
        states = Counter(service.wait(media_id, timeout=120)["state"] for media_id in ids)
        listed = service.get("/images", params={"limit": 1000}).json()["items"]
        listed_ids = [item["media_id"] for item in listed]
        report(f"kill-9-{mode}", sent=len(ids), kills=kills, completed=states["Completed"],
               error=states["Error"], stuck=states["Processing"], listed=len(listed_ids))
        assert states == {"Completed": 100}
        assert sorted(listed_ids) == sorted(ids)
        assert all(len(service.files_of(media_id)) == 1 for media_id in ids)
        assert "exited with -9" in service.logs()


def post_stream(service: Service, payload: bytes, stop: threading.Event, results: list) -> None:
    session = requests.Session()
    while not stop.is_set():
        try:
            response = session.post(
                f"{service.url}/images", data=payload, headers={"Content-Type": "image/jpeg"}, timeout=30
            )
            media_id = response.json().get("media_id") if response.status_code == 202 else None
            results.append((response.status_code, response.headers.get("Retry-After"), media_id))
        except requests.RequestException as exc:
            results.append((0, None, repr(exc)))
        time.sleep(0.02)


def outage(service: Service, photo: bytes, toggles: tuple[object, object], failing: str, name: str) -> None:
    """POST continuously through an outage; every answer 202 or 503, every 202 completes."""
    results: list = []
    stop = threading.Event()
    poster = threading.Thread(target=post_stream, args=(service, base64.b64encode(photo), stop, results))
    poster.start()
    try:
        time.sleep(1.0)
        down, up = toggles
        down()  # type: ignore[operator]
        try:
            time.sleep(1.0)
            ready = service.get("/ready")
            assert ready.status_code == 503, ready.text
            assert failing in ready.json()["failing"]
            time.sleep(2.0)
        finally:
            up()  # type: ignore[operator]
        wait_until(lambda: service.get("/ready").status_code == 200, 60, "ready again")
        time.sleep(1.5)
    finally:
        stop.set()
        poster.join()
    statuses = Counter(status for status, _, _ in results)
    accepted = [media_id for status, _, media_id in results if status == 202]
    assert set(statuses) <= {202, 503}, statuses
    assert statuses[503] > 0, "the outage was not seen"
    assert all(retry == "5" for status, retry, _ in results if status == 503)
    finals = Counter(service.wait(media_id, timeout=120)["state"] for media_id in accepted)
    listed = service.get("/images", params={"limit": 1000}).json()["items"]
    report(name, posts=len(results), accepted=len(accepted), unavailable=statuses[503],
           other_5xx=sum(n for s, n in statuses.items() if s >= 500 and s != 503),
           completed=finals["Completed"], error=finals["Error"], stuck=finals["Processing"],
           lost=len(accepted) - sum(finals.values()))
    assert finals == {"Completed": len(accepted)}
    # Nothing of a 503'd upload was kept: exactly the accepted ones are listed and on disk.
    assert sorted(item["media_id"] for item in listed) == sorted(accepted)
    service.wait_uploads_removed()
    assert len(list(service.media_dir("thumbs").iterdir())) == len(accepted)


def test_rabbitmq_outage_during_uploads(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """RabbitMQ unreachable (behind a proxy that drops and refuses connections), then back."""
    with TcpProxy(AMQP_PORT) as broker:
        url = f"amqp://guest:guest@127.0.0.1:{broker.port}/%2F"
        with Service("distributed", tmp_path, THUMBNAILIFY_RABBITMQ_URL=url) as service:
            outage(service, photos["coffee.jpg"], (broker.cut, broker.restore), "rabbitmq", "rabbitmq-outage")


def test_redis_outage_during_uploads(tmp_path: Path, photos: dict[str, bytes]) -> None:
    private = PrivateRedis(tmp_path)
    private.start()
    try:
        service = Service("distributed", tmp_path / "svc", THUMBNAILIFY_REDIS_URL=private.url)
        with service as running:
            outage(running, photos["coffee.jpg"], (private.stop, private.start), "redis", "redis-outage")
    finally:
        private.stop()


def test_a_record_write_applied_after_its_timeout_keeps_nothing(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """Redis applies the new record but its reply comes after the client gave up: the upload is a
    503, and neither its record nor its file stays (nothing to list, nothing to process)."""
    with TcpProxy(REDIS_PORT) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        with Service("distributed", tmp_path, workers=0, THUMBNAILIFY_REDIS_URL=url,
                     THUMBNAILIFY_REDIS_TIMEOUT="1") as service:
            proxy.stall(3, starting=b":1\r\n")  # the create script's reply, not a PONG or an event
            response = service.post(photos["coffee.jpg"], "image/jpeg")
            assert response.status_code == 503, response.text
            assert "redis" in response.json()["message"]
            time.sleep(3)  # the stalled reply is delivered; nothing may come back with it
            assert service.get("/images").json()["items"] == []
            assert list(service.media_dir("raw").iterdir()) == []


def test_a_key_reservation_applied_after_its_timeout_is_freed(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """Redis reserves an Idempotency-Key but its reply comes after the client gave up: the upload is
    a 503, and the client's retry with that key is taken (not a 409 until the reservation expires)."""
    with TcpProxy(REDIS_PORT) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        with Service("distributed", tmp_path, THUMBNAILIFY_REDIS_URL=url, THUMBNAILIFY_REDIS_TIMEOUT="1") as service:
            headers = {"Idempotency-Key": str(uuid.uuid4())}
            proxy.stall(3, starting=b"+OK\r\n")  # the reservation's SET NX, not a PONG or an event
            refused = service.post(photos["coffee.jpg"], "image/jpeg", headers=headers)
            assert refused.status_code == 503, refused.text
            time.sleep(3)  # the stalled reply is delivered
            retried = service.post(photos["coffee.jpg"], "image/jpeg", headers=headers)
            assert retried.status_code == 202, retried.text
            assert service.wait(retried.json()["media_id"])["state"] == "Completed"


def slow_png(seed: int) -> bytes:
    """A 49 MP PNG (about a second of work for a worker), different for every seed."""
    image = Image.linear_gradient("L").resize((7000, 7000)).convert("RGB")
    image.putpixel((0, 0), (seed, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def test_sigterm_lets_a_busy_worker_finish(tmp_path: Path) -> None:
    """A standalone worker gets SIGTERM in the middle of a slow job: job Completed, acked, exit 0."""
    service = Service("distributed", tmp_path, workers=0)
    with service as running:
        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "thumbnailify.worker"], cwd=ROOT, env=os.environ | running.env,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            # Frozen as soon as it is seen on a job, so the signal lands mid-job; on a loaded machine
            # the job may still be over by then, and the next upload tries again.
            for seed in range(5):
                media_id = running.upload(slow_png(seed), "image/png")
                wait_until(lambda m=media_id: (running.record(m) or {}).get("service") == "worker", 30,
                           "the worker to take the job", interval=0.01)
                worker.send_signal(signal.SIGSTOP)
                if running.record(media_id)["state"] == "Processing":
                    break
                worker.send_signal(signal.SIGCONT)
            else:
                pytest.fail("the worker was never caught in the middle of a job")
            worker.send_signal(signal.SIGTERM)
            worker.send_signal(signal.SIGCONT)
            code = worker.wait(90)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert code == 0
        assert running.record(media_id)["state"] == "Completed"
        assert queue_depth(running.queue) == 0  # acked, not waiting for redelivery
        logs = (tmp_path / "worker.log").read_text()
        assert logs.index("finishing the current job") < logs.index(f"job completed media_id={media_id}")


@pytest.mark.parametrize("mode", MODES)
def test_delete_racing_workers_resurrects_nothing(mode: str, tmp_path: Path, photos: dict[str, bytes]) -> None:
    rng = random.Random(7)
    with Service(mode, tmp_path) as service:
        ids = []
        for index in range(40):
            media_id = service.upload(photos["astronaut.jpg" if index % 2 else "chelsea.png"],
                                      "image/jpeg" if index % 2 else "image/png")
            time.sleep(rng.uniform(0, 0.06))
            assert service.delete(f"/images/{media_id}").status_code == 204
            ids.append(media_id)
        time.sleep(3)  # let every worker finish whatever it had
        leftovers = [media_id for media_id in ids if service.record(media_id) or service.files_of(media_id)]
        report(f"delete-race-{mode}", deleted=len(ids), resurrected=len(leftovers))
        assert leftovers == []
        assert not any(service.indexed(media_id) for media_id in ids)


def test_poison_messages_are_acked_and_logged(tmp_path: Path, photos: dict[str, bytes]) -> None:
    with Service("distributed", tmp_path) as service:
        workers = sorted(service.worker_pids())
        prefix = service.env["THUMBNAILIFY_REDIS_PREFIX"]
        client = redis.Redis.from_url(service.redis_url, decode_responses=True)
        no_file = str(uuid.uuid4())
        unknown_type = str(uuid.uuid4())
        record = {"media_type": "image/jpeg", "service": "webserver", "state": "Processing", "message": "",
                  "code": "202", "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z"}
        client.hset(f"{prefix}media:{no_file}", mapping=record)
        client.hset(f"{prefix}media:{unknown_type}", mapping=record | {"media_type": "image/bmp"})
        service.media_dir("raw").joinpath(unknown_type).write_bytes(b"BM....")
        poison = [
            (b"not-a-media-id", {"media_type": "image/png"}),
            (str(uuid.uuid4()).encode(), {"media_type": "image/png"}),  # no state
            (no_file.encode(), {"media_type": "image/jpeg"}),
            (b"\xff\xfe\x00garbage", None),
            (str(uuid.uuid4()).encode(), {"media_type": 12345, "other": ["x"]}),
            (unknown_type.encode(), {"media_type": "image/bmp"}),
        ]
        for body, headers in poison:
            publish_raw(service.queue, body, headers)
        wait_until(lambda: queue_depth(service.queue) == 0, 30, "the poison to be consumed")
        time.sleep(1)
        assert client.hget(f"{prefix}media:{no_file}", "state") == "Error"
        assert "missing" in client.hget(f"{prefix}media:{no_file}", "message")
        assert client.hget(f"{prefix}media:{unknown_type}", "code") == "415"
        client.close()
        assert sorted(service.worker_pids()) == workers  # nobody crashed or restarted
        logs = service.logs()
        assert logs.count("job skipped") >= 3 and "message body is not a media id" in logs
        # and the service still works
        media_id = service.upload(photos["coffee.jpg"], "image/jpeg")
        assert service.wait(media_id)["state"] == "Completed"


def test_volume_outage_retries_then_dead_letters(tmp_path: Path, photos: dict[str, bytes]) -> None:
    service = Service("distributed", tmp_path, THUMBNAILIFY_WORKER_MAX_RETRIES="3",
                      THUMBNAILIFY_WORKER_RETRY_BASE_DELAY="0.1")
    with service as running:
        thumbs = running.media_dir("thumbs")
        thumbs.rename(thumbs.with_name("thumbs-away"))
        thumbs.write_bytes(b"")  # a file where the folder was: every thumbnail write fails
        try:
            media_id = running.upload(photos["coffee.jpg"], "image/jpeg")
            status = running.wait(media_id, timeout=60)
        finally:
            thumbs.unlink()
            thumbs.with_name("thumbs-away").rename(thumbs)
        assert status["state"] == "Error" and status["http_status"] == 503, status
        assert "gave up after 3 tries" in status["message"]
        assert queue_depth(f"{running.queue}.dead") == 1
        assert running.logs().count("transient fault, retrying") >= 2
        again = running.upload(photos["coffee.jpg"], "image/jpeg")
        assert running.wait(again)["state"] == "Completed"


@pytest.mark.parametrize("mode", MODES)
def test_recovery_pass_requeues_lost_jobs(mode: str, tmp_path: Path, photos: dict[str, bytes]) -> None:
    """A Processing record with its upload but no message (lost before the fix) is re-queued at start."""
    service = Service(mode, tmp_path, workers=0)
    service.start()
    try:
        media_id = service.upload(photos["coffee.jpg"], "image/jpeg")
        service.stop()
        lose_messages(service)
        backdate(service, media_id)
        service.workers = 1
        service.start()
        assert service.wait(media_id)["state"] == "Completed"
        assert "1 stale jobs re-queued" in service.logs()
    finally:
        service.stop()
        service.cleanup()


def plant_stale_jobs(service: Service, count: int) -> list[str]:
    """Processing records untouched for long, each with its upload, whose messages were lost."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    raw = service.media_dir("raw")
    raw.mkdir(parents=True, exist_ok=True)
    old = "2026-01-01T00:00:00.000Z"
    record = {"media_type": "image/png", "service": "webserver", "state": "Processing", "message": "planted",
              "code": "202", "created_at": old, "updated_at": old}
    for media_id in ids:
        (raw / media_id).write_bytes(b"\x89PNG\r\n\x1a\n")
    if service.mode == "distributed":
        prefix = service.env["THUMBNAILIFY_REDIS_PREFIX"]
        client = redis.Redis.from_url(service.redis_url)
        with client.pipeline() as pipe:
            for score, media_id in enumerate(ids):
                pipe.hset(f"{prefix}media:{media_id}", mapping=record)
                pipe.zadd(f"{prefix}index", {media_id: score})
                pipe.zadd(f"{prefix}index:Processing", {media_id: score})
            pipe.execute()
        client.close()
    else:
        with closing(sqlite3.connect(service.env["THUMBNAILIFY_SQLITE_PATH"])) as conn, conn:
            conn.executemany("INSERT INTO media (media_id, score, state, record) VALUES (?, ?, 'Processing', ?)",
                             [(media_id, score, json.dumps(record)) for score, media_id in enumerate(ids)])
    return ids


def queued_jobs(service: Service) -> int:
    if service.mode == "distributed":
        return queue_depth(service.queue)
    with closing(sqlite3.connect(service.env["THUMBNAILIFY_SQLITE_PATH"])) as conn:
        return conn.execute("SELECT COUNT(*) FROM jobs WHERE dead = 0").fetchone()[0]


@pytest.mark.parametrize("mode", MODES)
def test_recovery_runs_beside_serving_and_once_across_processes(mode: str, tmp_path: Path) -> None:
    """2,000 lost jobs: the server serves at once, and of two processes one re-queues each job once."""
    # A shared Redis and RabbitMQ slowed by the other tests must not cut the pass short (outages
    # are tested elsewhere): this test is about start-up and the lease.
    service = Service(mode, tmp_path, workers=0, THUMBNAILIFY_SERVER_PROCESSES="2", THUMBNAILIFY_REDIS_TIMEOUT="10",
                      THUMBNAILIFY_RABBITMQ_PUBLISH_TIMEOUT="30")
    service.start()  # creates the schema / queue
    service.stop()
    plant_stale_jobs(service, 2000)
    earlier = len(service.logs())
    try:
        service.start()
        wait_until(lambda: service.logs()[earlier:].count("recovery pass:") >= 2, 120,
                   "both processes' recovery line")
        logs = service.logs()[earlier:]
        serving = [m.start() for m in re.finditer("serving on", logs)]
        passes = re.findall(r"recovery pass: (\d+) stale jobs re-queued.* in ([\d.]+)s", logs)
        report(f"recovery-{mode}", jobs=2000, passes=passes)
        assert "maintenance skipped" not in logs, logs
        assert logs.index("recovery pass: 2000 stale jobs re-queued") > serving[-1]  # serving did not wait
        assert sum(int(n) for n, _ in passes) == 2000  # the other process found nothing left, or waited
        assert queued_jobs(service) == 2000
    finally:
        service.stop()
        service.cleanup()


def test_jobs_a_queue_outage_kept_from_recovery_are_sent_when_it_is_back(tmp_path: Path) -> None:
    """RabbitMQ is down during the recovery pass: the jobs it touched but could not send are sent by
    the pass retried once the broker is back, not left until they are stale again."""
    with TcpProxy(AMQP_PORT) as broker:
        url = f"amqp://guest:guest@127.0.0.1:{broker.port}/%2F"
        service = Service("distributed", tmp_path, workers=0, THUMBNAILIFY_RABBITMQ_URL=url)
        service.start()  # creates the queue
        service.stop()
        ids = plant_stale_jobs(service, 100)
        earlier = len(service.logs())
        broker.cut()
        try:
            service.start(wait=False)
            wait_until(lambda: "maintenance skipped: rabbitmq unavailable" in service.logs()[earlier:], 60,
                       "the recovery pass to fail")
            assert queued_jobs(service) == 0
            broker.restore()
            wait_until(lambda: "recovery pass:" in service.logs()[earlier:], 60, "the retried recovery pass")
            assert "recovery pass: 100 stale jobs re-queued" in service.logs()[earlier:]
            assert queued_jobs(service) == 100
            messages = [entry["message"] for entry in service.get(f"/images/{ids[0]}").json()["history"]]
            assert messages[-2].startswith("Re-queue failed (rabbitmq unavailable)"), messages
            assert messages[-1] == "Re-queued: the job's message had been lost"
        finally:
            service.stop()
            service.cleanup()


def lose_messages(service: Service) -> None:
    if service.mode == "distributed":
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        connection.channel().queue_purge(service.queue)
        connection.close()
        return
    with closing(sqlite3.connect(service.env["THUMBNAILIFY_SQLITE_PATH"])) as conn, conn:
        conn.execute("DELETE FROM jobs")


def backdate(service: Service, media_id: str) -> None:
    """Make the record look untouched for two minutes, past server.recovery_min_age."""
    old = "2026-01-01T00:00:00.000Z"
    if service.mode == "distributed":
        client = redis.Redis.from_url(service.redis_url)
        client.hset(f"{service.env['THUMBNAILIFY_REDIS_PREFIX']}media:{media_id}", "updated_at", old)
        client.close()
        return
    with closing(sqlite3.connect(service.env["THUMBNAILIFY_SQLITE_PATH"])) as conn, conn:
        conn.execute("UPDATE media SET record = json_set(record, '$.updated_at', ?) WHERE media_id = ?",
                     (old, media_id))


def test_worker_survives_its_process_being_killed_repeatedly(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """The supervisor restarts killed workers; jobs keep flowing (no crash loop takes the service down)."""
    with Service("distributed", tmp_path, workers=1) as service:
        for _ in range(3):
            pid = service.worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda p=pid: service.worker_pids()[:1] not in ([], [p]), 30, "a restart")
        wait_until(lambda: all(psutil.Process(p).is_running() for p in service.worker_pids()), 10, "workers")
        media_id = service.upload(photos["coffee.jpg"], "image/jpeg")
        assert service.wait(media_id, timeout=60)["state"] == "Completed"


def test_sigterm_lets_the_server_finish_requests_in_flight(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """An upload still streaming in when the server gets SIGTERM is answered 202 and its job done."""
    body = base64.b64encode(photos["chelsea.png"])
    half = len(body) // 2
    sent_half = threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield body[:half]
        sent_half.set()
        time.sleep(1.5)
        yield body[half:]

    with Service("distributed", tmp_path) as service:
        server = psutil.Process(service.server_pid())
        answer: list[requests.Response] = []
        upload = threading.Thread(target=lambda: answer.append(requests.post(
            f"{service.url}/images", data=slow_body(), headers={"Content-Type": "image/png"}, timeout=30)))
        upload.start()
        assert sent_half.wait(10)
        time.sleep(0.2)
        server.send_signal(signal.SIGTERM)
        upload.join(30)
        assert answer and answer[0].status_code == 202, answer and answer[0].text
        media_id = answer[0].json()["media_id"]
        server.wait(30)  # not our child: the supervisor reports its exit code
        wait_until(lambda: f"server (pid {server.pid}) exited with 0" in service.logs(), 10, "a clean exit")
        service.wait_ready(30, (0, 0))  # the supervisor restarted the server
        assert service.wait(media_id)["state"] == "Completed"


def test_a_job_over_its_time_limit_ends_as_error_not_a_crash_loop(tmp_path: Path) -> None:
    """worker.job_timeout ends the worker process mid-decode (ImageMagick cannot be interrupted);
    the job is redelivered and counted, and after max_attempts it is an Error 422, while the
    supervisor keeps a worker running and later jobs still complete."""
    service = Service("distributed", tmp_path, workers=1, THUMBNAILIFY_WORKER_JOB_TIMEOUT="0.1",
                      THUMBNAILIFY_WORKER_MAX_ATTEMPTS="2")
    with service:
        buffer = io.BytesIO()
        Image.linear_gradient("L").resize((7000, 7000)).convert("RGB").save(buffer, "PNG", compress_level=1)
        slow = service.upload(buffer.getvalue(), "image/png")
        status = service.wait(slow, timeout=120)
        assert status["state"] == "Error" and status["http_status"] == 422, status
        assert "crashed or timed out the worker" in status["message"]
        assert service.logs().count("exited with -14") == 2  # SIGALRM, once per attempt
        quick = service.upload(base64.b64decode(
            "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
        ), "image/png")
        assert service.wait(quick, timeout=60)["state"] == "Completed"
