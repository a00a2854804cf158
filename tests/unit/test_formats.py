"""Each size in its format, in this process without a service: the photo and video handlers'
output per format, and what a format cannot hold (frames, transparency) made of it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageSequence

from tests import corpus, videos
from thumbnailify.media import AVIF, GIF, JPEG, MP4, PNG, WEBP

# worker/__init__ runs first and sets ImageMagick's env (1 thread, our policy) before Wand loads.
from thumbnailify.settings import LimitsSettings, ThumbnailSettings, VideoSettings
from thumbnailify.worker.handlers.image import ThumbHandler, apply_limits
from thumbnailify.worker.handlers.video import VideoHandler

EVERY_FORMAT = "own=100x100,j=100x100:jpeg,p=100x100:png,w=100x100:webp,a=100x100:avif,g=100x100:gif"
PILLOW_NAMES = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP", AVIF: "AVIF", GIF: "GIF"}


@pytest.fixture(scope="module", autouse=True)
def worker_limits() -> None:
    apply_limits(LimitsSettings())


def frames(data: bytes) -> list[Image.Image]:
    with Image.open(io.BytesIO(data)) as image:
        return [frame.convert("RGBA") for frame in ImageSequence.Iterator(image)]


def test_a_gif_whose_first_frame_covers_part_of_its_canvas(tmp_path: Path) -> None:
    """JPEG and PNG take the first frame as the whole canvas; WebP and AVIF keep every frame whole."""
    source = tmp_path / "partial.gif"
    source.write_bytes(corpus.partial_frame_gif())
    made = ThumbHandler(ThumbnailSettings(sizes=EVERY_FORMAT), LimitsSettings()).make(source, GIF)
    assert made.media_type is GIF and [size.media_type for size in made.sizes] == [GIF, JPEG, PNG, WEBP, AVIF, GIF]
    with Image.open(source) as original:
        expected = [frame.convert("RGB").resize((100, 75)) for frame in ImageSequence.Iterator(original)]
    for size in made.sizes:
        got = frames(size.data)
        with Image.open(io.BytesIO(size.data)) as image:
            assert image.format == PILLOW_NAMES[size.media_type]
        assert len(got) == (1 if size.media_type in (JPEG, PNG) else 5), size.name
        for frame, want in zip(got, expected, strict=False):
            assert frame.size == (100, 75)
            for point in ((5, 5), (50, 37), (95, 70)):  # the canvas and the part each frame covers
                got, wanted = frame.getpixel(point), want.getpixel(point)
                assert all(abs(a - b) <= 24 for a, b in zip(got, wanted, strict=False)), (size.name, point, got, wanted)


def test_each_size_format_is_part_of_the_settings_key() -> None:
    """An identical upload reuses thumbnails only when made under the same formats and qualities."""
    key = ThumbHandler(ThumbnailSettings(sizes="a=100x100"), LimitsSettings()).settings_key
    webp = ThumbHandler(ThumbnailSettings(sizes="a=100x100:webp"), LimitsSettings()).settings_key
    quality = ThumbHandler(ThumbnailSettings(sizes="a=100x100", quality={"webp": 50}), LimitsSettings()).settings_key
    assert len({key, webp, quality}) == 3


def test_a_video_size_in_its_format(tmp_path: Path) -> None:
    """Opaque in every format (a frame has no alpha), its quadrants where they belong."""
    source = tmp_path / "clip.mp4"
    source.write_bytes(videos.mp4([videos.quadrants()] * 3))
    handler = VideoHandler(ThumbnailSettings(sizes="default=100x100,card=160x160:webp,hero=320x320:avif,p=64x64:png"),
                           LimitsSettings(), VideoSettings())
    made = handler.make(source, MP4)
    assert [(size.name, size.media_type) for size in made.sizes] == [
        ("default", JPEG), ("card", WEBP), ("hero", AVIF), ("p", PNG)]
    for size, box in zip(made.sizes, (100, 160, 320, 64), strict=True):
        with Image.open(io.BytesIO(size.data)) as image:
            assert image.format == PILLOW_NAMES[size.media_type]
            assert image.size == corpus.fit_size(*videos.SIZE, box) == (size.width, size.height)
            picture = image.convert("RGBA")
        corners = ((2, 2), (picture.width - 3, 2), (2, picture.height - 3), (picture.width - 3, picture.height - 3))
        for point, colour in zip(corners, videos.QUADRANTS, strict=True):
            got = picture.getpixel(point)
            assert all(abs(a - b) <= 24 for a, b in zip(got, (*colour, 255), strict=True)), (size.name, point, got)
