"""HEIF/AVIF recognition (server) and header reading (worker), without a service.

The files are the corpus's, made by pillow-heif and Pillow; the hostile ones are cut or patched.
"""

from __future__ import annotations

import io
import random
import struct

import pytest

from common import media
from tests import corpus
from worker import heif


@pytest.fixture(scope="session")
def real_services() -> None:
    """Overrides conftest's autouse check for Redis/RabbitMQ: these tests touch no service."""


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
