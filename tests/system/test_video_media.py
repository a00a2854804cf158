"""Video recognition (server) and the video handler's own decisions, without a service.

The service-level outcomes of every generated video are in tests/system/test_video.py; here: the magic
rules byte by byte, that the hostile files really are hostile (FFmpeg left to its defaults or
with data references on would do what the worker refuses), and how the decoder is set up.
"""

from __future__ import annotations

import errno
import io
import itertools
import random
import struct
from pathlib import Path

import av
import pytest
from av.stream import Discard
from av.video.frame import PictureType
from PIL import Image

from tests.videos import (
    HLS_PLAYLIST,
    MATROSKA_HEADER,
    black_then_skip_frames,
    mov,
    quadrants,
    video_cases,
    webm,
    with_external_reference,
    yuv_frame,
)
from thumbnailify import media
from thumbnailify.settings import LimitsSettings, ThumbnailSettings, VideoSettings
from thumbnailify.worker.handlers import video
from thumbnailify.worker.handlers.image import ImageRejected
from thumbnailify.worker.handlers.video import VideoHandler

YELLOW_QUADRANTS = [quadrants(colours=((255, 255, 0),) * 4)] * 5
# EBML header with 1-byte sizes: versions, ID and size lengths, DocType "webm"
WEBM_HEADER = bytes.fromhex("1a45dfa39f 428681 01 42f781 01 42f281 04 42f381 08 428284") + b"webm"


@pytest.fixture(scope="session")
def real_services() -> None:
    """Overrides conftest's autouse check for Redis/RabbitMQ: these tests touch no service."""


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    return struct.pack(">I", 16 + 4 * len(compatible)) + b"ftyp" + major + bytes(4) + b"".join(compatible)


@pytest.mark.parametrize(
    ("head", "found"),
    [
        (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), media.MP4),  # what FFmpeg and most cameras write
        (ftyp(b"mp42", b"mp42", b"isom"), media.MP4),
        (ftyp(b"qt  ", b"qt  "), media.MP4),  # QuickTime: the same family, one demuxer
        (ftyp(b"3gp4", b"3gp4"), media.MP4),
        (ftyp(b"M4V ", b"M4V ", b"mp42"), media.MP4),
        (ftyp(b"heic", b"mif1", b"heic"), media.HEIC),  # still images stay images
        (ftyp(b"avif", b"avif", b"mif1", b"isom"), media.AVIF),
        (ftyp(b"mif1", b"mif1", b"heic", b"iso8"), media.HEIC),
        (struct.pack(">I", 8) + b"wide" + struct.pack(">I", 1024) + b"mdat", media.QUICKTIME),  # before ftyp existed
        (struct.pack(">I", 4096) + b"moov" + bytes(8), media.QUICKTIME),
        (ftyp(b"XXXX", b"YYYY"), None),
        (struct.pack(">I", 4) + b"moov", None),  # an atom too small to be one
        (WEBM_HEADER, media.WEBM),
        (MATROSKA_HEADER, None),
        (HLS_PLAYLIST[:64], None),
    ],
)
def test_magic(head: bytes, found: media.MediaType | None) -> None:
    assert media.sniff(head) is found


def test_webm_header_with_eight_byte_sizes_and_what_pyav_writes() -> None:
    long_sizes = (
        b"\x1a\x45\xdf\xa3\x01\x00\x00\x00\x00\x00\x00\x1f"
        b"\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm"
    )
    assert media.ebml_doctype(long_sizes) == "webm"
    assert media.sniff(webm(YELLOW_QUADRANTS[:1])[: media.SNIFF_BYTES]) is media.WEBM
    assert media.ebml_doctype(MATROSKA_HEADER) == "matroska"
    assert media.describe(MATROSKA_HEADER) == "an EBML file with DocType 'matroska' (not WebM)"


def test_broken_ebml_never_raises() -> None:
    rnd = random.Random(5)
    header = WEBM_HEADER
    variants = [header[:cut] for cut in range(len(header))]
    for _ in range(500):
        garbled = bytearray(header + bytes(30))
        for _ in range(3):
            garbled[rnd.randrange(4, len(garbled))] = rnd.randrange(256)
        variants.append(bytes(garbled))
    for variant in variants:
        media.sniff(variant)  # any answer but an exception
        media.describe(variant)


def test_playlists_and_scripts_are_named() -> None:
    assert media.describe(HLS_PLAYLIST[:64]) == "an HLS playlist (application/vnd.apple.mpegurl)"
    assert media.describe(b"ffconcat version 1.0\nfile a.mp4\n") == "an FFmpeg concat script"
    assert not media.looks_like(HLS_PLAYLIST[:64], media.MP4)


