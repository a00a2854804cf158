"""Media in a bucket (backends.files: s3) on a real SeaweedFS: no shared directory, uploads
streamed as multipart uploads that leave nothing when refused, and an object store outage that
loses nothing (CONTRACT.md, second part, "Past one machine")."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import obstore
import pytest
import requests
from PIL import Image

from scripts.seaweed import SeaweedFS
from tests.harness import S3_MODE, Service, free_port, wait_until
from tests.system.test_retention import backdate
from thumbnailify.backends.layout import StoredFile
from thumbnailify.backends.s3.aio import S3Files
from thumbnailify.backends.s3.bucket import open_bucket
from thumbnailify.settings import load_settings

pytestmark = pytest.mark.timeout(180)
BIG = 8 * 1024 * 1024


def noise_png(width: int, height: int) -> bytes:
    """A PNG that does not compress: about width x height x 3 bytes."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def svc(seaweed: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    workdir = tmp_path_factory.mktemp("s3")
    service = Service(S3_MODE, workdir, workers=1, THUMBNAILIFY_LIMITS_MAX_UPLOAD_BYTES=str(BIG),
                      THUMBNAILIFY_FILES_ROOT=str(workdir / "no-shared-volume"),
                      THUMBNAILIFY_WORKER_TEMP_DIR=str(workdir / "worker-scratch"), **seaweed.settings_env())
    with service:
        yield service


def test_media_live_in_the_bucket_and_nothing_on_disk(svc: Service, photos: dict[str, bytes]) -> None:
    media_id = svc.upload(photos["coffee.jpg"], "image/jpeg")
    assert svc.wait(media_id)["state"] == "Completed"
    assert svc.objects() == [f"thumbs/{media_id}/default.jpg"]  # the upload went once its thumbnail existed
    assert svc.thumbnail(media_id)[1] == "image/jpeg"
    assert not Path(svc.env["THUMBNAILIFY_FILES_ROOT"]).exists()  # server and workers share no directory
    scratch = Path(svc.env["THUMBNAILIFY_WORKER_TEMP_DIR"])
    assert [entry for folder in scratch.iterdir() for entry in folder.iterdir()] == []  # downloads go with their job


def test_a_big_upload_streams_as_a_multipart_upload(svc: Service, seaweed: SeaweedFS) -> None:
    data = noise_png(1600, 1200)
    assert 5 * 1024 * 1024 < len(data) <= BIG
    response = svc.post(data, "image/png", raw=True, params={"encoding": "binary"})
    assert response.status_code == 202, response.text
    media_id = response.json()["media_id"]
    status = svc.wait(media_id)
    assert status["state"] == "Completed" and status["sizes"] == {"default": [100, 75]}
    assert seaweed.pending_uploads() == 0


def test_a_refused_upload_leaves_no_object_and_no_multipart_upload(svc: Service, seaweed: SeaweedFS) -> None:
    listed = svc.get("/images").json()["items"]
    data = noise_png(1900, 1600)  # past the limit, refused after a multipart upload has begun
    assert len(data) > BIG
    response = svc.post(data, "image/png", raw=True, params={"encoding": "binary"})
    assert response.status_code == 413, response.text
    assert svc.stored("raw") == []
    assert seaweed.pending_uploads() == 0
    assert svc.get("/images").json()["items"] == listed


def test_an_identical_upload_copies_the_thumbnails_inside_the_bucket(svc: Service, photos: dict[str, bytes]) -> None:
    first = svc.upload(photos["camera.png"], "image/png")
    assert svc.wait(first)["state"] == "Completed"
    second = svc.upload(photos["camera.png"], "image/png")
    status = svc.wait(second)
    assert status["state"] == "Completed" and "reused" in status["message"]
    assert svc.delete(f"/images/{first}").status_code == 204
    assert svc.files_of(first) == []
    assert svc.thumbnail(second)[0][:8] == b"\x89PNG\r\n\x1a\n"


