"""Worker hardening (issue 15, items 13-15 and 18), on the real services.

A job killed mid-spill leaves no ImageMagick files; a consumer cancelled by RabbitMQ crashes
nobody; a Redis reply stalled past the client timeout counts no attempt twice and strands no
upload; a worker whose main loop hangs fails its health check and is replaced.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pika
import pytest
import redis
import requests

from tests.corpus import slow_png
from tests.harness import AMQP_URL, REDIS_PORT, ROOT, Service, free_port, publish_raw, queue_status, wait_until
from tests.proxy import TcpProxy
from tests.system.test_faults import camera_jpeg
from thumbnailify import state

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def report(name: str, **figures: object) -> None:
    print(f"\nFAULT-FIGURES {name}: " + json.dumps(figures))


def start_worker(service: Service, log: Path, argv: list[str] | None = None, **env: str) -> subprocess.Popen[bytes]:
    """A worker of the service's own, outside its launcher, with settings of its own."""
    process = subprocess.Popen(argv or [sys.executable, "-m", "thumbnailify.worker"], cwd=ROOT,
                               env=os.environ | service.env | env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    wait_until(lambda: "worker ready" in log.read_text(), 30, "the worker to start")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def job_ms(log: Path, media_id: str) -> float:
    """How long the worker took over a job, from its log line."""
    line = next(line for line in log.read_text().splitlines() if f"media_id={media_id} reason=" in line)
    return float(line.split("ms=")[1].split()[0])


def consumers(queue: str) -> int:
    status = queue_status(queue)
    return 0 if status is None else status.consumer_count


def magick_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("magick-*") if path.is_file()]


