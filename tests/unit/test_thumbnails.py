"""ThumbHandler in this process, without a service: what each size of a thumbnail is made from."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, ImageStat

from tests import corpus
from thumbnailify.media import GIF, HEIC, JPEG, PNG

# worker/__init__ runs first and sets ImageMagick's env (1 thread, our policy) before Wand loads.
from thumbnailify.settings import LimitsSettings, ThumbnailSettings
from thumbnailify.worker.handlers import image
from thumbnailify.worker.handlers.image import ThumbHandler, apply_limits

GIF_FRAMES, GIF_SIZE = 100, (160, 120)


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


def heic_10_bit(path: Path) -> Path:
    """64x48, left half red and right half blue at 10 bits (pillow-heif writes 16-bit input as 10)."""
    rows = b"".join(struct.pack("<HHH", 65535, 0, 0) if x < 32 else struct.pack("<HHH", 0, 0, 65535) for x in range(64))
    pillow_heif.from_bytes(mode="RGB;16", size=(64, 48), data=rows * 48).save(path, quality=95)
    assert pillow_heif.open_heif(path).info["bit_depth"] == 10
    return path


def test_heic_of_10_bits_gray_and_alpha(tmp_path: Path) -> None:
    """HEIC decoded by pillow-heif: 10 bits scaled to 8, gray, alpha kept (a PNG thumbnail)."""
    made = handler().make(heic_10_bit(tmp_path / "ten.heic"), HEIC)
    assert (made.media_type, made.dimensions()) == (JPEG, {"default": (64, 48)})
    with Image.open(io.BytesIO(made.files()["default"])) as img:
        left, right = img.convert("RGB").crop((0, 0, 24, 48)), img.convert("RGB").crop((40, 0, 64, 48))
        assert all(abs(got - want) < 12 for got, want in zip(ImageStat.Stat(left).mean, (255, 0, 0), strict=True))
        assert all(abs(got - want) < 12 for got, want in zip(ImageStat.Stat(right).mean, (0, 0, 255), strict=True))
    gray = tmp_path / "gray.heic"
    gray.write_bytes(corpus._encode(Image.new("L", (64, 48), 90), "HEIF", quality=95))
    made = handler().make(gray, HEIC)
    with Image.open(io.BytesIO(made.files()["default"])) as img:
        assert made.media_type is JPEG and abs(ImageStat.Stat(img.convert("L")).mean[0] - 90) < 4
    rgba = Image.new("RGBA", (80, 60), (0, 0, 0, 0))
    rgba.paste((0, 200, 0, 255), (20, 15, 60, 45))
    clear = tmp_path / "alpha.heic"
    clear.write_bytes(corpus._encode(rgba, "HEIF", quality=95))
    made = handler().make(clear, HEIC)
    assert made.media_type is PNG
    with Image.open(io.BytesIO(made.files()["default"])) as img:
        pixels = img.convert("RGBA")
        assert pixels.getpixel((2, 2))[3] == 0 and pixels.getpixel((40, 30)) == (0, 200, 0, 255)


def test_large_heic_reaches_imagemagick_reduced(tmp_path: Path) -> None:
    """As libjpeg's shrink-on-load: a 1600x1200 HEIC is handed to ImageMagick at 200x150 (twice the
    100x75 thumbnail), not as 1600x1200, and its thumbnail is still fitted to the whole picture."""
    rgba = Image.new("RGBA", (1600, 1200), (0, 0, 0, 0))
    rgba.paste((250, 40, 40, 255), (400, 300, 1200, 900))
    path = tmp_path / "large.heic"
    path.write_bytes(corpus._encode(rgba, "HEIF", quality=90))
    decoded = image._decode_heif(path, (200, 150))
    assert (decoded.mode, decoded.size, decoded.full_size) == ("RGBA", (200, 150), (1600, 1200))
    made = handler().make(path, HEIC)
    assert (made.media_type, made.dimensions()) == (PNG, {"default": (100, 75)})
    with Image.open(io.BytesIO(made.files()["default"])) as img:
        pixels = img.convert("RGBA")
        assert pixels.getpixel((5, 5))[3] == 0 and pixels.getpixel((95, 70))[3] == 0
        centre = pixels.getpixel((50, 37))
        assert all(abs(got - want) < 12 for got, want in zip(centre, (250, 40, 40, 255), strict=True))
