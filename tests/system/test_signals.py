"""Stopping on a signal and the job time limit, on the real services: SIGTERM lets work in flight
finish, a job over its limit ends as Error (split from test_faults.py so no one file sets the
suite's wall time)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.corpus import TINY_PNG, slow_png
from tests.harness import (
    KILLED_JOB_RETURNS,
    NATS_MODE,
    ROOT,
    Service,
    lane_depth,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


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
        assert lane_depth(running.queue) == 0  # acked, not waiting for redelivery
        logs = (tmp_path / "worker.log").read_text()
        assert logs.index("finishing the current job") < logs.index(f"job completed media_id={media_id}")


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

    with Service("distributed", tmp_path, workers=2, video_workers=1, webhook_workers=1) as service:
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


@pytest.mark.parametrize("mode", ["distributed", NATS_MODE])
def test_a_job_over_its_time_limit_ends_as_error_not_a_crash_loop(mode: str, tmp_path: Path) -> None:
    """worker.job_timeout ends the worker process mid-decode (ImageMagick cannot be interrupted);
    the job is redelivered and counted, and after max_attempts it is an Error 422, while the
    supervisor keeps a worker running and later jobs still complete. (On NATS the killed worker's
    job comes back when its ack wait runs out, and the last one is given up by JetStream.)"""
    service = Service(mode, tmp_path, workers=1, THUMBNAILIFY_WORKER_JOB_TIMEOUT="0.3",  # see test_quorum.py
                      THUMBNAILIFY_WORKER_MAX_ATTEMPTS="2", video_workers=1, webhook_workers=1,
                      **KILLED_JOB_RETURNS.get(mode, {}))
    with service:
        slow = service.upload(slow_png(0), "image/png")
        status = service.wait(slow, timeout=120)
        assert status["state"] == "Error" and status["http_status"] == 422, status
        assert "crashed or timed out the worker" in status["message"]
        assert service.logs().count("exited with -14") == 2  # SIGALRM, once per attempt
        quick = service.upload(TINY_PNG, "image/png")
        assert service.wait(quick, timeout=60)["state"] == "Completed"