def test_a_job_killed_mid_spill_leaves_no_imagemagick_files(tmp_path: Path) -> None:
    """A 49 MP PNG spills to disk past a 1 MiB memory/map cap and is killed by the job time limit
    while it does; the job still ends (Error 422 after max_attempts) and the temp dir is empty."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    service = Service("distributed", tmp_path / "svc", workers=1, video_workers=1, webhook_workers=1, TMPDIR=str(temp),
                      THUMBNAILIFY_LIMITS_MAGICK_MEMORY="1MiB", THUMBNAILIFY_LIMITS_MAGICK_MAP="1MiB",
                      THUMBNAILIFY_WORKER_JOB_TIMEOUT="0.3", THUMBNAILIFY_WORKER_MAX_ATTEMPTS="1")
    with service:
        media_id = service.upload(slow_png(0), "image/png")
        status = service.wait(media_id, timeout=120)
        left = magick_files(temp)
        logs = service.logs()
        swept = [int(line.split("removed ")[1].split(" bytes")[0]) for line in logs.splitlines()
                 if "ImageMagick temporary files left by ended workers" in line]
        report("killed-mid-spill", bytes_left=sum(p.stat().st_size for p in left),
               disk_bytes_left=sum(p.stat().st_blocks * 512 for p in left), files_left=len(left),
               bytes_swept_at_restart=sum(swept))
        assert status["state"] == "Error" and status["http_status"] == 422, status
        assert "exited with -14" in logs  # the time limit ended the job
        assert left == []
        assert sum(swept) > 0, "the job was not killed while it spilled"
        service.wait_uploads_removed()  # just after the Error is recorded, not before a client can see it


def test_a_cancelled_consumer_is_consumed_again(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """Deleting the work queue under running workers (as losing its node does) crashes none."""
    with Service("distributed", tmp_path, workers=2, video_workers=1, webhook_workers=1) as service:
        workers = sorted(service.worker_pids())
        # "worker ready" comes before the worker consumes: a queue deleted earlier cancels nothing.
        wait_until(lambda: consumers(service.queue) == len(workers), 30, "every worker consuming")
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            connection.channel().queue_delete(service.queue)
        finally:
            connection.close()
        wait_until(lambda: queue_status(service.queue) is not None, 30, "the queue to be declared again")
        ids = [service.upload(photos["coffee.jpg"], "image/jpeg") for _ in range(4)]
        assert {service.wait(media_id)["state"] for media_id in ids} == {"Completed"}
        assert sorted(service.worker_pids()) == workers
        assert "exited with" not in service.logs()

        def noticed() -> set[int]:
            pattern = r"worker\[(\d+)\] [\w.]+: RabbitMQ cancelled the consumer"
            return {int(pid) for pid in re.findall(pattern, service.logs())}

        wait_until(lambda: noticed() == set(workers), 60, f"both workers to see the cancel (seen: {noticed()})")
        wait_until(lambda: consumers(service.queue) == len(workers), 30, "every worker consuming again")


def test_a_stalled_redis_reply_counts_once_and_strands_nothing(
    tmp_path: Path, photos: dict[str, bytes]
) -> None:
    """A worker whose Redis replies are held past its 2 s timeout: the increment that landed but
    whose reply was lost counts one attempt, and a lost reply to the Error write leaves no upload."""
    big_jpeg = camera_jpeg(2, photos["coffee.jpg"])
    truncated = photos["chelsea.png"][:300]
    with TcpProxy(REDIS_PORT) as proxy, Service("distributed", tmp_path, workers=0) as service:
        log = tmp_path / "worker.log"
        # Without fair share the worker counts no backlog: every reply through the proxy is the store's.
        worker = start_worker(service, log, THUMBNAILIFY_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0",
                              THUMBNAILIFY_WORKER_FAIR_SHARE_JOBS="0")
        try:
            # A first job opens the connection and loads the scripts, so the replies come in a known order.
            assert service.wait(service.upload(photos["coffee.jpg"], "image/jpeg"))["state"] == "Completed"
            proxy.stall(0)  # HGETALL of the record
            proxy.stall(2.5)  # the attempt count: it lands, its reply is lost
            good = service.upload(big_jpeg, "image/jpeg")
            assert service.wait(good)["state"] == "Completed"
            attempts = service.record(good)["attempts"]
            for _ in range(3):  # HGETALL, attempt count, Processing ...
                proxy.stall(0)
            proxy.stall(2.5)  # ... and the Error write: it lands, its reply is lost
            bad = service.upload(truncated, "image/png")
            wait_until(lambda: f"media_id={bad} reason=" in log.read_text(), 60, "the bad job's outcome")
            bad_record = service.record(bad)
            raw_left = service.media_dir("raw").joinpath(bad).exists()
        finally:
            stop(worker)
        report("redis-stall", attempts_of_good_job=attempts, raw_left_after_error=raw_left)
        assert min(job_ms(log, good), job_ms(log, bad)) > 2000, "a stall did not reach the job"
        assert attempts == "1"
        assert bad_record["state"] == "Error" and bad_record["code"] == "422", bad_record
        assert not raw_left


@pytest.mark.long
def test_a_stuck_main_loop_fails_its_health_check_and_is_replaced(
    tmp_path: Path, photos: dict[str, bytes]
) -> None:
    """A store call that never returns (Redis behind a stalled proxy, a 60 s client timeout) hangs
    the worker's main loop: /health turns 503 while /metrics still answers, the worker exits, its
    supervisor starts a new one, and the job is done."""
    port = free_port()
    with TcpProxy(REDIS_PORT) as proxy, Service("distributed", tmp_path, workers=0) as service:
        log = tmp_path / "worker.log"
        supervised = [sys.executable, "-c", "import sys; from thumbnailify.supervisor import Child, Supervisor; "
                      "sys.exit(Supervisor([Child('worker', [sys.executable, '-m', 'thumbnailify.worker'])]).run())"]
        launcher = start_worker(service, log, supervised,
                                THUMBNAILIFY_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0",
                                THUMBNAILIFY_REDIS_TIMEOUT="60", THUMBNAILIFY_WORKER_JOB_TIMEOUT="1",
                                THUMBNAILIFY_WORKER_STALL_MARGIN="2", THUMBNAILIFY_WORKER_METRICS_PORT=str(port))
        health = f"http://127.0.0.1:{port}/health"
        try:
            assert requests.get(health, timeout=5).status_code == 200
            media_id = str(uuid.uuid4())
            client = redis.Redis.from_url(service.redis_url, decode_responses=True)
            client.hset(f"{service.env['THUMBNAILIFY_REDIS_PREFIX']}media:{media_id}",
                        mapping=state.accepted("image/jpeg", state.now(), "0" * 64).stored())
            client.close()
            service.media_dir("raw").joinpath(media_id).write_bytes(photos["coffee.jpg"])
            proxy.stall(120)  # the worker's next Redis reply: its read of this job's record
            publish_raw(service.queue, media_id.encode(), {"media_type": "image/jpeg"})
            wait_until(lambda: requests.get(health, timeout=5).status_code == 503, 30, "/health to fail")
            assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
            wait_until(lambda: "exited with 70" in log.read_text(), 30, "the stuck worker to exit")
            wait_until(lambda: log.read_text().count("worker ready") == 2, 30, "a new worker")
            assert service.wait(media_id, timeout=60)["state"] == "Completed"
            assert requests.get(health, timeout=5).status_code == 200
        finally:
            stop(launcher)
        assert "main loop stuck" in log.read_text()