def test_the_external_reference_case_is_a_real_attack(tmp_path: Path) -> None:
    """With data references on, FFmpeg shows the other file's frames; the handler reads none."""
    referenced = mov(YELLOW_QUADRANTS)
    (tmp_path / "ref.mov").write_bytes(referenced)
    hostile = tmp_path / "hostile.mov"
    hostile.write_bytes(with_external_reference(referenced, "ref.mov"))
    with av.open(str(hostile), container_options={"enable_drefs": "1"}) as followed:
        picture = next(followed.decode(video=0)).to_image()
    assert picture.getpixel((5, 5)) == pytest.approx((255, 255, 0), abs=8)
    with pytest.raises(ImageRejected) as refused:
        handler().make(hostile, media.QUICKTIME)
    assert refused.value.code == 422


def test_a_declared_type_opens_only_its_demuxer(tmp_path: Path) -> None:
    """A WebM stored under a video/mp4 record (it cannot pass the server's magic check, but the
    record is the worker's only word) is read by the mov demuxer, which refuses it: no probing."""
    path = tmp_path / "movie"
    path.write_bytes(webm(YELLOW_QUADRANTS[:2]))
    with pytest.raises(ImageRejected) as refused:
        handler().make(path, media.MP4)
    assert refused.value.code == 422
    assert handler().make(path, media.WEBM).dimensions() == {"default": (100, 56)}


def test_a_photo_type_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "photo"
    path.write_bytes(b"\xff\xd8\xff" + bytes(100))
    with pytest.raises(ImageRejected) as refused:
        handler().make(path, media.JPEG)
    assert refused.value.code == 415


@pytest.mark.parametrize(
    ("codec", "size", "options"),
    [
        ("h264", (1920, 1080), {"skip_loop_filter": "all"}),  # no lowres in H.264
        ("h264", (160, 90), {}),  # the thumbnail is the frame: nothing may be skipped
        ("h264", (199, 112), {}),  # under twice the box
        ("mjpeg", (1280, 720), {"skip_loop_filter": "all", "lowres": "2"}),  # 320x180: still 2x 100x56
        ("mjpeg", (4000, 3000), {"skip_loop_filter": "all", "lowres": "3"}),
        ("mpeg4", (400, 224), {"skip_loop_filter": "all", "lowres": "1"}),
    ],
)
def test_decoder_reductions_keep_twice_the_largest_size(codec: str, size: tuple[int, int], options: dict) -> None:
    assert handler()._reductions(codec, *size) == options


def test_settings_key_follows_what_changes_the_picture() -> None:
    base = handler().settings_key
    assert base == handler().settings_key
    assert handler(scan_seconds=2.0).settings_key != base
    assert handler(sizes="default=100x100,large=400x400").settings_key != base


def handler(scan_seconds: float = 5.0, sizes: str = "") -> VideoHandler:
    return VideoHandler(ThumbnailSettings(sizes=sizes), LimitsSettings(), VideoSettings(scan_seconds=scan_seconds))


# --------------------------------------------------------------------------
# What devices record, and the handler's setup of such files
# --------------------------------------------------------------------------


def device_file(name: str) -> bytes:
    case = next(case for case in video_cases() if case.name == name)
    assert case.body is not None
    return case.body


@pytest.fixture(scope="module")
def devices() -> dict[str, av.container.InputContainer]:
    """The device-like cases of tests/videos.py, opened as FFmpeg sees them."""
    names = ("mp4-h264-aac", "mov-h264-aac", "webm-vp9-opus", "mp4-audio-stream-first", "mp4-portrait-with-sound",
             "mp4-h264-bframes", "mov-hevc-10bit-aac", "mp4-variable-frame-rate", "mp4-second-video-track")
    cases = {case.name: case for case in video_cases()}
    return {name: av.open(io.BytesIO(cases[name].body or b"")) for name in names}


def test_the_device_files_are_what_they_claim(devices: dict[str, av.container.InputContainer]) -> None:
    def streams(name: str) -> list[tuple[str, str]]:
        return [(stream.type, stream.codec_context.name) for stream in devices[name].streams]

    assert streams("mp4-h264-aac") == streams("mov-h264-aac") == [("video", "h264"), ("audio", "aac")]
    assert streams("webm-vp9-opus") == [("video", "vp9"), ("audio", "opus")]
    assert streams("mp4-audio-stream-first") == [("audio", "aac"), ("video", "h264")]
    assert streams("mp4-portrait-with-sound") == [("audio", "aac"), ("video", "h264")]
    assert streams("mov-hevc-10bit-aac") == [("video", "hevc"), ("audio", "aac")]
    assert devices["mov-hevc-10bit-aac"].streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    assert streams("mp4-second-video-track") == [("video", "h264"), ("video", "h264"), ("audio", "aac")]
    rotated = next(devices["mp4-portrait-with-sound"].decode(video=0))
    assert rotated.rotation == -90
    kinds = [PictureType(frame.pict_type) for frame in devices["mp4-h264-bframes"].decode(video=0)]
    assert kinds.count(PictureType.B) >= 3, kinds
    times = [frame.time for frame in devices["mp4-variable-frame-rate"].decode(video=0)]
    gaps = {round(later - earlier, 3) for earlier, later in itertools.pairwise(times)}
    assert len(gaps) > 2, times