def test_an_object_store_outage_is_a_503_and_loses_nothing(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """Stop the object store with jobs in flight: the API answers 503 naming s3 (never its address)
    and keeps nothing, workers retry; once it is back every accepted job completes."""
    store = SeaweedFS(tmp_path / "seaweedfs", ports={flag: free_port() for flag in SeaweedFS(tmp_path).ports})
    store.start()
    # A refused connection fails at once, so the tries' budget is their back-off: 60 tries at most
    # 2 s apart outlast the outage below (the store's start and readiness may take a minute on a
    # loaded machine; with 12 tries a job gave up after ~20 s and ended Error 503).
    service = Service(S3_MODE, tmp_path / "service", workers=1, THUMBNAILIFY_S3_TIMEOUT="2",
                      THUMBNAILIFY_WORKER_MAX_RETRIES="60", THUMBNAILIFY_WORKER_RETRY_MAX_DELAY="2",
                      **store.settings_env())
    try:
        with service:
            accepted = [service.upload(data, "image/jpeg" if name.endswith(".jpg") else "image/png")
                        for name, data in photos.items()]
            done = accepted[0]
            assert service.wait(done)["state"] == "Completed"
            store.stop()

            refused = service.post(photos["coffee.jpg"], "image/jpeg")
            assert refused.status_code == 503
            assert refused.json() == {"message": "s3 is unavailable, try again later"}
            assert refused.headers["Retry-After"].isdigit()
            ready = service.get("/ready")
            assert ready.status_code == 503 and list(ready.json()["failing"]) == ["s3"]
            assert "127.0.0.1" not in ready.text and "127.0.0.1" not in refused.text
            assert service.get(f"/images/{done}/thumbnail").status_code == 503
            assert {item["media_id"] for item in service.get("/images").json()["items"]} == set(accepted)

            store.start()
            wait_until(lambda: service.get("/ready").status_code == 200, 30, "ready again")
            for media_id in accepted:
                body = service.wait(media_id, timeout=90)
                assert body["state"] == "Completed", (body, service.logs()[-3000:])
                # The gateway answers /ready a moment before every volume serves reads again.
                path = f"/images/{media_id}/thumbnail"
                wait_until(lambda p=path: service.get(p).status_code == 200, 30, "the thumbnail served")
                assert service.thumbnail(media_id)[0]
            service.wait_uploads_removed()
    finally:
        store.stop()


@contextlib.contextmanager
def silent_endpoint(port: int) -> Iterator[None]:
    """127.0.0.1:port as a host that is down looks from here: a listener whose queue is full and
    that never accepts, so the kernel drops every new SYN and a connect hangs until its timeout."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(0)
        with socket.create_connection(("127.0.0.1", port)):  # the one place of the queue, taken
            yield


def timed_post(service: Service, data: bytes) -> tuple[requests.Response, float]:
    began = time.monotonic()
    response = service.post(data, "image/jpeg")
    return response, time.monotonic() - began


@pytest.mark.long
def test_a_stopped_or_silent_object_store_is_a_503_at_once(tmp_path: Path, photos: dict[str, bytes]) -> None:
    """With the default timeouts (s3.timeout 10 s): a refused connection and an endpoint that
    accepts none are both a 503 with Retry-After within a few seconds, /ready names s3, and once
    the store is back uploads work again. The bound tells ~2 s from the 10 s a connect once took."""
    store = SeaweedFS(tmp_path / "seaweedfs", ports={flag: free_port() for flag in SeaweedFS(tmp_path).ports})
    store.start()
    service = Service(S3_MODE, tmp_path / "service", workers=1, video_workers=0, **store.settings_env())
    try:
        with service:
            store.stop()
            refused, seconds = timed_post(service, photos["coffee.jpg"])
            assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit(), refused.text
            assert seconds < 5
            with silent_endpoint(store.ports["s3.port"]):
                unanswered, seconds = timed_post(service, photos["coffee.jpg"])
                assert unanswered.status_code == 503 and unanswered.headers["Retry-After"].isdigit()
                assert unanswered.json() == {"message": "s3 is unavailable, try again later"}
                assert seconds < 5
                ready = service.get("/ready")
                assert ready.status_code == 503 and list(ready.json()["failing"]) == ["s3"]
            store.start()
            wait_until(lambda: service.get("/ready").status_code == 200, 30, "ready again")
            media_id = service.upload(photos["coffee.jpg"], "image/jpeg")
            assert service.wait(media_id)["state"] == "Completed"
    finally:
        store.stop()


def test_ready_names_a_bucket_that_does_not_exist(seaweed: SeaweedFS, tmp_path: Path) -> None:
    wrong = Service(S3_MODE, tmp_path, workers=0, **(seaweed.settings_env() | {"THUMBNAILIFY_S3_BUCKET": "no-such"}))
    try:
        wrong.start(wait=False)

        def names_s3() -> bool:
            try:
                response = requests.get(f"{wrong.url}/ready", timeout=5)
            except requests.ConnectionError:
                return False
            return response.status_code == 503 and list(response.json()["failing"]) == ["s3"]

        wait_until(names_s3, 30, "/ready to name s3")
    finally:
        wrong.stop()
        wrong.cleanup()


def test_the_sweep_lists_and_removes_objects_by_item(svc: Service) -> None:
    """What the retention sweep sees in a bucket: each upload, each item's thumbnails as one entry
    (the newest's time), and removing an entry removes exactly those objects. (The age rules are
    the same code as on a volume, tested in test_retention.py: a bucket cannot be made to hold an
    hour-old object in a test.)"""
    settings = load_settings(svc.env)
    bucket = open_bucket(settings.s3)
    orphan, legacy = str(uuid.uuid4()), str(uuid.uuid4())
    for name in (f"raw/{orphan}", f"thumbs/{orphan}/default.jpg", f"thumbs/{orphan}/large.jpg",
                 f"thumbs/{legacy}.png", "raw/not-an-id"):
        obstore.put(bucket, name, b"planted")

    async def sweep_view() -> list[StoredFile]:
        return [item async for item in S3Files(settings).scan()]

    found = {(item.kind, item.media_id, item.name) for item in asyncio.run(sweep_view())}
    assert {("upload", orphan, f"raw/{orphan}"), ("thumbnail", orphan, f"thumbs/{orphan}"),
            ("thumbnail", legacy, f"thumbs/{legacy}")} <= found
    assert not any("not-an-id" in name for _, _, name in found)
    assert all(abs(item.modified - time.time()) < 120 for item in asyncio.run(sweep_view()))

    async def remove(kind: str, media_id: str) -> None:
        item = next(i for i in await sweep_view() if i.kind == kind and i.media_id == media_id)
        await S3Files(settings).remove_stored(item)

    asyncio.run(remove("thumbnail", orphan))
    assert [n for n in svc.objects() if orphan in n] == [f"raw/{orphan}"]  # only its thumbnails went
    asyncio.run(remove("upload", orphan))
    asyncio.run(remove("thumbnail", legacy))
    assert not [n for n in svc.objects() if orphan in n or legacy in n]


def test_media_past_media_days_leave_the_bucket(seaweed: SeaweedFS, tmp_path: Path, photos: dict[str, bytes]) -> None:
    with Service(S3_MODE, tmp_path, workers=1, THUMBNAILIFY_RETENTION_SWEEP_SECONDS="1",
                 THUMBNAILIFY_RETENTION_MEDIA_DAYS="1", **seaweed.settings_env()) as service:
        media_id = service.upload(photos["coffee.jpg"], "image/jpeg")
        assert service.wait(media_id)["state"] == "Completed"
        assert service.objects(f"thumbs/{media_id}")
        backdate(service, media_id, 2 * 86400)
        wait_until(lambda: service.get(f"/images/{media_id}").status_code == 404, 45, "the item to expire")
        wait_until(lambda: not service.objects(f"thumbs/{media_id}"), 10, "its thumbnails to leave the bucket")
