"""The retention sweep on the real services, every family: planted junk with old and new times goes
or stays exactly as the rules say, and nothing live loses a file. (CONTRACT second part, "Retention".)
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import redis
from PIL import Image

from tests.harness import ALL_MODES, NATS_MODE, Service, nats_write_records, on_nats, wait_until
from thumbnailify import state

pytestmark = pytest.mark.timeout(180)

HOURS = 3600.0


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), color).save(buffer, "PNG")
    return buffer.getvalue()


def age(path: Path, seconds: float) -> Path:
    """Make a file or folder look `seconds` old."""
    past = time.time() - seconds
    os.utime(path, (past, past))
    return path


def plant(path: Path, seconds: float, data: bytes = b"junk") -> Path:
    """A file `seconds` old (and its item's thumbnail folder, when it is in one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    age(path, seconds)
    if path.parent.name not in ("raw", "thumbs"):
        age(path.parent, seconds)
    return path


def set_record(service: Service, media_id: str, record: dict[str, str], score: float) -> None:
    """Write a record straight into the store, as the server would have."""
    if service.mode == NATS_MODE:
        on_nats(service.env, lambda js, stream: nats_write_records(js, stream, {media_id: (record, score)}))
        return
    if service.mode != "embedded":
        prefix = service.env["THUMBNAILIFY_REDIS_PREFIX"]
        client = redis.Redis.from_url(service.redis_url)
        client.hset(f"{prefix}media:{media_id}", mapping=record)
        client.zadd(f"{prefix}index", {media_id: score})
        client.zadd(f"{prefix}index:{record['state']}", {media_id: score})
        client.close()
        return
    with closing(sqlite3.connect(service.env["THUMBNAILIFY_SQLITE_PATH"])) as conn, conn:
        conn.execute("INSERT OR REPLACE INTO media (media_id, score, state, record) VALUES (?, ?, ?, ?)",
                     (media_id, score, record["state"], json.dumps(record)))


def backdate(service: Service, media_id: str, seconds: float) -> None:
    """Make an item look created and last changed `seconds` ago."""
    record = service.record(media_id)
    assert record is not None
    then = state.now().timestamp() - seconds
    stamp = state.iso(state.now().fromtimestamp(then, state.now().tzinfo))
    set_record(service, media_id, record | {"created_at": stamp, "updated_at": stamp}, then)


def swept(service: Service, since: int) -> bool:
    return "sweep: removed" in service.logs()[since:]


@pytest.fixture(params=ALL_MODES)
def sweeping(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    with Service(request.param, tmp_path, workers=1, THUMBNAILIFY_RETENTION_SWEEP_SECONDS="1") as service:
        yield service


def test_the_sweep_removes_what_nobody_names_and_nothing_live(sweeping: Service) -> None:
    service = sweeping
    raw, thumbs = service.media_dir("raw"), service.media_dir("thumbs")
    live = service.upload(png((10, 120, 10)), "image/png")
    assert service.wait(live)["state"] == "Completed"
    age(thumbs / live, 2 * HOURS)
    age(next((thumbs / live).iterdir()), 2 * HOURS)
    processing = str(uuid.uuid4())  # accepted a moment ago, its job not taken yet
    set_record(service, processing, state.accepted("image/png", state.now(), "0" * 64).stored(), time.time())
    planted_old = {
        "processing upload": plant(raw / processing, 2 * HOURS, png((1, 1, 1))),
        "orphan upload": plant(raw / str(uuid.uuid4()), 2 * HOURS),
        "temp upload": plant(raw / f".{uuid.uuid4()}.123.abcd1234.tmp", 2 * HOURS),
        "orphan thumbs": plant(thumbs / str(uuid.uuid4()) / "default.png", 2 * HOURS),
        "orphan legacy thumb": plant(thumbs / f"{uuid.uuid4()}.png", 2 * HOURS),
        "stranger": plant(raw / "not-an-id.txt", 2 * HOURS),
    }
    planted_new = {
        "orphan upload": plant(raw / str(uuid.uuid4()), 50 * 60),
        "temp upload": plant(raw / f".{uuid.uuid4()}.123.abcd1234.tmp", 50 * 60),
        "orphan thumbs": plant(thumbs / str(uuid.uuid4()) / "default.png", 50 * 60),
    }
    since = len(service.logs())
    wait_until(lambda: swept(service, since), 45, "a sweep")
    wait_until(lambda: not planted_old["orphan upload"].exists(), 10, "the orphans to go")
    gone = {name for name, path in planted_old.items() if not path.exists()}
    assert gone == {"orphan upload", "temp upload", "orphan thumbs", "orphan legacy thumb"}
    assert not planted_old["orphan thumbs"].parent.exists()
    assert all(path.exists() for path in planted_new.values())  # younger than an hour: never touched
    assert service.thumbnail(live)[0]  # a live item keeps its thumbnails
    assert (raw / processing).exists()  # an item being processed keeps its upload
    metrics = service.get("/metrics").text
    for what in ("upload", "temp", "thumbnail"):
        assert f'thumbnailify_swept_total{{what="{what}"}}' in metrics


@pytest.mark.parametrize("mode", ALL_MODES)
def test_media_past_media_days_are_removed_like_a_delete(mode: str, tmp_path: Path) -> None:
    with Service(mode, tmp_path, workers=1, THUMBNAILIFY_RETENTION_SWEEP_SECONDS="1",
                 THUMBNAILIFY_RETENTION_MEDIA_DAYS="1") as service:
        old, new = service.upload(png((200, 1, 1)), "image/png"), service.upload(png((1, 1, 200)), "image/png")
        for media_id in (old, new):
            assert service.wait(media_id)["state"] == "Completed"
        backdate(service, old, 2 * 86400)
        wait_until(lambda: service.get(f"/images/{old}").status_code == 404, 45, "the old item to expire")
        wait_until(lambda: service.files_of(old) == [], 10, "its files to go (after its record)")
        assert service.get(f"/images/{new}").status_code == 200 and service.thumbnail(new)[0]
        assert "sweep: removed 1 media past retention" in service.logs()


@pytest.mark.parametrize("mode", ALL_MODES)
def test_uploads_are_kept_raw_hours_then_swept(mode: str, tmp_path: Path) -> None:
    with Service(mode, tmp_path, workers=1, THUMBNAILIFY_RETENTION_SWEEP_SECONDS="1",
                 THUMBNAILIFY_RETENTION_RAW_HOURS="1") as service:
        kept, expired = service.upload(png((5, 5, 5)), "image/png"), service.upload(png((6, 6, 6)), "image/png")
        for media_id in (kept, expired):
            assert service.wait(media_id)["state"] == "Completed"
        raw = service.media_dir("raw")
        assert (raw / kept).exists() and (raw / expired).exists()  # kept past their thumbnails
        backdate(service, expired, 2 * HOURS)
        age(raw / expired, 2 * HOURS)
        age(raw / kept, 2 * HOURS)  # an old file, but its item finished a moment ago
        wait_until(lambda: not (raw / expired).exists(), 45, "the expired upload to go")
        assert (raw / kept).exists()
        assert service.get(f"/images/{expired}").json()["state"] == "Completed"