def test_every_other_stream_is_discarded(tmp_path: Path) -> None:
    path = tmp_path / "movie.mp4"
    path.write_bytes(device_file("mp4-second-video-track"))
    with handler()._open(path, media.MP4) as container:
        video = handler()._video_stream(container, media.MP4)
        assert video.index == 0
        assert [stream.discard for stream in container.streams] == [Discard.default, Discard.all, Discard.all]


def test_skip_frame_takes_the_names_pyav_18_knows() -> None:
    """The scan switches the decoder between keyframes only and every frame by name (a str in PyAV
    18, unlike a stream's discard): each name must be one it takes, and a wrong one raises."""
    with av.open(io.BytesIO(mov(YELLOW_QUADRANTS[:1]))) as container:
        context = container.streams.video[0].codec_context
        for name in ("NONKEY", "DEFAULT"):
            context.skip_frame = name
            assert context.skip_frame == name
        with pytest.raises(ValueError, match="Invalid skip_frame"):
            context.skip_frame = "nonkey"


# --------------------------------------------------------------------------
# The black-frame scan's budget
# --------------------------------------------------------------------------


def test_the_scan_stops_at_its_frame_budget_with_the_brightest_frame(tmp_path: Path) -> None:
    """A 4K black keyframe, one dim red frame, then thousands of skipped frames (a dimmer blue)
    before white: the scan decodes SCAN_FRAMES of them at most and keeps the dim red one."""
    path = tmp_path / "skips.mp4"
    path.write_bytes(black_then_skip_frames(skips=video.SCAN_FRAMES + 50))
    made = handler().make(path, media.MP4)  # with no budget: the white frame, after every skipped one
    with Image.open(io.BytesIO(made.sizes[0].data)) as thumbnail:
        red, green, blue = thumbnail.convert("RGB").getpixel((50, 28))
    assert red > 80 and green < 30 and blue < 30, (red, green, blue)


def test_the_scan_stops_at_its_cpu_budget(tmp_path: Path) -> None:
    path = tmp_path / "skips.mp4"
    path.write_bytes(black_then_skip_frames(skips=100, size=(640, 360)))
    with av.open(str(path)) as container:
        first = next(container.decode(video=0))
        scan = video.Scan(first, cpu_until=0.0)
        with pytest.raises(video.ScanSpent):
            next(scan.frames(container.decode(video=0)))
        scan = video.Scan(first, frames_left=3)
        assert len(list(itertools.islice(scan.frames(container.decode(video=0)), 3))) == 3
        with pytest.raises(video.ScanSpent):
            next(scan.frames(container.decode(video=0)))


def test_the_brightest_frame_is_the_earliest_of_equals() -> None:
    dim, dimmer = yuv_frame((64, 36), 12, 128, 200), yuv_frame((64, 36), 6, 200, 128)
    scan = video.Scan(yuv_frame((64, 36), 0, 128, 128))
    assert scan.is_black(dimmer) and scan.is_black(dim) and scan.is_black(yuv_frame((64, 36), 12, 128, 200))
    assert scan.brightest is dim
    assert video.mean_luma(dim) == pytest.approx(12, abs=0.5)
    assert not scan.is_black(yuv_frame((64, 36), 17, 128, 128))



def test_a_failed_allocation_is_a_413(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg's ENOMEM (PyAV's av.MemoryError, past worker.memory_limit) is the upload's fault, named."""

    def out_of_memory(*_args: object) -> None:
        raise av.error.MemoryError(errno.ENOMEM, "Cannot allocate memory")

    path = tmp_path / "movie.mov"
    path.write_bytes(mov(YELLOW_QUADRANTS[:1]))
    monkeypatch.setattr(VideoHandler, "_open", staticmethod(out_of_memory))
    with pytest.raises(ImageRejected) as refused:
        handler().make(path, media.QUICKTIME)
    assert (refused.value.code, str(refused.value)) == (
        413, "cannot decode video/quicktime: it needs more memory than the worker has"
    )
