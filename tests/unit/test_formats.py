"""Each size in its format, in this process without a service: the photo and video handlers'
output per format, and what a format cannot hold (frames, transparency) made of it."""

from __future__ import annotations

import dataclasses
import io
import struct
from pathlib import Path

import pytest
from PIL import Image, ImageSequence

from tests import corpus, videos
from thumbnailify.media import ACCEPTED, AVIF, GIF, JPEG, MP4, PNG, WEBP, MediaType

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


def offset_first_frame_gif() -> bytes:
    """A 200x150 GIF whose one frame, red, covers only 80x60 at (60, 45); the rest is no pixel at all."""
    out = io.BytesIO()
    Image.new("RGB", (80, 60), (255, 0, 0)).save(out, "GIF")
    data = bytearray(out.getvalue())
    data[6:10] = struct.pack("<HH", 200, 150)
    image = next(start for kind, start, _ in corpus.gif_blocks(bytes(data)) if kind == "image")
    data[image + 1 : image + 5] = struct.pack("<HH", 60, 45)
    return bytes(data)


def test_only_the_first_frame_is_decoded_when_no_size_holds_an_animation(tmp_path: Path) -> None:
    """JPEG and PNG alone: one frame decoded, laid on its canvas (white in JPEG, clear in PNG)."""
    source = tmp_path / "partial.gif"
    source.write_bytes(corpus.partial_frame_gif())
    still = ThumbHandler(ThumbnailSettings(sizes="a=100x100:jpeg,b=40x40:png"), LimitsSettings()).make(source, GIF)
    moving = ThumbHandler(ThumbnailSettings(sizes="a=100x100:jpeg,b=40x40:webp"), LimitsSettings()).make(source, GIF)
    assert (still.frames, moving.frames) == (1, 5)
    assert still.files()["a"] == moving.files()["a"]  # the same first frame either way
    offset = tmp_path / "offset.gif"
    offset.write_bytes(offset_first_frame_gif())
    for made in (ThumbHandler(ThumbnailSettings(sizes=sizes), LimitsSettings()).make(offset, GIF)
                 for sizes in ("a=100x100:jpeg,b=100x100:png", "a=100x100:jpeg,b=100x100:png,c=10x10")):
        jpeg, png = (frames(made.files()[name])[0] for name in ("a", "b"))
        assert jpeg.size == png.size == (100, 75)
        assert jpeg.getpixel((5, 5))[:3] == (255, 255, 255) and png.getpixel((5, 5))[3] == 0  # canvas
        assert all(abs(a - b) <= 8 for a, b in zip(jpeg.getpixel((50, 37)), (255, 0, 0, 255), strict=True))
        assert png.getpixel((50, 37)) == (255, 0, 0, 255)


# What a format cannot hold, by the corpus check that says so: the only misses allowed.
CANNOT_HOLD: dict[MediaType, tuple[str, ...]] = {
    JPEG: ("HasAlpha", "MeanAlpha", "FrameCount", "FrameMeanColours"),  # no alpha, one frame
    PNG: ("FrameCount", "FrameMeanColours"),  # one frame (no APNG)
    GIF: ("MeanAlpha",),  # alpha on or off: half-transparent pixels are one or the other
    WEBP: ("Grayscale",),  # lossy WebP is YUV 4:2:0: a gray picture's channels differ by 1
    AVIF: (),
}


LARGE_PICTURE = 500_000  # pixels: past every photo of the corpus


def declared_pixels(data: bytes) -> int:
    size = corpus.declared_size(data)
    return size[0] * size[1] if size else 0


def test_every_photo_of_the_corpus_in_every_format(tmp_path: Path) -> None:
    """Each Completed photo case of tests/corpus.py (colour models, bit depths, palettes, alpha,
    orientation, profiles, animations, HEIC...) made in every format: it decodes, has the case's
    size, and passes the case's pixel checks but for what the format cannot hold."""
    made_by = ThumbHandler(ThumbnailSettings(sizes=EVERY_FORMAT), LimitsSettings())
    misses, cases = [], 0
    for case in corpus.cached_cases():
        media_type = ACCEPTED.get(case.content_type)
        if case.expect_state != "Completed" or case.body is None or media_type is None:
            continue
        if media_type.name[:5] != "image":
            continue
        if declared_pixels(case.body) > LARGE_PICTURE:
            continue  # the limit cases (a 50 MP picture, 1000x1000 frames): their decode is the cost
        source = tmp_path / case.name
        source.write_bytes(case.body)
        cases += 1
        for size in made_by.make(source, media_type).sizes[1:]:
            allowed = tuple(f"{check}:" for check in CANNOT_HOLD[size.media_type])
            found = corpus.run_checks(size.data, dataclasses.replace(case, expect_type=size.media_type.name))
            misses += [f"{case.name} as {size.name}: {miss}" for miss in found if not miss.startswith(allowed)]
    assert cases > 80
    assert misses == []
