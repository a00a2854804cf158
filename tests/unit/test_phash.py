"""The perceptual hash: the same photograph re-encoded, resized, lightly cropped or captioned stays
within distance 10 of itself; 200 unrelated pictures do not come that near. The variants go
through the worker's own path (ThumbHandler's sample of the thumbnail, then the hash)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from tests.corpus import PHOTOS_DIR
from thumbnailify.media import JPEG, PNG
from thumbnailify.server.similar import DEFAULT_DISTANCE, nearest
from thumbnailify.settings import LimitsSettings, ThumbnailSettings
from thumbnailify.worker.fingerprints import SQUARE_SIDE, Sample, phash
from thumbnailify.worker.handlers.image import ThumbHandler, apply_limits

NEAR = DEFAULT_DISTANCE  # 10 of 64 bits
PHOTOS = ("astronaut.jpg", "chelsea.png", "coffee.jpg", "rocket_portrait.jpg", "camera.png")


@pytest.fixture(scope="module")
def handler() -> ThumbHandler:
    apply_limits(LimitsSettings())
    return ThumbHandler(ThumbnailSettings(), LimitsSettings())


def hash_of(handler: ThumbHandler, picture: Image.Image, tmp_path: Path, fmt: str = "JPEG", **save: int) -> int:
    path = tmp_path / f"picture.{fmt.lower()}"
    picture.save(path, fmt, **save)
    return phash.phash(handler.make(path, JPEG if fmt == "JPEG" else PNG).samples.square)


def caption(picture: Image.Image) -> Image.Image:
    """A caption stamped along the bottom, white with a black outline, as a meme maker does."""
    stamped = picture.copy()
    width, height = stamped.size
    ImageDraw.Draw(stamped).text((width * 0.04, height * 0.86), "Greetings from the coast, summer 2026",
                                 fill=(255, 255, 255), stroke_width=max(1, height // 150), stroke_fill=(0, 0, 0),
                                 font_size=max(10, height // 18))
    return stamped


def variants(photo: Image.Image) -> dict[str, tuple[Image.Image, dict[str, int]]]:
    width, height = photo.size
    # 5% of each side's length off, half at each end
    crop = (round(width * 0.025), round(height * 0.025), round(width * 0.975), round(height * 0.975))
    return {
        "re-encoded at quality 40": (photo, {"quality": 40}),
        "resized to 60%": (photo.resize((round(width * 0.6), round(height * 0.6)), Image.Resampling.LANCZOS), {}),
        "cropped 5%": (photo.crop(crop), {}),
        "captioned": (caption(photo), {}),
    }


def unrelated(exclude: str, count: int, seed: int) -> list[Image.Image]:
    """Other photographs' regions, turned and tinted, and drawings of shapes: cheap, and unlike
    the photograph `exclude` (of which nothing is used)."""
    rng = np.random.default_rng(seed)
    sources = [Image.open(PHOTOS_DIR / name).convert("RGB") for name in PHOTOS if name != exclude]
    pictures = []
    while len(pictures) < count:
        if len(pictures) % 2:
            source = sources[rng.integers(len(sources))]
            w, h = source.size
            cw, ch = int(w * rng.uniform(0.3, 0.7)), int(h * rng.uniform(0.3, 0.7))
            x, y = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
            region = source.crop((x, y, x + cw, y + ch)).rotate(90 * int(rng.integers(4)), expand=True)
            if rng.random() < 0.5:
                region = ImageOps.mirror(region)
            pictures.append(region)
        else:
            drawing = Image.new("RGB", (160, 120), tuple(int(c) for c in rng.integers(0, 256, 3)))
            draw = ImageDraw.Draw(drawing)
            for _ in range(int(rng.integers(2, 7))):
                box = sorted(rng.integers(0, 160, 2)), sorted(rng.integers(0, 120, 2))
                shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
                shape((box[0][0], box[1][0], box[0][1], box[1][1]), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
            pictures.append(drawing)
    return pictures


def sample_hash(picture: Image.Image) -> int:
    """The hash from a sample made as the worker's is (the default 100x100 thumbnail, squeezed
    into SQUARE_SIDE x SQUARE_SIDE), without ImageMagick."""
    small = picture.convert("RGBA")
    small.thumbnail((100, 100))
    square = small.resize((SQUARE_SIDE, SQUARE_SIDE), Image.Resampling.BOX)
    return phash.phash(Sample(SQUARE_SIDE, SQUARE_SIDE, square.tobytes()))


@pytest.mark.parametrize("name", PHOTOS)
def test_the_same_photo_changed_stays_near_and_others_stay_far(handler: ThumbHandler, tmp_path: Path,
                                                               name: str) -> None:
    photo = Image.open(PHOTOS_DIR / name).convert("RGB")
    original = hash_of(handler, photo, tmp_path, quality=92)
    for change, (picture, save) in variants(photo).items():
        apart = phash.distance(original, hash_of(handler, picture, tmp_path, **save))
        assert apart <= NEAR, (name, change, apart)
    others = unrelated(name, 200, seed=PHOTOS.index(name))
    distances = sorted(phash.distance(original, sample_hash(other)) for other in others)
    assert distances[0] > NEAR, (name, distances[:5])


def test_the_sample_path_and_imagemagicks_agree(handler: ThumbHandler, tmp_path: Path) -> None:
    """sample_hash stands for the worker's own path in the test above: they hash a photo alike."""
    for name in PHOTOS:
        photo = Image.open(PHOTOS_DIR / name).convert("RGB")
        assert phash.distance(hash_of(handler, photo, tmp_path, fmt="PNG"), sample_hash(photo)) <= 4, name


