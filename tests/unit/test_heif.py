"""HEIF/AVIF recognition (server) and header reading (worker), without a service.

The files are the corpus's, made by pillow-heif and Pillow; the hostile ones are cut or patched.
"""

from __future__ import annotations

import io
import random
import struct

import pytest

from tests import corpus
from thumbnailify import media
from thumbnailify.worker.handlers import heif


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    marked = corpus.marked((160, 120))
    return {
        "heic": corpus._encode(marked, "HEIF", quality=90),
        "avif": corpus._encode(marked, "AVIF", quality=90),
        "heic-rotated": corpus._encode(marked, "HEIF", quality=90, exif=corpus._exif(6)),
        "heic-p3": corpus._encode(marked, "HEIF", quality=90, icc_profile=corpus.display_p3_profile()),
    }


def test_brands_decide_the_type(files: dict[str, bytes]) -> None:
    assert media.sniff(files["heic"]) is media.HEIC
    assert media.sniff(files["avif"]) is media.AVIF
    assert media.looks_like(files["heic"], media.HEIF) and media.looks_like(files["heic"], media.HEIC)
    assert not media.looks_like(files["avif"], media.HEIC)  # AVIF names mif1 too: AV1 decides
    assert not media.looks_like(files["heic"], media.AVIF)
    compatible_only = struct.pack(">I", 24) + b"ftypXXXX" + bytes(4) + b"msf1heic"
    assert media.sniff(compatible_only) is media.HEIC
    mp4 = struct.pack(">I", 24) + b"ftypmp42" + bytes(4) + b"isommp42"
    assert media.sniff(mp4) is media.MP4  # a movie, never taken for HEIF
    assert not media.looks_like(mp4, media.HEIF) and not media.looks_like(mp4, media.AVIF)
    assert media.describe(mp4) == "video/mp4 or video/quicktime"
    unknown = struct.pack(">I", 16) + b"ftypXXXX" + bytes(4)
    assert media.sniff(unknown) is None and "XXXX" in media.describe(unknown)
    assert media.sniff(struct.pack(">I", 8) + b"ftypheic") is None  # a box too short for a brand


def test_primary_size_and_profile(files: dict[str, bytes]) -> None:
    for name in ("heic", "avif"):
        primary = heif.read_primary(io.BytesIO(files[name]))
        assert primary is not None and primary.size == (160, 120) and primary.icc is None, name
    rotated = heif.read_primary(io.BytesIO(files["heic-rotated"]))
    assert rotated is not None and rotated.size == (120, 160)  # irot 90: upright size
    tagged = heif.read_primary(io.BytesIO(files["heic-p3"]))
    assert tagged is not None and tagged.icc == corpus.display_p3_profile()


def test_lying_ispe_is_read_as_declared(files: dict[str, bytes]) -> None:
    patched = bytearray(files["heic"])
    for at in corpus.ispe_offsets(files["heic"]):
        struct.pack_into(">II", patched, at, 40_000, 40_000)
    primary = heif.read_primary(io.BytesIO(bytes(patched)))
    assert primary is not None and primary.size == (40_000, 40_000)


def test_broken_containers_never_raise(files: dict[str, bytes]) -> None:
    rnd = random.Random(3)
    data = files["heic"]
    variants = [data[:cut] for cut in range(0, len(data), 7)]
    for _ in range(300):
        b = bytearray(data)
        for _ in range(4):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        variants.append(bytes(b))
    variants.append(struct.pack(">I", 1) + b"meta" + struct.pack(">Q", 1 << 62))  # a 64-bit lie
    variants.append(struct.pack(">I", 16) + b"ftypheic" + bytes(4) + struct.pack(">I", 0) + b"meta")
    for variant in variants:
        heif.read_primary(io.BytesIO(variant))  # any answer but an exception
    assert heif.read_primary(io.BytesIO(data[:60])) is None


def test_grid_size_is_the_grids_whatever_its_ispe_says() -> None:
    hostile = corpus.heic_grid(16, 16, (8192, 8192), ispe=(100, 100), tile=(512, 512))
    assert len(hostile) < 3000
    primary = heif.read_primary(io.BytesIO(hostile))
    assert primary == heif.Primary((8192, 8192), None, 8192 * 8192, consistent=False)
    for grid_in_idat in (True, False):  # iloc construction method 1 (idat) and 0 (file offset)
        fitting = corpus.heic_grid(2, 2, (120, 100), grid_in_idat=grid_in_idat)
        assert heif.read_primary(io.BytesIO(fitting)) == heif.Primary((120, 100), None, 4 * 64 * 64), grid_in_idat
    tiled = corpus._encode(corpus.marked((256, 192)), "HEIF", quality=90, tile_size=64)  # as an iPhone writes
    assert b"grid" in tiled
    assert heif.read_primary(io.BytesIO(tiled)) == heif.Primary((256, 192), None, 256 * 192)
    rotated = corpus._encode(corpus.marked((256, 192)), "HEIF", quality=90, tile_size=64, exif=corpus._exif(6))
    assert heif.read_primary(io.BytesIO(rotated)) == heif.Primary((192, 256), None, 256 * 192)


