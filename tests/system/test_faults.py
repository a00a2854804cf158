"""Delivery guarantees under faults, on the real services: a 202 always ends Completed or Error.

These tests kill workers, stop RabbitMQ and a Redis of their own, and race DELETEs against
workers. Each restores what it stopped in a `finally`, so the machine is left as it was. Figures
are printed (run with -s to see them) for the closing note.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import redis
from PIL import Image

from tests.harness import (
    ALL_MODES,
    KILLED_JOB_RETURNS,
    Service,
    distinct_jpeg,
    publish_raw,
    queue_depth,
    report,
    wait_until,
)

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


@pytest.mark.parametrize("mode", ALL_MODES)
def test_kill_9_worker_mid_stream_loses_nothing(mode: str, tmp_path: Path, big_jpeg: bytes) -> None:
    with Service(mode, tmp_path, workers=2, video_workers=1, webhook_workers=1,
                 **KILLED_JOB_RETURNS.get(mode, {})) as service:
        # 40 camera-sized photos sent four at a time, faster than two workers make them (a job is
        # 25-80 ms), and each kill aimed at a worker seen busy on one: a worker killed idle, as
        # happened once the jobs got quick, would prove nothing.
        with ThreadPoolExecutor(4) as senders:
            sent = senders.map(lambda i: service.upload(distinct_jpeg(big_jpeg, i), "image/jpeg"), range(40))
            kills = 0
            for _ in range(2):
                victim = busy_worker(service)
                os.kill(victim, signal.SIGKILL)
                kills += 1
            ids = list(sent)
        states = Counter(service.wait(media_id, timeout=120)["state"] for media_id in ids)
        listed = service.get("/images", params={"limit": 1000}).json()["items"]
        listed_ids = [item["media_id"] for item in listed]
        report(f"kill-9-{mode}", sent=len(ids), kills=kills, completed=states["Completed"],
               error=states["Error"], stuck=states["Processing"], listed=len(listed_ids))
        assert states == {"Completed": len(ids)}
        assert sorted(listed_ids) == sorted(ids)
        assert all(len(service.files_of(media_id)) == 1 for media_id in ids)
        assert "exited with -9" in service.logs()
        assert "redelivered=True" in service.logs()  # a kill cut a job short: it was done again


def busy_worker(service: Service, timeout: float = 30) -> int:
    """A photo worker seen spending most of a 30 ms window on the CPU, that is, on a job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in service.worker_pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).cpu_percent(interval=0.03) > 50:
                    return pid
    raise AssertionError(f"no photo worker was busy within {timeout} s")


@pytest.mark.parametrize("mode", ALL_MODES)
def test_delete_racing_workers_resurrects_nothing(mode: str, tmp_path: Path, photos: dict[str, bytes]) -> None:
    rng = random.Random(7)
    with Service(mode, tmp_path, workers=2, video_workers=1, webhook_workers=1) as service:
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
    with Service("distributed", tmp_path, workers=2, video_workers=1, webhook_workers=1) as service:
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


def test_worker_survives_its_process_being_killed_repeatedly(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """The supervisor restarts killed workers; jobs keep flowing (no crash loop takes the service down)."""
    with Service("distributed", tmp_path, workers=1, video_workers=1, webhook_workers=1) as service:
        for _ in range(3):
            pid = service.worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda p=pid: service.worker_pids()[:1] not in ([], [p]), 30, "a restart")
        wait_until(lambda: all(psutil.Process(p).is_running() for p in service.worker_pids()), 10, "workers")
        media_id = service.upload(photos["coffee.jpg"], "image/jpeg")
        assert service.wait(media_id, timeout=60)["state"] == "Completed"
