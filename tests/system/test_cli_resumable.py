"""`thumbnailify upload` of a file over --chunk-size: sent by tus, and a run interrupted (Ctrl-C,
or killed outright) is continued by the next run from the server's offset, not from zero."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.corpus import write_noisy_jpeg
from tests.harness import Service, wait_until
from tests.proxy import TcpProxy
from tests.system.test_cli import CLI, KEY, environment

pytestmark = pytest.mark.timeout(240)

CHUNK = 1024 * 1024
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with Service("embedded", tmp_path_factory.mktemp("cli-tus"), workers=1, video_workers=0,
                 THUMBNAILIFY_AUTH_API_KEY=KEY) as running:
        running.http.headers.update(AUTH)
        yield running


@pytest.fixture
def large_photo(tmp_path: Path) -> Path:
    """A 12 MP phone JPEG, several chunks long (noise keeps it large)."""
    path = write_noisy_jpeg(tmp_path / "IMG_0420.jpg")
    assert path.stat().st_size > 4 * CHUNK
    return path


def noted(cache: Path) -> dict[str, str]:
    """The CLI's note of its unfinished uploads."""
    log = cache / "thumbnailify" / "unfinished-uploads.json"
    return json.loads(log.read_text()) if log.exists() else {}


def offset_of(service: Service, upload: str) -> int:
    answer = requests.head(service.url + upload, headers={"Tus-Resumable": "1.0.0"} | AUTH, timeout=10)
    return int(answer.headers["Upload-Offset"])


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_an_interrupted_upload_is_continued_by_the_next_run(service: Service, large_photo: Path, tmp_path: Path,
                                                            stop: signal.Signals) -> None:
    size = large_photo.stat().st_size
    cache = tmp_path / "cache"
    with TcpProxy(service.port) as proxy:
        env = environment(service, XDG_CACHE_HOME=str(cache), THUMBNAILIFY_URL=f"http://127.0.0.1:{proxy.port}")
        proxy.stall(60, b"HTTP/1.1 204")  # the first PATCH's answer held: the run is stopped meanwhile
        first = subprocess.Popen([str(CLI), "upload", str(large_photo), "--chunk-size", "1M"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: len(noted(cache)) == 1, 30, "the upload noted")
        upload = next(iter(noted(cache).values()))
        wait_until(lambda: offset_of(service, upload) == CHUNK, 30, "the first chunk stored")
        first.send_signal(stop)
        _, errors = first.communicate(timeout=30)
        assert first.returncode == (130 if stop == signal.SIGINT else -signal.SIGKILL), errors
        assert list(noted(cache).values()) == [upload]  # kept for the next run

        second = subprocess.run([str(CLI), "upload", str(large_photo), "--chunk-size", "1M"], env=env,
                                capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    # The noted upload is the one that made the item: it went on at its offset (a PATCH from 0 on
    # it would have been a 409, a new upload a second URL).
    finished = service.get(upload).json()
    assert (finished["offset"], finished["length"]) == (size, size)
    item = service.get(f"/images/{finished['media_id']}").json()
    assert item["state"] == "Completed" and item["sha256"] == hashlib.sha256(large_photo.read_bytes()).hexdigest()
    assert item["filename"] == large_photo.name
    copies = service.get("/images", params={"sha256": item["sha256"]}).json()["items"]
    assert [copy["media_id"] for copy in copies] == [item["media_id"]]
    assert noted(cache) == {}  # done: nothing left to continue


def test_a_small_file_is_one_post_and_a_large_one_goes_by_tus(service: Service, large_photo: Path,
                                                              tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = environment(service, XDG_CACHE_HOME=str(cache))
    done = subprocess.run([str(CLI), "upload", str(large_photo), "--chunk-size", str(large_photo.stat().st_size)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (cache / "thumbnailify").exists()  # one POST: no tus upload was begun
    bad = subprocess.run([str(CLI), "upload", str(large_photo), "--chunk-size", "8X"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "is not a size" in bad.stderr


def test_a_large_file_that_is_not_its_type_is_refused_at_its_last_byte_and_forgotten(service: Service,
                                                                                      tmp_path: Path) -> None:
    fake = tmp_path / "holiday.jpg"
    fake.write_bytes(b"these are words, not a JPEG\n" * 100_000)  # ~2.8 MB: three PATCHes
    cache = tmp_path / "cache"
    done = subprocess.run([str(CLI), "upload", str(fake), "--chunk-size", "1M"],
                          env=environment(service, XDG_CACHE_HOME=str(cache)),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "415" in done.stdout and "not image/jpeg" in done.stdout, done.stdout
    assert noted(cache) == {}  # refused for good: the next run begins anew, never continues it
