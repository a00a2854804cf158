"""worker.memory: a worker's memory limit (RLIMIT_DATA), tried in processes of their own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import thumbnailify.worker  # noqa: F401  (sets ImageMagick's policy before Wand loads)
from thumbnailify.media import PNG
from thumbnailify.settings import Settings
from thumbnailify.worker.handlers.image import ImageRejected, ThumbHandler


@pytest.fixture(scope="session")
def real_services() -> None:
    """Overrides conftest's autouse check for Redis/RabbitMQ: these tests touch no service."""


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True,
                            timeout=60)
    return result.stdout.strip()


def test_an_allocation_past_the_limit_fails_and_the_process_goes_on() -> None:
    out = run("""
        import resource
        from thumbnailify.worker.memory import limit_memory
        limit_memory(256 << 20)
        print(resource.getrlimit(resource.RLIMIT_DATA))
        try:
            too_much = bytearray(300 << 20)
        except MemoryError:
            print("refused")
        print(len(bytearray(16 << 20)))  # and memory within the limit is still there
    """)
    assert out.splitlines() == [f"({256 << 20}, {256 << 20})", "refused", str(16 << 20)]


def test_zero_is_no_limit_and_a_lower_cap_stays() -> None:
    out = run("""
        import resource
        from thumbnailify.worker.memory import limit_memory
        limit_memory(0)
        print(resource.getrlimit(resource.RLIMIT_DATA) == (resource.RLIM_INFINITY,) * 2)
        resource.setrlimit(resource.RLIMIT_DATA, (200 << 20, 300 << 20))
        limit_memory(1 << 30)
        print(resource.getrlimit(resource.RLIMIT_DATA))
        limit_memory(250 << 20)
        print(resource.getrlimit(resource.RLIMIT_DATA))
    """)
    assert out.splitlines() == ["True", f"({200 << 20}, {300 << 20})", f"({200 << 20}, {250 << 20})"]


def test_ffmpeg_and_pyav_work_under_the_default_limit() -> None:
    """PyAV's decoders, ImageMagick (Wand) and pika load and run under the limit config gives."""
    out = run("""
        import io
        import pika, wand.color, wand.image
        import av
        from thumbnailify.settings import byte_size, load_settings
        from tests.videos import mp4, quadrants
        from thumbnailify.worker.memory import limit_memory
        limit_memory(load_settings().worker.memory_limit)
        with av.open(io.BytesIO(mp4([quadrants((1920, 1080))] * 3))) as movie:
            print(len(list(movie.decode(video=0))))
        with wand.image.Image(width=4000, height=3000, background=wand.color.Color("red")) as img:
            img.resize(100, 75)
            print(img.size)
    """)
    assert out.splitlines() == ["3", "(100, 75)"]


def test_a_photo_past_the_limit_is_a_413(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A MemoryError while making a photo's thumbnails (ImageMagick itself falls back to its disk
    cache; Python's own buffers cannot) ends the job as a 413 naming it, not an internal error."""

    def out_of_memory(*_args: object) -> None:
        raise MemoryError

    settings = Settings()
    handler = ThumbHandler(settings.thumbnail, settings.limits)
    monkeypatch.setattr(handler, "_make_image", out_of_memory)
    with pytest.raises(ImageRejected) as refused:
        handler.make(tmp_path / "photo.png", PNG)
    assert (refused.value.code, refused.value.message) == (413, "decoding it needs more memory than the worker has")
