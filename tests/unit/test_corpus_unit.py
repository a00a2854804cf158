"""Fast checks of the test corpus itself: it must be well-formed before it can judge the service.

No service is needed (tests/unit/conftest.py): the corpus is checked in this process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import struct
from pathlib import Path

import pytest
from PIL import Image, ImageCms, ImageOps, ImageSequence

from tests import colour, corpus
from tests.corpus import (
    ALLOWED_TYPES,
    Case,
    Corner,
    FrameCount,
    HasAlpha,
    build_cases,
    cached_cases,
    declared_size,
    fit_size,
    has_magic,
    max_pixels_default,
    run_checks,
)

PHOTOS = Path(corpus.__file__).resolve().parent / "data" / "photos"
Image.MAX_IMAGE_PIXELS = None  # the 50 MP boundary case is intended


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return list(cached_cases(PHOTOS))


@pytest.fixture(scope="module")
def by_name(cases: list[Case]) -> dict[str, Case]:
    return {c.name: c for c in cases}


# ---------------------------------------------------------------- shape of the corpus


def test_enough_unique_slug_names(cases: list[Case]) -> None:
    names = [c.name for c in cases]
    assert len(names) >= 60
    assert len(set(names)) == len(names)
    bad = [n for n in names if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n)]
    assert not bad


def test_generation_is_deterministic(cases: list[Case]) -> None:
    again = build_cases(PHOTOS)  # a second generation, not the cached one

    def digest(c: Case) -> str:
        return hashlib.sha256(c.request_body()).hexdigest()

    assert [(c.name, digest(c)) for c in cases] == [(c.name, digest(c)) for c in again]
    assert cases == again


def test_expectation_fields_are_consistent(cases: list[Case]) -> None:
    for c in cases:
        assert c.expect_http in (202, 400, 413, 415), c.name
        assert (c.body is None) != (c.raw_base64 is None), c.name
        if c.expect_http != 202:
            assert (c.expect_state, c.expect_code, c.expect_size, c.expect_type, c.checks) == (
                None,
                None,
                None,
                None,
                (),
            ), c.name
        elif c.expect_state == "Completed":
            assert c.expect_code is None and c.expect_size and c.expect_type, c.name
            assert c.expect_type in ALLOWED_TYPES.values(), c.name
            w, h = c.expect_size
            assert 1 <= w <= 100 and 1 <= h <= 100 and (w == 100 or h == 100 or c.body is not None), c.name
        else:
            assert c.expect_state == "Error" and c.expect_code in (413, 415, 422), c.name
            assert c.expect_size is None and c.expect_type is None and not c.checks, c.name


def test_accepted_bodies_carry_the_right_magic(cases: list[Case]) -> None:
    for c in cases:
        if c.expect_http == 202:
            assert c.content_type in ALLOWED_TYPES, c.name
            assert c.body is not None and has_magic(c.body, c.content_type), c.name
            assert base64.b64decode(c.request_body(), validate=True) == c.body, c.name


def test_unsupported_media_is_unsupported(cases: list[Case]) -> None:
    for c in cases:
        if c.expect_http == 415:
            assert c.body is not None, c.name
            assert c.content_type not in ALLOWED_TYPES or not has_magic(c.body, c.content_type), c.name


def test_bad_base64_is_really_bad(cases: list[Case]) -> None:
    """Whitespace is tolerated (line-broken base64 is fine), anything else must be exact RFC 4648."""
    bad = [c for c in cases if c.expect_http == 400]
    assert len(bad) >= 5
    for c in bad:
        assert c.raw_base64 is not None, c.name
        squeezed = re.sub(rb"\s", b"", c.raw_base64)
        try:
            decoded = binascii.a2b_base64(squeezed, strict_mode=True)
        except binascii.Error:
            continue
        assert decoded == b"", f"{c.name} decodes to {len(decoded)} bytes"


def test_required_cases_exist(by_name: dict[str, Case]) -> None:
    required = [
        *(f"jpeg-exif-orientation-{n}" for n in range(1, 9)),
        "jpeg-cmyk-no-icc",
        "jpeg-cmyk-with-icc",
        "jpeg-grayscale",
        "png-grayscale",
        "png-16bit-rgb",
        "png-16bit-gray",
        "png-rgba",
        "png-gray-alpha",
        "png-palette-trns",
        "png-interlaced-adam7",
        "jpeg-progressive",
        "jpeg-subsampling-444",
        "jpeg-subsampling-422",
        "jpeg-subsampling-420",
        "png-40x30",
        "png-extreme-2000x20",
        "png-1x1",
        "gif-animated-5-frames",
        "gif-transparent",
        "webp-lossy",
        "webp-lossless-rgba",
        "jpeg-as-image-jpg",
        "base64-empty-body",
        "base64-whitespace-only",
        "base64-invalid-chars",
        "base64-missing-padding",
        "random-bytes-as-png",
        "png-as-jpeg",
        "jpeg-as-gif",
        "tiff-as-image-tiff",
        "svg-as-image-svg",
        "text-plain",
        "svg-remote-href-as-png",
        "mvg-remote-url-as-png",
        "postscript-as-jpeg",
        "jpeg-truncated-headers-only",
        "jpeg-truncated-scan-50pct",
        "jpeg-truncated-scan-90pct",
        "png-truncated-idat-50pct",
        "png-truncated-idat-90pct",
        "gif-truncated-first-frame-50pct",
        "webp-truncated-50pct",
        "webp-truncated-90pct",
        "png-ihdr-bad-crc",
        "jpeg-sof-marker-destroyed",
        "png-ihdr-100000x100000",
        "jpeg-sof-65000x65000",
        "gif-screen-65535x65535",
        "png-10000x5001-just-over-limit",
        "body-over-20mib",
        *(f"{ext}-{label}" for ext in ("jpeg", "png", "webp") for label in ("display-p3", "adobe-rgb", "prophoto")),
        "heic-display-p3",
        "avif-display-p3",
        "heic-photo",
        "heif-photo",
        "avif-photo",
        "heic-orientation-6",
        "avif-orientation-5",
        "heic-truncated-in-mdat",
        "heic-ftyp-then-garbage",
        "heic-ispe-40000x40000",
        "heic-as-jpeg",
        "jpeg-as-heic",
        "gif-animated-over-frame-budget",
    ]
    missing = [n for n in required if n not in by_name]
    assert not missing
    photos = [c for c in by_name.values() if c.name.startswith("photo-")]
    assert {c.content_type for c in photos} >= {"image/jpeg", "image/png"}
    assert sum(c.content_type == "image/jpeg" for c in photos) >= 4


# ---------------------------------------------------------------- photos


def test_photos_are_small_real_and_documented() -> None:
    files = sorted(p for p in PHOTOS.iterdir() if p.suffix in (".jpg", ".png"))
    assert 4 <= len(files) <= 6
    sources = (PHOTOS / "SOURCES.md").read_text()
    shapes = set()
    for p in files:
        assert p.stat().st_size <= 150 * 1024, p.name
        assert p.name in sources, f"{p.name} has no entry in SOURCES.md"
        with Image.open(p) as img:
            shapes.add("landscape" if img.width > img.height else "portrait" if img.height > img.width else "square")
    assert {"landscape", "portrait"} <= shapes
    assert {p.suffix for p in files} == {".jpg", ".png"}
    assert sources.count("Licence:") >= len(files)


# ---------------------------------------------------------------- the files are what their names say


def _sof_components(data: bytes) -> list[tuple[int, int, int]]:
    off, _ = corpus.jpeg_sof(data)
    n = data[off + 9]
    return [(data[off + 10 + 3 * i], data[off + 11 + 3 * i] >> 4, data[off + 11 + 3 * i] & 15) for i in range(n)]


def test_jpeg_variants_are_encoded_as_claimed(by_name: dict[str, Case]) -> None:
    def body(name: str) -> bytes:
        data = by_name[name].body
        assert data is not None
        return data

    assert corpus.jpeg_sof(body("jpeg-progressive"))[1] == 0xC2
    assert corpus.jpeg_sof(body("jpeg-baseline"))[1] == 0xC0
    sampling = {name: _sof_components(body(f"jpeg-subsampling-{name}"))[0][1:] for name in ("444", "422", "420")}
    assert sampling == {"444": (1, 1), "422": (2, 1), "420": (2, 2)}
    assert len(_sof_components(body("jpeg-cmyk-no-icc"))) == 4
    assert len(_sof_components(body("jpeg-grayscale"))) == 1
    with Image.open(io.BytesIO(body("jpeg-exif-gps-comment-xmp"))) as img:
        assert img.getexif()[0x010F] == "ThumbnailifyCam"
        assert img.info.get("comment") and img.info.get("xmp")


def test_cmyk_profile_is_valid_and_maps_red_to_red(by_name: dict[str, Case]) -> None:
    data = by_name["jpeg-cmyk-with-icc"].body
    assert data is not None
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "CMYK"
        profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
        rgb = ImageCms.profileToProfile(img, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
        assert rgb is not None
        for (x, y), want in (((20, 15), (255, 0, 0)), ((140, 15), (0, 255, 0)), ((20, 105), (0, 0, 255))):
            got = rgb.getpixel((x, y))
            assert all(abs(g - w) < 60 for g, w in zip(got, want, strict=True)), (x, y, got)


def test_png_variants_are_encoded_as_claimed(by_name: dict[str, Case]) -> None:
    def ihdr(name: str) -> tuple[int, ...]:
        data = by_name[name].body
        assert data is not None and data[12:16] == b"IHDR"
        return struct.unpack(">IIBBBBB", data[16:29])

    assert ihdr("png-interlaced-adam7")[6] == 1
    assert ihdr("png-16bit-rgb")[2:4] == (16, 2)
    assert ihdr("png-16bit-rgba")[2:4] == (16, 6)
    assert ihdr("png-16bit-gray")[2:4] == (16, 0)
    assert ihdr("png-gray-alpha")[3] == 4
    assert ihdr("png-palette-trns")[3] == 3
    data = by_name["png-palette-trns"].body
    assert data is not None and b"tRNS" in data


def test_gifs_are_encoded_as_claimed(by_name: dict[str, Case]) -> None:
    partial = by_name["gif-animated-partial-frames"].body
    assert partial is not None
    frames = [b for b in corpus.gif_blocks(partial) if b[0] == "image"]
    assert len(frames) == 5
    sizes = [struct.unpack("<HH", partial[s + 5 : s + 9]) for _, s, _ in frames]
    assert sizes[0] == (200, 150) and all(s != (200, 150) for s in sizes[1:]), sizes
    with Image.open(io.BytesIO(by_name["gif-animated-5-frames"].body or b"")) as img:
        assert img.n_frames == 5 and img.info.get("loop") == 0


def test_failures_really_fail_to_decode_with_pillow(cases: list[Case]) -> None:
    """A second decoder agrees that every 422 case is undecodable (bar the documented leniencies)."""
    lenient = {"png-idat-bad-crc"}  # Pillow skips IDAT CRCs; libpng (ImageMagick) rejects them, as the PNG spec asks
    decoded = []
    for c in cases:
        if c.expect_code != 422 or c.name in lenient:
            continue
        try:
            with Image.open(io.BytesIO(c.body or b"")) as img:
                for frame in ImageSequence.Iterator(img):
                    frame.load()
        except Exception:  # any decoder error is what we want
            continue
        decoded.append(c.name)
    assert decoded == []


def test_oversized_headers_declare_too_many_pixels(cases: list[Case], by_name: dict[str, Case]) -> None:
    limit = max_pixels_default()
    for c in cases:
        if c.expect_code == 413:
            size = declared_size(c.body or b"")
            assert size is not None and size[0] * size[1] > limit, (c.name, size)
    assert declared_size(by_name["png-10000x5001-just-over-limit"].body or b"") == (10_000, 5_001)
    at_limit = declared_size(by_name["png-10000x5000-at-limit"].body or b"")
    assert at_limit is not None and at_limit[0] * at_limit[1] == limit
    for c in cases:
        if c.expect_state == "Completed":
            size = declared_size(c.body or b"")
            assert size is not None and size[0] * size[1] <= limit, c.name
    big = by_name["body-over-20mib"].body
    assert big is not None and len(big) == 20 * 1024 * 1024 + 1 and big.startswith(corpus.PNG_SIG)


def test_truncations_are_inside_the_data(by_name: dict[str, Case]) -> None:
    for name in ("jpeg-truncated-scan-50pct", "jpeg-truncated-scan-90pct", "jpeg-progressive-truncated-first-scan"):
        data = by_name[name].body or b""
        assert data[-2:] != b"\xff\xd9" and len(data) > corpus.jpeg_segments(data)[-1][2], name
    for name in ("png-truncated-idat-50pct", "png-truncated-idat-90pct"):
        data = by_name[name].body or b""
        assert b"IEND" not in data and b"IDAT" in data, name


# ---------------------------------------------------------------- expectations and run_checks


@pytest.mark.parametrize(
    ("w", "h", "want"),
    [
        (600, 400, (100, 67)),
        (360, 239, (100, 66)),
        (320, 427, (75, 100)),
        (40, 30, (40, 30)),
        (2000, 20, (100, 1)),
        (3000, 10, (100, 1)),
        (1, 1, (1, 1)),
        (100, 100, (100, 100)),
        (99, 101, (98, 100)),
    ],
)
def test_fit_size(w: int, h: int, want: tuple[int, int]) -> None:
    assert fit_size(w, h) == want


def _to_8bit(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I"):
        return img.point(lambda v: v / 257).convert("L")  # type: ignore[arg-type, operator]
    return img


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """Pixels converted from the embedded profile to sRGB, as a colour-managed viewer shows them."""
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK"):
        return img
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError):
        return img  # a profile no CMS can open: taken as sRGB
    out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
    return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode=out_mode)


def reference_thumbnail(case: Case) -> bytes:
    """What a correct worker produces, made with Pillow only: proves every Completed case is satisfiable."""
    assert case.body is not None and case.expect_size is not None and case.expect_type is not None
    fmt = {v: k for k, v in corpus.MEDIA_TYPES.items()}[case.expect_type]
    with Image.open(io.BytesIO(case.body)) as src:
        frames = []
        for frame in ImageSequence.Iterator(src):
            img = _to_8bit(ImageOps.exif_transpose(frame.copy()) or frame.copy())
            img = _to_srgb(img, src.info.get("icc_profile"))
            if img.mode == "CMYK":
                img = img.convert("RGB")
            elif img.mode == "P" or (fmt == "GIF" and img.mode != "L"):
                img = img.convert("RGBA")
            small = img.resize(case.expect_size, Image.Resampling.LANCZOS)
            small.info = {}  # Pillow would otherwise write the JPEG comment back
            frames.append(small)
    kept = next((check.n for check in case.checks if isinstance(check, FrameCount)), None)
    frames = frames[:kept]  # an animation's frames past the configured limits are left out
    buf = io.BytesIO()
    if fmt == "GIF":
        frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], loop=0, disposal=2)
    elif fmt == "JPEG":
        frames[0].convert("L" if frames[0].mode == "L" else "RGB").save(buf, "JPEG", quality=90)
    else:
        frames[0].save(buf, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buf.getvalue()


def test_every_completed_case_is_satisfiable(cases: list[Case]) -> None:
    failures = {}
    for c in cases:
        if c.expect_state == "Completed":
            problems = run_checks(reference_thumbnail(c), c)
            if problems:
                failures[c.name] = problems
    assert not failures


def test_orientation_table_matches_pillow(by_name: dict[str, Case]) -> None:
    for n, (red_at, green_at) in corpus.ORIENTATION_CORNERS.items():
        case = by_name[f"jpeg-exif-orientation-{n}"]
        with Image.open(io.BytesIO(case.body or b"")) as img:
            assert img.getexif()[0x0112] == n
            upright = ImageOps.exif_transpose(img)
        assert upright is not None
        out = io.BytesIO()
        upright.save(out, "PNG")
        probe = Case(
            "probe",
            "image/png",
            b"x",
            None,
            202,
            "Completed",
            None,
            None,
            None,
            (Corner(red_at, corpus.RED), Corner(green_at, corpus.GREEN)),
        )
        assert run_checks(out.getvalue(), probe) == [], n


def test_run_checks_catches_wrong_thumbnails(by_name: dict[str, Case]) -> None:
    upright = reference_thumbnail(by_name["jpeg-exif-orientation-1"])
    # Orientation 6 ignored: wrong size, corners in the wrong places.
    problems = run_checks(upright, by_name["jpeg-exif-orientation-6"])
    assert any("size" in p for p in problems) and sum("Corner" in p for p in problems) >= 2
    # EXIF kept.
    with Image.open(io.BytesIO(by_name["jpeg-exif-orientation-3"].body or b"")) as img:
        kept = io.BytesIO()
        img.resize((100, 75)).save(kept, "JPEG", exif=img.getexif().tobytes())
    assert any("EXIF" in p for p in run_checks(kept.getvalue(), by_name["jpeg-exif-orientation-3"]))
    # Transparency flattened into a JPEG.
    flat = io.BytesIO()
    Image.new("RGB", (100, 75), corpus.RED).save(flat, "JPEG")
    problems = run_checks(flat.getvalue(), by_name["png-rgba"])
    assert any("type" in p for p in problems) and any("HasAlpha" in p for p in problems)
    # Animation lost: a single frame.
    single = io.BytesIO()
    Image.new("RGB", (100, 75), corpus.RED).save(single, "GIF")
    assert any("FrameCount" in p for p in run_checks(single.getvalue(), by_name["gif-animated-5-frames"]))
    # CMYK decoded inverted (cyan where red should be).
    cyan = io.BytesIO()
    Image.new("RGB", (100, 75), (0, 255, 255)).save(cyan, "JPEG")
    assert any("MeanColour" in p for p in run_checks(cyan.getvalue(), by_name["jpeg-cmyk-no-icc"]))
    # Colour where grayscale is expected; 16-bit kept.
    assert any("Grayscale" in p for p in run_checks(cyan.getvalue(), by_name["jpeg-grayscale"]))
    deep = corpus.make_png(100, 75, 16, 2, (b"\0" + b"\xff\xff\0\0\0\0" * 100) * 75)
    assert any("BitDepth" in p for p in run_checks(deep, by_name["png-16bit-rgb"]))
    # Enlarged small image; garbage bytes.
    assert any("size" in p for p in run_checks(upright, by_name["png-40x30"]))
    assert run_checks(b"not an image", by_name["png-rgb"])[0].startswith("thumbnail does not decode")
    # The checks accept what they should.
    assert FrameCount(1).check(Image.open(io.BytesIO(single.getvalue())), single.getvalue()) == []
    assert HasAlpha(False).check(Image.open(io.BytesIO(flat.getvalue())), flat.getvalue()) == []


def test_write_corpus(tmp_path: Path, cases: list[Case]) -> None:
    manifest = corpus.write_corpus(tmp_path, PHOTOS)
    entries = json.loads(manifest.read_text())
    assert [e["name"] for e in entries] == [c.name for c in cases]
    for entry, case in zip(entries, cases, strict=True):
        assert (tmp_path / entry["file"]).read_bytes() == (case.body if case.body is not None else case.raw_base64)


# ---------------------------------------------------------------- colour


@pytest.mark.parametrize(
    ("lab1", "lab2", "want"),
    [  # Sharma, Wu, Dalal (2005), the CIEDE2000 test data
        ((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
        ((50, 2.5, 0), (73, 25, -18), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
        ((22.7233, 20.0904, -46.694), (23.0331, 14.973, -42.5619), 2.0373),
        ((90.8027, -2.0831, 1.441), (91.1528, -1.6435, 0.0447), 1.4441),
    ],
)
def test_ciede2000_matches_the_reference_data(lab1, lab2, want) -> None:
    assert abs(colour.ciede2000(lab1, lab2) - want) < 1e-4


def test_display_p3_profile_has_the_published_colorants() -> None:
    rows = colour.p3_colorants_d50()
    apple = ((0.51512, 0.29198, 0.15710), (0.24120, 0.69225, 0.06657), (-0.00105, 0.04189, 0.78407))
    assert all(abs(a - b) < 2e-4 for row, ref in zip(rows, apple, strict=True) for a, b in zip(row, ref, strict=True))
    profile = ImageCms.ImageCmsProfile(io.BytesIO(colour.display_p3_profile()))
    assert "Display P3" in ImageCms.getProfileDescription(profile)


def test_delta_e_check_catches_an_ignored_profile(by_name: dict[str, Case]) -> None:
    """A worker that keeps the numbers but drops the profile fails every wide-gamut case."""
    for label in corpus.wide_gamut_profiles():
        for ext in ("jpeg", "png", "webp"):
            case = by_name[f"{ext}-{label}"]
            with Image.open(io.BytesIO(case.body or b"")) as src:
                ignored = io.BytesIO()
                src.convert("RGB").resize(case.expect_size or src.size).save(ignored, "PNG")
            problems = run_checks(ignored.getvalue(), case)
            assert sum("DeltaE" in p for p in problems) >= 3, (case.name, problems)
