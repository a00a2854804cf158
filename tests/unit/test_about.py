"""What the worker reads about an original (worker.handlers.about and the handlers' metadata):
profile names as LittleCMS reads them, EXIF times, hostile text, every frame of an animation,
a video's size, codec, seconds, camera and time."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from PIL import Image, ImageCms

from tests import videos
from tests.colour import display_p3_profile
from tests.corpus import animated_gif
from thumbnailify.media import GIF, MP4, PNG, WEBP
from thumbnailify.settings import LimitsSettings, ThumbnailSettings, VideoSettings
from thumbnailify.worker.handlers.about import (
    MAX_TEXT,
    clean_text,
    exif_time,
    frames_in_file,
    icc_description,
    iso_time,
)
from thumbnailify.worker.handlers.video import VideoHandler

COLORD = Path("/usr/share/color/icc/colord")


@pytest.mark.parametrize("name", ["sRGB.icc", "AdobeRGB1998.icc", "ProPhotoRGB.icc", "Rec709.icc", "Crayons.icc"])
def test_an_icc_v4_profiles_name_is_what_littlecms_reads(name: str) -> None:
    path = COLORD / name
    want = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(str(path))).strip()
    assert icc_description(path.read_bytes()) == want and want


def test_an_icc_v2_profiles_name() -> None:
    profile = display_p3_profile()
    assert icc_description(profile) == "Display P3 (Thumbnailify test)"
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip() == \
        "Display P3 (Thumbnailify test)"


@pytest.mark.parametrize("profile", [None, b"", b"\0" * 131, b"\0" * 128 + b"\xff\xff\xff\xff",
                                     (COLORD / "sRGB.icc").read_bytes()[:200]])
def test_a_damaged_profile_has_no_name(profile: bytes | None) -> None:
    assert icc_description(profile) is None


@pytest.mark.parametrize(("moment", "offset", "want"), [
    ("2026:07:14 15:32:10", "+02:00", "2026-07-14T15:32:10+02:00"),
    ("2026:07:14 15:32:10", None, "2026-07-14T15:32:10"),
    ("2026:07:14 15:32:10", "garbage", "2026-07-14T15:32:10"),
    ("2026:02:30 15:32:10", None, None),  # no such day
    ("0000:00:00 00:00:00", None, None),  # what cameras without a clock write
    ("    :  :     :  :  ", None, None),
    (b"2026:07:14 15:32:10\0", None, "2026-07-14T15:32:10"),
    (12345, None, None),
])
def test_exif_times(moment: object, offset: object, want: str | None) -> None:
    assert exif_time(moment, offset) == want


def test_container_times_are_utc() -> None:
    assert iso_time("2026-07-14T13:32:10.000000Z") == "2026-07-14T13:32:10Z"
    assert iso_time("2026-07-14T15:32:10+0200") == "2026-07-14T13:32:10Z"
    assert iso_time("not a time") is None


def test_text_from_a_file_is_printable_and_bounded() -> None:
    assert clean_text("Apple\0\x07\n") == "Apple"
    assert clean_text(b"\xffCanon") == "\ufffdCanon"
    assert len(clean_text("x" * 10_000) or "") == MAX_TEXT
    assert clean_text("   ") is None and clean_text(None) is None and clean_text(3) is None


def test_every_frame_of_an_animation_is_counted(tmp_path: Path) -> None:
    gif = tmp_path / "a.gif"
    gif.write_bytes(animated_gif())
    assert frames_in_file(gif, GIF) == Image.open(gif).n_frames == 5
    frames = [Image.new("RGB", (40, 30), (i * 40, 0, 0)) for i in range(7)]
    webp = tmp_path / "a.webp"
    frames[0].save(webp, "WEBP", save_all=True, append_images=frames[1:], duration=50)
    assert frames_in_file(webp, WEBP) == 7
    still = tmp_path / "still.webp"
    frames[0].save(still, "WEBP")
    assert frames_in_file(still, WEBP) == 1
    assert frames_in_file(gif, PNG) is None


def test_a_truncated_or_garbled_animation_counts_what_is_whole(tmp_path: Path) -> None:
    data = animated_gif()
    cut = tmp_path / "cut.gif"
    cut.write_bytes(data[: len(data) // 2])
    assert frames_in_file(cut, GIF) is None  # runs off the end: unknown, not a guess
    garbled = tmp_path / "garbled.gif"
    garbled.write_bytes(data[:-1] + b"\x99")  # not the trailer
    assert frames_in_file(garbled, GIF) == 5


def test_a_videos_metadata(tmp_path: Path) -> None:
    path = tmp_path / "phone.mp4"
    path.write_bytes(videos.mp4([videos.quadrants()] * 20, rotation=90))
    with av.open(str(path)) as probe:
        seconds = probe.duration / av.time_base
    handler = VideoHandler(ThumbnailSettings(), LimitsSettings(), VideoSettings())
    about = handler.make(path, MP4).metadata
    width, height = videos.quadrants().size
    assert (about.width, about.height) == (height, width)  # turned by the display matrix
    assert about.format == "h264" and about.frames is None and not about.has_alpha
    assert about.duration == pytest.approx(seconds, abs=0.01) and about.duration > 1.5
    assert about.captured_at is None and about.camera_make is None


def test_a_phones_video_tells_its_camera_and_time_but_never_its_place(tmp_path: Path) -> None:
    source = tmp_path / "plain.mov"
    source.write_bytes(videos.mov([videos.quadrants()] * 5))
    path = tmp_path / "phone.mov"
    with av.open(str(source)) as inp, av.open(str(path), "w", format="mov",
                                               options={"movflags": "use_metadata_tags"}) as out:
        out.metadata.update({"creation_time": "2026-07-14T13:32:10.000000Z", "com.apple.quicktime.make": "Apple",
                             "com.apple.quicktime.model": "iPhone 15 Pro",
                             "com.apple.quicktime.location.ISO6709": "+48.8566+002.3522+035.000/"})
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    about = VideoHandler(ThumbnailSettings(), LimitsSettings(), VideoSettings()).make(path, MP4).metadata
    assert about.captured_at == "2026-07-14T13:32:10Z"
    assert (about.camera_make, about.camera_model) == ("Apple", "iPhone 15 Pro")
    assert "48.85" not in repr(about)
