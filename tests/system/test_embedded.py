"""The embedded mode (issue 5): no server process of any kind, and restart-safe."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from tests.harness import Service, distinct_jpeg, free_port
from tests.system.test_faults import camera_jpeg

pytestmark = pytest.mark.timeout(300)


def test_embedded_needs_no_redis_or_rabbitmq(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """Redis and RabbitMQ configured at closed ports: the embedded service still does everything."""
    closed = free_port()
    service = Service(
        "embedded", tmp_path,
        THUMBNAILIFY_REDIS_URL=f"redis://127.0.0.1:{closed}/0",
        THUMBNAILIFY_RABBITMQ_URL=f"amqp://guest:guest@127.0.0.1:{closed}/%2F",
    )
    with service:
        ids = [service.upload(data, "image/png" if name.endswith(".png") else "image/jpeg")
               for name, data in photos.items()]
        assert {service.wait(media_id)["state"] for media_id in ids} == {"Completed"}
        assert service.get("/ready").json()["backends"] == ["sqlite", "sqlite", "files"]
        family = [psutil.Process(service.process.pid), *psutil.Process(service.process.pid).children(recursive=True)]
        ports = {conn.raddr.port for proc in family for conn in proc.net_connections("tcp") if conn.raddr}
        assert not ports & {6379, 5672, closed}, ports


def test_kill_everything_and_restart_loses_nothing(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """SIGKILL the whole embedded service with jobs queued and running; after a restart all finish."""
    service = Service("embedded", tmp_path, workers=2)
    payloads = [camera_jpeg(seed, photos["astronaut.jpg"]) for seed in range(3)]
    service.start()
    try:
        workers = [psutil.Process(pid) for pid in service.worker_pids()]
        for worker in workers:  # held while the jobs pile up, so some are queued and some running
            worker.suspend()
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda i: service.upload(distinct_jpeg(payloads[i % 3], i), "image/jpeg"), range(40)))
        for worker in workers:
            worker.resume()
        time.sleep(0.3)
        service.kill_all()
        before = Counter(service.record(media_id)["state"] for media_id in ids)  # as the kill left them
        restarted = time.monotonic()
        service.start()
        finals = Counter(service.wait(media_id, timeout=120)["state"] for media_id in ids)
        elapsed = time.monotonic() - restarted
    finally:
        service.stop()
    print("\nFAULT-FIGURES embedded-kill-restart: " + json.dumps(
        {"accepted": len(ids), "done_before_kill": before["Completed"], "completed": finals["Completed"],
         "error": finals["Error"], "stuck": finals["Processing"], "restart_to_done_s": round(elapsed, 1)}))
    assert before["Processing"] > 0, "the kill came too late to test anything"
    assert finals == {"Completed": len(ids)}
    assert list((tmp_path / "media" / "raw").iterdir()) == []
