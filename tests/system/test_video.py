"""Videos through the real service, in both modes: the generated cases of tests/videos.py with exact
outcomes and pixel checks, a movie whose data is in another file, and the two kinds of worker
never waiting on each other. Run with -s to see the outcome table.
"""

from __future__ import annotations

import io
import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PIL import Image

from tests.corpus import Case, fit_size, run_checks
from tests.harness import MODES, Service, peak_rss_mb
from tests.videos import mov, mp4, quadrants, sample_table_bomb, video_cases, with_external_reference

pytestmark = pytest.mark.timeout(120)

CASES = video_cases()
PEAK_RSS_LIMIT_MB = 256
BOMB_RSS_LIMIT_MB = 400  # the bomb would take 2800
OUTCOMES: dict[tuple[str, str], str] = {}
VIDEO_WORKERS: dict[str, list[int]] = {}  # by mode, as started


@pytest.fixture(scope="module", params=MODES)
def video_service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with Service(request.param, tmp_path_factory.mktemp(f"video-{request.param}"), video_workers=1) as service:
        VIDEO_WORKERS[service.mode] = sorted(service.worker_pids("video"))
        yield service


def outcome(case: Case, service: Service) -> tuple[str, list[str]]:
    response = service.post(case.request_body(), case.content_type, raw=True)
    if response.status_code != 202:
        assert response.headers["Content-Type"].startswith("application/json")
        return f"HTTP {response.status_code}", [response.json()["message"]]
    status = service.wait(response.json()["media_id"], timeout=60)
    if status["state"] != "Completed":
        return f"{status['state']} {status['http_status']}", [status["message"]]
    assert status["media_type"] == case.content_type
    data, content_type = service.thumbnail(status["media_id"])
    problems = run_checks(data, case)
    if content_type != "image/jpeg":
        problems.append(f"served as {content_type}")
    if status["sizes"]["default"] != list(case.expect_size or ()):
        problems.append(f"record says {status['sizes']}")
    return "Completed", problems


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case(case: Case, video_service: Service) -> None:
    got, details = outcome(case, video_service)
    OUTCOMES[(video_service.mode, case.name)] = f"{got}: {details[0]}" if details and got != "Completed" else got
    assert got == case.expected(), details
    if got == "Completed":
        assert details == []


def test_refusals_name_what_was_sent(video_service: Service) -> None:
    by_name = {case.name: case for case in CASES}
    for name, found in (("hls-playlist-as-mp4", "HLS playlist"), ("matroska-as-webm", "DocType 'matroska'"),
                        ("webm-as-mp4", "video/webm"), ("ffconcat-as-mp4", "concat script")):
        response = video_service.post(by_name[name].request_body(), by_name[name].content_type, raw=True)
        assert response.status_code == 415 and found in response.json()["message"], response.text
    bomb = video_service.upload(by_name["mov-mjpeg-8200x6200"].body or b"", "video/quicktime")
    assert "8200x6200" in video_service.wait(bomb)["message"]


def test_a_sample_table_bomb_is_refused_before_ffmpeg_indexes_it(video_service: Service) -> None:
    """1.6 KB claiming 80 million samples: FFmpeg's index alone would take the worker to 2.8 GB
    (40 million: 1.45 GB, just to open it); it is refused from its boxes, the worker untouched."""
    (pid,) = video_service.worker_pids("video")
    status = video_service.wait(video_service.upload(sample_table_bomb(), "video/mp4"))
    assert (status["state"], status["http_status"]) == ("Error", 422), status
    assert "the sample table claims 80000000 samples, more than a file of this size" in status["message"]
    assert video_service.worker_pids("video") == [pid]
    assert peak_rss_mb(pid) < BOMB_RSS_LIMIT_MB


def test_external_data_reference_is_never_read(video_service: Service) -> None:
    """A MOV whose frames are in another file beside it: FFmpeg with enable_drefs=1 would show that
    file (tests/system/test_video_media.py proves it); the worker reads only the upload."""
    referenced = mov([quadrants()] * 5)
    (video_service.media_dir("raw") / "ref.mov").write_bytes(referenced)
    media_id = video_service.upload(with_external_reference(referenced, "ref.mov"), "video/quicktime")
    status = video_service.wait(media_id)
    assert (status["state"], status["http_status"]) == ("Error", 422), status


def test_a_stuck_video_never_holds_up_photos(video_service: Service) -> None:
    """The video worker frozen mid-queue (SIGSTOP): photos still complete; thawed, the videos do too."""
    (pid,) = video_service.worker_pids("video")
    picture = quadrants((640, 360))
    os.kill(pid, signal.SIGSTOP)
    try:
        videos = [video_service.upload(mov([picture] * 3), "video/quicktime") for _ in range(2)]
        photo = video_service.upload(_jpeg(picture), "image/jpeg")
        assert video_service.wait(photo, timeout=30)["state"] == "Completed"
        assert [video_service.get(f"/images/{v}").json()["state"] for v in videos] == ["Processing"] * 2
    finally:
        os.kill(pid, signal.SIGCONT)
    for media_id in videos:
        status = video_service.wait(media_id, timeout=30)
        assert status["state"] == "Completed" and status["sizes"]["default"] == list(fit_size(640, 360))


def test_video_workers_survived_within_memory(video_service: Service) -> None:
    started = VIDEO_WORKERS[video_service.mode]
    assert sorted(video_service.worker_pids("video")) == started, "a video worker died"
    peaks = [peak_rss_mb(pid) for pid in started]
    mine = {name: got for (mode, name), got in OUTCOMES.items() if mode == video_service.mode}
    print(f"\nVIDEO {video_service.mode}: {len(mine)} cases; video worker peak RSS (MB): {[round(p) for p in peaks]}")
    for case in CASES:
        print(f"  {case.name:<30} want {case.expected():<10} got {mine.get(case.name, '-')}")
    logs = video_service.logs()
    assert "status=500" not in logs and "unhandled error" not in logs and "internal error" not in logs
    assert max(peaks) < PEAK_RSS_LIMIT_MB


def _jpeg(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.mark.parametrize("mode", MODES)
def test_a_decode_past_the_memory_limit_fails_and_the_worker_goes_on(mode: str, tmp_path: Path) -> None:
    """worker.memory_limit is each worker's RLIMIT_DATA: an 8K H.264 frame needs well over 100 MiB
    to decode, more than a video worker has left under 120 MiB (its own modules map ~53 MiB of
    data), so the decoder's allocation fails inside FFmpeg (its H.264 decoder reports that as
    invalid data: Error 422); the same worker then makes the next video's thumbnail."""
    with Service(mode, tmp_path, video_workers=1, THUMBNAILIFY_WORKER_MEMORY_LIMIT="120MiB") as service:
        (pid,) = service.worker_pids("video")
        for worker in (pid, *service.worker_pids("image")):
            assert psutil.Process(worker).rlimit(resource.RLIMIT_DATA) == (120 << 20, 120 << 20)
        large = service.wait(service.upload(mp4([quadrants((7680, 4320))]), "video/mp4"))
        assert (large["state"], large["http_status"]) == ("Error", 422), large
        assert large["message"] == "cannot decode video/mp4: Invalid data found when processing input"
        small = service.wait(service.upload(mov([quadrants()] * 3), "video/quicktime"))
        assert small["state"] == "Completed", small
        assert service.worker_pids("video") == [pid]
