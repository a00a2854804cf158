"""The worker's ImageMagick security policy is in force (ImageTragick, CVE-2016-3714).

These run in-process: importing `worker` points MAGICK_CONFIGURE_PATH at worker/imagemagick,
exactly as every worker process does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from wand.exceptions import PolicyError
from wand.image import Image

import thumbnailify.worker  # noqa: F401  (sets the policy before Wand loads)
from tests import corpus
from thumbnailify import state
from thumbnailify.media import GIF, JPEG, PNG
from thumbnailify.settings import Settings
from thumbnailify.worker.handlers.image import ImageRejected, ThumbHandler, apply_limits

MVG = b"push graphic-context\nviewbox 0 0 640 480\nfill 'url(https://example.com/image.jpg)'\npop graphic-context\n"
SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">'
       b'<image xlink:href="https://example.com/x.png" width="10" height="10"/></svg>')


@pytest.fixture
def handler() -> ThumbHandler:
    settings = Settings()
    apply_limits(settings.limits)
    return ThumbHandler(settings.thumbnail, settings.limits)


@pytest.mark.parametrize(
    ("name", "data", "spec"),
    [("x.mvg", MVG, "mvg:{}"), ("x.svg", SVG, "svg:{}"), ("x.svg", SVG, "{}"), ("x.txt", b"hello", "txt:{}"),
     ("x.ps", b"%!PS-Adobe-3.0\nshowpage\n", "ps:{}"), ("list", b"/etc/passwd\n", "@{}"),
     ("x.png", b"", "https://example.com/x.png"), ("x.png", b"", "xc:red")],
)
def test_policy_refuses_dangerous_coders(tmp_path: Path, name: str, data: bytes, spec: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(PolicyError), Image(filename=spec.format(path)):
        pass


@pytest.mark.parametrize("media_type", [PNG, JPEG, GIF])
@pytest.mark.parametrize("payload", [MVG, SVG])
def test_explicit_coder_never_reads_another_format(tmp_path: Path, handler: ThumbHandler, media_type, payload) -> None:
    """Even if the magic check were bypassed, a script named .png is read as PNG and refused."""
    path = tmp_path / "upload"
    path.write_bytes(payload)
    with pytest.raises(ImageRejected) as refused:
        handler.make(path, media_type)
    assert refused.value.code == state.UNDECODABLE


def test_limits_are_lowered_per_process() -> None:
    from wand.resource import limits

    settings = Settings()
    apply_limits(settings.limits)
    assert limits["memory"] == 96 * 1024 * 1024
    assert limits["area"] == settings.limits.max_pixels
    assert limits["width"] == settings.limits.magick_width
    assert limits["time"] > 10**12  # no time limit: it would kill a long-lived worker


def test_linear_gray_png_does_not_trip_wand(tmp_path: Path, handler: ThumbHandler) -> None:
    """A gAMA 1.0 gray PNG is LinearGRAY, which Wand's img.colorspace cannot name (IndexError)."""
    import io
    import struct

    from PIL import Image as PILImage
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", struct.pack(">I", 100000))
    buffer = io.BytesIO()
    PILImage.linear_gradient("L").resize((200, 150)).save(buffer, "PNG", pnginfo=info)
    path = tmp_path / "linear-gray.png"
    path.write_bytes(buffer.getvalue())
    with Image(filename=f"PNG:{path}") as img, pytest.raises(IndexError):
        _ = img.colorspace  # the trap itself, so this test notices if Wand ever fixes it
    thumbnail = handler.make(path, PNG).sizes[0]
    assert (thumbnail.width, thumbnail.height) == (100, 75)
    with PILImage.open(io.BytesIO(thumbnail.data)) as made:
        assert made.mode in ("L", "LA", "I", "I;16")


def test_heic_is_neither_read_nor_written(tmp_path: Path) -> None:
    """HEIC/HEIF are decoded by pillow-heif and their thumbnails are JPEG or PNG, so ImageMagick's
    HEIC coder (Debian's libheif 1.15) is closed both ways; AVIF uploads are read by it, but AVIF
    thumbnails are written by libavif, so it may only read."""
    avif = tmp_path / "red.avif"
    avif.write_bytes(corpus._encode(corpus.marked((16, 16)), "AVIF", quality=90))
    with Image(filename=f"AVIF:{avif}") as img:
        assert img.size == (16, 16)
        for format_name in ("AVIF", "HEIC"):
            img.format = format_name
            with pytest.raises(PolicyError):
                img.make_blob()
    heic = tmp_path / "red.heic"
    heic.write_bytes(corpus._encode(corpus.marked((16, 16)), "HEIF", quality=90))
    with pytest.raises(PolicyError):
        Image(filename=f"HEIC:{heic}")
