"""The placeholders against the reference ThumbHash and BlurHash code (npm `thumbhash`, `blurhash`,
run under Node by placeholders.mjs): ours are the same bytes the reference encoders write, and
the reference decoders paint them in the picture's mean colour."""

from __future__ import annotations

import base64
import fcntl
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from wand.color import Color
from wand.image import Image as WandImage

from tests import videos
from tests.corpus import PHOTOS_DIR
from thumbnailify.media import GIF, JPEG, MP4
from thumbnailify.settings import LimitsSettings, ThumbnailSettings, VideoSettings
from thumbnailify.worker.fingerprints import SAMPLE_SIDE, SQUARE_SIDE, Sample, blurhash, thumbhash
from thumbnailify.worker.handlers.image import ThumbHandler, apply_limits
from thumbnailify.worker.handlers.video import VideoHandler

ROOT = Path(__file__).resolve().parents[2]
NODE = "/usr/bin/node"
NODE_MODULES = ROOT / "var" / "node" / "node_modules"
SCRIPT = Path(__file__).with_name("placeholders.mjs")
MEAN_DISTANCE = 16  # of the decoded placeholder's mean colour from the sample's, 0..255 per channel
PHOTOS = ("astronaut.jpg", "coffee.jpg", "rocket_portrait.jpg", "camera.png")


def reference_packages() -> Path:
    """The npm packages (`make node`, which `make check` and `make test` run first). Under a lock:
    two test processes running npm in one folder at once leave it broken."""
    ROOT.joinpath("var").mkdir(exist_ok=True)
    with ROOT.joinpath("var", "node.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["make", "-s", "node"], cwd=ROOT, check=True, timeout=240)
    return NODE_MODULES


@pytest.fixture(scope="module")
def reference() -> Path:
    return reference_packages()


def as_sample(pixels: NDArray[np.uint8]) -> Sample:
    return Sample(pixels.shape[1], pixels.shape[0], pixels.tobytes())


def _photo(name: str, mode: str = "RGBA") -> NDArray[np.uint8]:
    with Image.open(PHOTOS_DIR / name) as img:
        img.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE))
        return np.asarray(img.convert(mode).convert("RGBA"))