# Each photograph's hash through the worker's own path (default thumbnail, square sample): a
# change of the hash's arithmetic moves these, and stored hashes would stop matching new ones.
PINNED = {"astronaut.jpg": "c2924c5532bddfc8", "chelsea.png": "b15fe6465121175e", "coffee.jpg": "bb832037cc0f3637",
          "rocket_portrait.jpg": "d9663a451b64aa75", "camera.png": "bff1c1c0434e8cbc"}


def test_the_photographs_hash_as_they_did(handler: ThumbHandler) -> None:
    for name, value in PINNED.items():
        samples = handler.make(PHOTOS_DIR / name, JPEG if name.endswith(".jpg") else PNG).samples
        assert f"{phash.phash(samples.square):016x}" == value, name


def test_terms_that_are_zero_but_for_rounding_count_as_zero() -> None:
    """A flat picture's AC terms, and a mirrored one's odd terms, come out as +-1e-14 or so:
    counted as zero, they fall on the same side of the median on every machine."""
    flat = Sample(SQUARE_SIDE, SQUARE_SIDE, bytes([90, 140, 200, 255]) * SQUARE_SIDE ** 2)
    assert phash.phash(flat) == 1 << 63  # only the DC term is above the median (0)
    half = bytes([250, 250, 250, 255]) * (SQUARE_SIDE // 2) + bytes([10, 10, 10, 255]) * (SQUARE_SIDE // 2)
    stripes = Sample(SQUARE_SIDE, SQUARE_SIDE, half * SQUARE_SIDE)  # light left, dark right: no vertical terms
    value = phash.phash(stripes)
    assert all(not value >> (63 - row * 8 - column) & 1 for row in range(1, 8) for column in range(8))


def test_the_hash_is_of_a_square_sample() -> None:
    with pytest.raises(ValueError, match="32x32"):
        phash.phash(Sample(32, 24, bytes(32 * 24 * 4)))


def test_the_hash_is_64_bits_of_which_about_half_are_set() -> None:
    value = sample_hash(Image.open(PHOTOS_DIR / "coffee.jpg"))
    assert 0 <= value < 1 << 64
    assert 24 <= value.bit_count() <= 40  # the median splits the 64 frequencies


def test_nearest_orders_by_distance_then_id_and_leaves_the_item_out() -> None:
    names = ("b", "a", "self", "c", "far")
    ids = {name: f"{index:08d}-0000-4000-8000-000000000000" for index, name in enumerate(names)}
    hashes = {"b": "0000000000000003", "a": "0000000000000003", "self": "0000000000000000",
              "c": "8000000000000000", "far": "fffffffffffffff0"}
    packed = "".join(ids[name] + value for name, value in hashes.items())
    assert nearest(packed, ids["self"], "0000000000000000", 16) == [(1, ids["c"]), (2, ids["b"]), (2, ids["a"])]
    assert nearest(packed, ids["self"], "0000000000000000", 0) == []
    assert nearest(packed, ids["self"], "ffffffffffffffff", 4) == [(4, ids["far"])]
    assert nearest("", ids["self"], "0000000000000000", 16) == []
    with pytest.raises(ValueError, match="52-character rows"):
        nearest(packed[:-1], ids["self"], "0000000000000000", 16)
