"""Dead letters (issue 15, item 16): bounded, and replayed by an operator once an outage is over."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pika
import pytest

from tests.harness import (
    ALL_MODES,
    AMQP_URL,
    NATS_MODE,
    ROOT,
    Service,
    nats_dead_letters,
    on_nats,
    queue_depth,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

OUTAGE = {"THUMBNAILIFY_WORKER_MAX_RETRIES": "2", "THUMBNAILIFY_WORKER_RETRY_BASE_DELAY": "0.1"}


def dead_letters(service: Service) -> int:
    if service.mode == "distributed":
        return queue_depth(f"{service.queue}.dead")
    if service.mode == NATS_MODE:
        return on_nats(service.env, nats_dead_letters)
    with closing(sqlite3.connect(service.env["THUMBNAILIFY_SQLITE_PATH"])) as conn:
        return conn.execute("SELECT COUNT(*) FROM jobs WHERE dead = 1").fetchone()[0]


def replay(service: Service) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "thumbnailify.worker.replay"], cwd=ROOT, env=os.environ | service.env,
                          capture_output=True, text=True, timeout=60, check=False)


def dead_letter_during_outage(service: Service, uploads: list[bytes]) -> list[str]:
    """Upload each while no thumbnail can be written (a file where the folder was), one at a time,
    until each is Error 503 and dead-lettered; then end the outage."""
    thumbs = service.media_dir("thumbs")
    thumbs.rename(thumbs.with_name("thumbs-away"))
    thumbs.write_bytes(b"")
    ids = []
    try:
        for number, data in enumerate(uploads, 1):
            ids.append(service.upload(data, "image/jpeg"))
            wait_until(lambda n=number: service.logs().count("job dead_lettered") == n, 60, "a dead letter")
    finally:
        thumbs.unlink()
        thumbs.with_name("thumbs-away").rename(thumbs)
    return ids


@pytest.mark.parametrize("mode", ALL_MODES)
def test_dead_letters_are_bounded_and_complete_after_replay(mode: str, tmp_path: Path,
                                                            photos: dict[str, bytes]) -> None:
    service = Service(mode, tmp_path, THUMBNAILIFY_WORKER_DEAD_LETTER_MAX_LENGTH="2", **OUTAGE,
                      workers=2, video_workers=1, webhook_workers=1)
    with service:
        ids = dead_letter_during_outage(service, [photos["coffee.jpg"], photos["astronaut.jpg"],
                                                  photos["rocket_portrait.jpg"]])
        for media_id in ids:
            status = service.wait(media_id, timeout=0)
            assert status["state"] == "Error" and status["http_status"] == 503, status
            assert service.media_dir("raw").joinpath(media_id).exists()  # kept for the replay
        assert dead_letters(service) == 2  # the oldest went first
        result = replay(service)
        assert result.returncode == 0, result.stderr
        assert "replay done: 2 re-queued, 0 dropped" in result.stderr
        oldest, *replayed = ids
        for media_id in replayed:
            assert service.wait(media_id)["state"] == "Completed"
            assert service.record(media_id)["attempts"] == "1"
            assert not service.media_dir("raw").joinpath(media_id).exists()
        assert service.wait(oldest, timeout=0)["http_status"] == 503  # its letter was dropped
        assert dead_letters(service) == 0
        again = replay(service)
        assert again.returncode == 0 and "0 re-queued, 0 dropped" in again.stderr


def test_replay_drops_letters_of_deleted_items(tmp_path: Path, photos: dict[str, bytes]) -> None:
    with Service("embedded", tmp_path, **OUTAGE, workers=2, video_workers=1, webhook_workers=1) as service:
        kept, deleted = dead_letter_during_outage(service, [photos["coffee.jpg"], photos["astronaut.jpg"]])
        assert service.delete(f"/images/{deleted}").status_code == 204
        result = replay(service)
        assert "replay done: 1 re-queued, 1 dropped" in result.stderr, result.stderr
        assert service.wait(kept)["state"] == "Completed"
        assert service.record(deleted) is None and dead_letters(service) == 0


def test_a_dead_queue_declared_with_other_bounds_is_used_as_it_is(tmp_path: Path,
                                                                  photos: dict[str, bytes]) -> None:
    """RabbitMQ refuses to redeclare a queue with other arguments: the workers warn and go on."""
    service = Service("distributed", tmp_path, **OUTAGE, workers=2, video_workers=1, webhook_workers=1)
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        connection.channel().queue_declare(f"{service.queue}.dead", durable=True)  # as before the bounds
    finally:
        connection.close()
    with service:
        [media_id] = dead_letter_during_outage(service, [photos["coffee.jpg"]])
        assert "exists with other bounds than configured" in service.logs()
        assert dead_letters(service) == 1
        assert replay(service).returncode == 0
        assert service.wait(media_id)["state"] == "Completed"
        assert service.worker_pids() and "exited with" not in service.logs()