def _samples() -> dict[str, NDArray[np.uint8]]:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (60, 90, 4), dtype=np.uint8)
    noise[..., 3] = 255
    translucent = _photo("chelsea.png").copy()
    translucent[:, : translucent.shape[1] // 2, 3] = 0  # the left half transparent
    translucent[:, translucent.shape[1] // 2 :, 3] = 128
    return {
        **{name: _photo(name) for name in PHOTOS},
        "noise": noise,
        "translucent": translucent,
        "one pixel": np.array([[[200, 30, 90, 255]]], dtype=np.uint8),
        "strip": np.repeat(_photo("coffee.jpg")[:1], 1, axis=0),  # 1 row high
        "grey": np.full((100, 100, 4), 128, dtype=np.uint8) | np.array([0, 0, 0, 255], dtype=np.uint8),
    }


def _weighted_mean(sample: NDArray[np.uint8]) -> np.ndarray:
    alpha = sample[..., 3:].astype(float) / 255
    return (sample[..., :3] * alpha).reshape(-1, 3).sum(axis=0) / max(alpha.sum(), 1e-9)


def _assert_same_thumbhash(ours: str, theirs: str, name: str) -> None:
    """The same bytes, but that a factor may round the other way: a tie at .5 (a picture of flat
    halves, a factor whose cosines sum to 0 exactly or, in floating point, to 1e-17) falls either
    side with the order sums are taken in. Every header byte equal, every 4-bit factor within 1;
    the photographs and the noise, which have no such ties, byte for byte."""
    if name in (*PHOTOS, "noise"):
        assert ours == theirs, name
        return
    mine, ref = base64.b64decode(ours), base64.b64decode(theirs)
    assert len(mine) == len(ref), name
    header = 6 if mine[2] & 0x80 else 5
    assert mine[:header] == ref[:header], name
    scales = (ref[2] >> 2 & 31, ref[3] >> 3 | (ref[4] & 1) << 5, ref[4] >> 1 & 63)
    if not any(scales) and header == 5:
        return  # a flat picture: its factors are multiplied by 0 (the reference writes rounding noise)
    nibbles = [(a >> shift & 15, b >> shift & 15) for a, b in zip(mine[header:], ref[header:], strict=True)
               for shift in (0, 4)]
    assert all(abs(a - b) <= 1 for a, b in nibbles), name
    assert sum(a != b for a, b in nibbles) <= len(nibbles) // 4, name


def linear_mean(sample: NDArray[np.uint8]) -> NDArray[np.float64]:
    """The mean colour of RGB(A) pixels in linear light, back in sRGB (what a BlurHash keeps)."""
    values = sample[..., :3].reshape(-1, 3).astype(float) / 255
    linear = np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4).mean(axis=0)
    return 255 * np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def test_placeholders_are_the_reference_encoders_and_decode_to_the_pictures_colour(reference: Path) -> None:
    samples = _samples()
    prints = {name: {"thumbhash": base64.b64encode(thumbhash.encode(as_sample(sample))).decode(),
                     "blurhash": blurhash.encode(as_sample(sample))} for name, sample in samples.items()}
    items = [{"width": s.shape[1], "height": s.shape[0], "rgba": base64.b64encode(s.tobytes()).decode()} | prints[name]
             for name, s in samples.items()]
    done = subprocess.run([NODE, str(SCRIPT), str(reference)], input=json.dumps({"items": items}),
                          capture_output=True, text=True, check=True, timeout=60)
    for (name, sample), ref in zip(samples.items(), json.loads(done.stdout), strict=True):
        ours = prints[name]
        _assert_same_thumbhash(ours["thumbhash"], ref["thumbhash_ref"], name)
        assert ours["blurhash"] == ref["blurhash_ref"], name
        assert ref["blurhash_valid"], name
        assert len(ours["blurhash"]) == 6 + 2 * (4 * 3 - 1)  # size, maximum, DC, then 11 AC terms
        if name == "one pixel":  # as the reference's own: ThumbHash's AC terms of one pixel shift its colour
            continue
        weighted = _weighted_mean(sample)
        if name != "strip":  # one pixel high: its vertical terms, sampled once, shift the colour (16.4 off)
            assert np.abs(np.array(ref["thumbhash_mean"]) - weighted).max() < MEAN_DISTANCE, name
        if name != "translucent":  # BlurHash ignores alpha: a transparent pixel counts as its colour
            assert np.abs(np.array(ref["blurhash_mean"]) - linear_mean(sample)).max() < MEAN_DISTANCE, name


def test_thumbhash_refuses_a_sample_over_its_limit() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        thumbhash.encode(as_sample(np.zeros((thumbhash.MAX_SIDE + 1, 10, 4), dtype=np.uint8)))


def test_a_sample_is_whole_rgba_rows() -> None:
    with pytest.raises(ValueError, match="not a 3x2 RGBA picture"):
        Sample(3, 2, bytes(3 * 2 * 4 - 1))


def test_a_videos_sample_is_its_turned_frame_at_the_smallest_size(tmp_path: Path) -> None:
    """A portrait phone video (display matrix 90 degrees): the sample is upright, in its colours."""
    path = tmp_path / "portrait.mp4"
    path.write_bytes(videos.mp4([videos.quadrants()] * 3, rotation=90))
    handler = VideoHandler(ThumbnailSettings(sizes="large=400x400,small=40x40"), LimitsSettings(), VideoSettings())
    made = handler.make(path, MP4)
    small = made.dimensions()["small"]
    sample = made.samples.picture
    assert (made.samples.square.width, made.samples.square.height) == (SQUARE_SIDE, SQUARE_SIDE)
    assert max(sample.width, sample.height) == min(SAMPLE_SIDE, max(small))
    assert sample.height > sample.width  # upright: taller than wide
    pixels = np.frombuffer(sample.rgba, dtype=np.uint8).reshape(sample.height, sample.width, 4)
    assert opaque(sample)
    want = np.asarray(videos.quadrants().convert("RGB")).reshape(-1, 3).mean(axis=0)
    assert np.abs(pixels[..., :3].reshape(-1, 3).mean(axis=0) - want).max() < MEAN_DISTANCE


def opaque(sample: Sample) -> bool:
    return sample.channel(3) == b"\xff" * (sample.width * sample.height)


def test_a_picture_without_alpha_scaled_to_its_samples_stays_opaque(tmp_path: Path) -> None:
    """ImageMagick 6's scale leaves the alpha of a picture that has none undefined, and the RGBA
    export read it: a random part of the samples came out transparent, and the ThumbHash said
    the picture had transparency (photos and videos whose smallest size was over the sample's)."""
    path = tmp_path / "portrait.mp4"
    path.write_bytes(videos.mp4([videos.quadrants()] * 3, rotation=90))
    video = VideoHandler(ThumbnailSettings(sizes="large=400x400"), LimitsSettings(), VideoSettings())
    apply_limits(LimitsSettings())
    photo = ThumbHandler(ThumbnailSettings(sizes="large=400x400"), LimitsSettings())
    for _ in range(3):
        for samples in (video.make(path, MP4).samples, photo.make(PHOTOS_DIR / "coffee.jpg", JPEG).samples):
            assert max(samples.picture.width, samples.picture.height) == SAMPLE_SIDE  # scaled down from 400
            assert opaque(samples.picture)
            assert opaque(samples.square)
            assert not thumbhash.encode(samples.picture)[2] & 0x80  # ThumbHash's alpha flag


def test_an_animations_sample_is_its_whole_first_canvas(tmp_path: Path) -> None:
    """A GIF whose first frame covers part of its canvas: the placeholders are of the canvas (what
    the thumbnail shows), not of the frame alone (a 20x10 strip for a 60x40 thumbnail)."""
    path = tmp_path / "offset.gif"
    with WandImage() as gif:
        for colour, page in (("red", (60, 40, 10, 10)), ("blue", (60, 40, 30, 20))):
            with WandImage(width=20, height=10, background=Color(colour)) as frame:
                frame.page = page
                gif.sequence.append(frame)
        gif.format = "gif"
        gif.save(filename=str(path))
    apply_limits(LimitsSettings())
    for sizes in ("default=100x100", "default=30x30"):  # the frames as they are, and resized
        made = ThumbHandler(ThumbnailSettings(sizes=sizes), LimitsSettings()).make(path, GIF)
        width, height = made.dimensions()["default"]
        sample = made.samples.picture
        assert abs(sample.width / sample.height - width / height) < 0.1, (sizes, sample.width, sample.height)