def _patched_grid(structure: bytes) -> bytes:
    data = corpus.heic_grid(2, 2, (128, 128))
    at = data.index(b"idat") + 4
    return data[:at] + structure + data[at + len(structure) :]


@pytest.mark.parametrize(
    "structure",
    [
        bytes([0, 0, 2, 1]) + struct.pack(">HH", 128, 128),  # 3x2 tiles, 4 references
        bytes([1, 0, 1, 1]) + struct.pack(">HH", 128, 128),  # an unknown version
        bytes([0, 0, 1, 1]) + struct.pack(">HH", 129, 128),  # tiles do not cover the output
        bytes([0, 0, 1, 1]) + struct.pack(">HH", 64, 128),  # a column of tiles beyond it
        bytes([0, 0, 1, 1]) + struct.pack(">HH", 0, 128),
        bytes([0, 1, 1, 1]) + struct.pack(">HH", 128, 128),  # 32-bit sizes, but 8 bytes of data
    ],
)
def test_grid_that_does_not_add_up_is_refused(structure: bytes) -> None:
    assert heif.read_primary(io.BytesIO(_patched_grid(structure))) is None


def test_grid_structure() -> None:
    assert heif.parse_grid(bytes([0, 1, 0, 2]) + struct.pack(">II", 70_000, 5)) == heif.Grid(1, 3, (70_000, 5))
    assert heif.parse_grid(bytes([0, 0, 255, 255]) + struct.pack(">HH", 9, 9)) == heif.Grid(256, 256, (9, 9))
    assert heif.parse_grid(bytes([0, 0, 0, 0, 0, 9])) is None


def test_broken_grids_never_raise() -> None:
    data = corpus.heic_grid(16, 16, (8192, 8192), ispe=(100, 100), tile=(512, 512))
    rnd = random.Random(5)
    variants = [data[:cut] for cut in range(0, len(data), 3)]
    for _ in range(500):
        b = bytearray(data)
        for _ in range(3):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        variants.append(bytes(b))
    for variant in variants:
        primary = heif.read_primary(io.BytesIO(variant))  # any answer but an exception
        assert primary is None or primary.pixels is None or primary.pixels >= 0


def overlay(canvas: tuple[int, int], offsets: list[tuple[int, int]]) -> bytes:
    """ImageOverlay data: version 0, 16-bit fields, a fill colour, the canvas, each input's offset."""
    return bytes(2) + bytes(8) + struct.pack(">HH", *canvas) + b"".join(struct.pack(">hh", *at) for at in offsets)


def test_overlay_and_identity_are_their_structures_size() -> None:
    hostile = corpus.heic_derived(b"iovl", 1, overlay((8192, 8192), [(0, 0)]), (100, 100))
    assert heif.read_primary(io.BytesIO(hostile)) == heif.Primary(
        (8192, 8192), None, 8192 * 8192 + 64 * 64, consistent=False
    )
    fitting = corpus.heic_derived(b"iovl", 4, overlay((128, 128), [(0, 0), (64, 0), (0, 64), (64, 64)]), (128, 128))
    assert heif.read_primary(io.BytesIO(fitting)) == heif.Primary((128, 128), None, 128 * 128 + 4 * 64 * 64)
    identity = corpus.heic_derived(b"iden", 1, b"", (100, 100), tile=(512, 512))
    assert heif.read_primary(io.BytesIO(identity)) == heif.Primary((512, 512), None, 512 * 512)


@pytest.mark.parametrize(
    "data",
    [
        corpus.heic_grid(2, 2, (128, 128)).replace(b"hvc1\0", b"grid\0"),  # tiles that are grids
        corpus.heic_derived(b"iden", 2, b"", (64, 64)),  # two inputs
        corpus.heic_derived(b"iovl", 1, overlay((0, 64), [(0, 0)]), (64, 64)),
        corpus.heic_derived(b"iovl", 1, overlay((64, 64), [])[:12], (64, 64)),  # cut before the canvas
        corpus.heic_derived(b"iovl", 1, bytes([1]) + overlay((64, 64), [(0, 0)])[1:], (64, 64)),  # version 1
    ],
)
def test_derived_image_that_does_not_add_up_is_refused(data: bytes) -> None:
    assert heif.read_primary(io.BytesIO(data)) is None
