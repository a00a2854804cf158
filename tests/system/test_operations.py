"""Operating the service: Prometheus metrics of server and workers, JSON logs, from real processes.
(API-key auth: tests/api/test_operations.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.harness import Service, free_port, wait_until

pytestmark = pytest.mark.timeout(120)


def test_metrics_of_server_and_workers(tmp_path: Path, photos: dict[str, bytes]) -> None:
    base = free_port()
    with Service("distributed", tmp_path, workers=2, THUMBNAILIFY_WORKER_METRICS_PORT=str(base)) as service:
        ids = [service.upload(photos["coffee.jpg"], "image/jpeg") for _ in range(4)]
        bad = service.upload(photos["chelsea.png"][:300], "image/png")
        for media_id in [*ids, bad]:
            service.wait(media_id)
        server = service.get("/metrics").text
        assert 'thumbnailify_http_requests_total{method="POST",route="/images",status="202"} 5.0' in server
        assert 'thumbnailify_http_request_duration_seconds_count{method="GET",route="/images/{media_id}"' in server
        assert "thumbnailify_queue_depth 0.0" in server
        totals: dict[str, float] = {}
        for port in (base, base + 1):  # one metrics port per worker process
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            for line in text.splitlines():
                if line.startswith("thumbnailify_jobs_total{"):
                    outcome = line.split('"')[1]
                    totals[outcome] = totals.get(outcome, 0) + float(line.split()[-1])
            assert "thumbnailify_job_processing_seconds_bucket" in text
            assert "thumbnailify_job_queue_wait_seconds_count" in text
        assert totals == {"completed": 4.0, "error": 1.0}


def test_json_log_lines_carry_media_id_and_timings(tmp_path: Path, photos: dict[str, bytes]) -> None:
    with Service("embedded", tmp_path, THUMBNAILIFY_LOG_FORMAT="json") as service:
        media_id = service.upload(photos["coffee.jpg"], "image/jpeg")
        service.wait(media_id)
        wait_until(lambda: "job completed" in service.logs(), 10, "the job log line")
        lines = [json.loads(line) for line in service.logs().splitlines() if line.startswith("{")]
    assert len(lines) >= 5
    job = next(line for line in lines if line["message"] == "job completed")
    assert job["media_id"] == media_id and job["service"] == "worker" and job["ms"] > 0
    accepted = [line for line in lines if line.get("route") == "/images" and line.get("status") == 202]
    assert len(accepted) == 1, "one line per request"
    assert accepted[0]["ms"] > 0 and accepted[0]["level"] == "INFO" and accepted[0]["message"] == "POST /images"
    assert accepted[0]["media_id"] == media_id and accepted[0]["bytes"] == len(photos["coffee.jpg"])
