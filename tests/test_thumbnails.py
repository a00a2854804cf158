"""ThumbHandler in this process, without a service: what each size of a thumbnail is made from."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

# worker/__init__ runs first and sets ImageMagick's env (1 thread, our policy) before Wand loads.
from common.config import LimitsSettings, ThumbnailSettings
from common.media import GIF
from tests import corpus
from worker.thumbnails import ThumbHandler, apply_limits

GIF_FRAMES, GIF_SIZE = 100, (160, 120)


@pytest.fixture(scope="session")
def real_services() -> None:
    """Overrides conftest's autouse check for Redis/RabbitMQ: these tests touch no service."""


@pytest.fixture(scope="module", autouse=True)
def worker_limits() -> None:
    apply_limits(LimitsSettings())  # the pixel cache a worker has, where a large size once spilled to disk


def handler(sizes: str = "") -> ThumbHandler:
    return ThumbHandler(ThumbnailSettings(sizes=sizes), LimitsSettings())


@pytest.fixture(scope="module")
def panned_gif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A camera pan over a photo, every frame different, 256 colours each (as bench.images)."""
    with Image.open(corpus.PHOTOS_DIR / "astronaut.jpg") as photo:
        source = photo.convert("RGB")
    width, height = GIF_SIZE
    frames = [source.crop((2 * i, i, 2 * i + width, i + height)).quantize(256) for i in range(GIF_FRAMES)]
    path = tmp_path_factory.mktemp("gif") / "pan.gif"
    path.write_bytes(corpus._encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0))
    return path


def rgb_frames(data: bytes) -> list[bytes]:
    with Image.open(io.BytesIO(data)) as img:
        frames = []
        for index in range(img.n_frames):
            img.seek(index)
            frames.append(img.convert("RGB").tobytes())
        assert img.info.get("loop") == 0 and img.info.get("duration") == 40
        return frames


def test_gif_size_equal_to_the_source_keeps_its_frames(panned_gif: Path) -> None:
    one = handler().make(panned_gif, GIF)
    two = handler("default=100x100,large=400x400").make(panned_gif, GIF)
    assert one.frames == two.frames == GIF_FRAMES
    assert one.dimensions() == {"default": (100, 75)}
    assert two.dimensions() == {"default": (100, 75), "large": GIF_SIZE}
    assert two.files()["default"] == one.files()["default"]  # a second size changes nothing of the first
    small = Image.open(io.BytesIO(one.files()["default"]))
    assert (small.format, small.size, small.n_frames) == ("GIF", (100, 75), GIF_FRAMES)
    # Never enlarged, so never resized nor re-quantized: every frame as the source has it (a resize
    # and a new palette per frame made it cost 14 times the small size and changed its colours).
    assert rgb_frames(two.files()["large"]) == rgb_frames(panned_gif.read_bytes())
