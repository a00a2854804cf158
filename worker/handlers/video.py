"""Video thumbnails with PyAV (FFmpeg's libraries, bundled in its wheel).

The picture: the first frame within `video.scan_seconds` whose mean luma is above 16 (a black
intro is passed over), else the brightest frame looked at (the earliest of equals); turned upright
by the stream's display matrix (a phone's portrait video), fitted into every configured size like
a photo, as JPEG.

Finding it costs little: the first frame is decoded; only when it is black are the keyframes of the
scan window decoded (the rest skipped by the decoder), and then the one stretch between the last
black keyframe and the first bright one frame by frame, after a seek. Frames are scaled straight
from YUV to each thumbnail size by swscale; the decoder runs single-threaded and, where that cannot
show at thumbnail size, without its loop filter. The search has a budget: SCAN_FRAMES decoded
frames and SCAN_CPU_SECONDS of CPU time; when it runs out (a 4K black keyframe followed by
thousands of skipped frames takes minutes to decode), the brightest frame seen so far is taken.

A hostile file gets nothing from FFmpeg but its own decoders, nor any index it cannot hold: the
sample tables of an MP4/MOV are checked against its size before FFmpeg opens it (thumbnailify.worker.handlers.isobmff;
FFmpeg would size its index from their counts), and a decoder's failed allocation under the
worker's memory limit (worker.memory_limit) is a 413. Otherwise: the upload is opened through the
`file` protocol only, with the one demuxer its declared type names (never a probe that could pick
the HLS or concat readers), MOV external data references off, and only the video codecs listed
here decoded. Frame size is checked against `limits.max_pixels` from the stream header before
anything is decoded, and every decoder gets the same cap (`max_pixels`), so even FFmpeg's probing
decode cannot allocate past it. Time is bounded by the job's alarm (worker.job_timeout).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from av.stream import Discard
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from wand.color import Color
from wand.image import Image

from thumbnailify import state
from thumbnailify.kinds import media_kind
from thumbnailify.media import BY_FORMAT, JPEG, MOV_DEMUXER, MediaType
from thumbnailify.record import Metadata
from thumbnailify.settings import LimitsSettings, Settings, ThumbnailSettings, VideoSettings
from thumbnailify.worker.fingerprints import Samples
from thumbnailify.worker.handlers import ImageRejected, SizedThumbnail, Thumbnails, isobmff
from thumbnailify.worker.handlers.about import clean_text, iso_time
from thumbnailify.worker.handlers.encode import encode
from thumbnailify.worker.handlers.image import fit
from thumbnailify.worker.handlers.sample import export_samples

RENDERING = "video-2"  # changed whenever a change of this module changes what thumbnails look like
BLACK_LUMA = 16  # mean luma (limited range) at or below this is a black frame
LUMA_PROBE = (64, 36)  # the size a frame is scaled to for its mean luma
SCAN_FRAMES = 300  # frames the search for a bright one may decode: 5 s at 60 fps ...
SCAN_CPU_SECONDS = 4.0  # ... and CPU time it may take (a 4K frame is about 8 ms)
# Decoders of what cameras, phones and screen recorders write; anything else is a 415.
CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg", "prores", "mpeg2video", "h263"})
# Decoders that can decode at 1/2, 1/4 or 1/8 of the size (FFmpeg's `lowres`), and how far.
LOWRES = {"mjpeg": 3, "mpeg4": 3, "h263": 3, "mpeg2video": 3}
# Demuxer options: the upload itself and nothing it names.
CONTAINER_OPTIONS = {
    "protocol_whitelist": "file",
    "enable_drefs": "0",  # MOV: never open the files a `dref` atom points to ...
    "use_absolute_path": "0",  # ... nor absolute paths (both FFmpeg's defaults, stated here)
    # No decoder runs while FFmpeg probes the streams: the frame size checked is the header's, and
    # the first frame of a bomb is never decoded there (VP9 and others would, whatever skip_frame).
    "codec_whitelist": "none",
    "probesize": "32768",  # the streams are known from the header; probing would only try decoders
}
OPAQUE = Color("black")
_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)


class VideoHandler:
    """Makes every size of a video's thumbnail (worker.jobs calls `make`)."""

    def __init__(self, thumbnail: ThumbnailSettings, limits_conf: LimitsSettings, video: VideoSettings) -> None:
        self.boxes = thumbnail.boxes()
        self.quality = thumbnail.quality
        self.max_pixels = limits_conf.max_pixels
        self.scan_seconds = video.scan_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> VideoHandler:
        return cls(settings.thumbnail, settings.limits, settings.video)

    @property
    def settings_key(self) -> str:
        """What decides the thumbnails besides the upload's bytes (see worker.jobs' reuse)."""
        settings = [RENDERING, self.boxes, self.quality.model_dump(), self.scan_seconds]
        return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]

    def make(self, source: Path, media_type: MediaType) -> Thumbnails:
        if media_kind(media_type.name) != "video":
            raise ImageRejected(state.UNSUPPORTED, f"{media_type.name} is not a video")
        try:
            if media_type.coder == MOV_DEMUXER:
                _check_sample_tables(source)
            with self._open(source, media_type) as container:
                stream = self._video_stream(container, media_type)
                frame = self._pick(container, stream)
                if frame.is_corrupt:
                    raise ImageRejected(state.UNDECODABLE, f"cannot decode {media_type.name}: the frame is damaged")
                sizes, samples = self._render(frame, stream)
                return Thumbnails(JPEG, sizes, 1, samples, _metadata(container, stream, _upright(frame, stream)))
        except MemoryError as exc:  # FFmpeg's ENOMEM too: an allocation past worker.memory_limit
            raise ImageRejected(
                state.TOO_MANY_PIXELS, f"cannot decode {media_type.name}: it needs more memory than the worker has"
            ) from exc
        except av.FFmpegError as exc:  # its text alone: the rest names the file's path
            raise ImageRejected(state.UNDECODABLE, f"cannot decode {media_type.name}: {exc.strerror}") from exc
        finally:
            if _malloc_trim is not None:  # hand the decoder's large buffers back (see handlers.image)
                _malloc_trim(0)

    @staticmethod
    def _open(source: Path, media_type: MediaType) -> av.container.InputContainer:
        return av.open(
            f"file:{source.resolve()}", format=media_type.coder,
            container_options=CONTAINER_OPTIONS | {"format_whitelist": media_type.coder},
        )

    def _video_stream(self, container: av.container.InputContainer, media_type: MediaType) -> VideoStream:
        """The first video stream, checked from its header: a known codec, within the pixel cap."""
        if not container.streams.video:
            raise ImageRejected(state.UNDECODABLE, f"cannot decode {media_type.name}: it has no video stream")
        stream = container.streams.video[0]
        context = stream.codec_context
        codec = context.codec.canonical_name if context is not None else None
        if context is None or codec not in CODECS:
            raise ImageRejected(state.UNSUPPORTED, f"video codec {codec or 'unknown'} is not supported")
        width, height = context.width, context.height
        if width * height > self.max_pixels:
            raise ImageRejected(
                state.TOO_MANY_PIXELS,
                f"{width}x{height} video frame ({width * height} pixels) is over the {self.max_pixels} pixel limit",
            )
        for other in container.streams:
            if other.index != stream.index:
                other.discard = Discard.all  # audio and the rest are not even read
        context.thread_count = 1  # one core per worker, and one frame in flight: bounded memory
        context.options = {"max_pixels": str(self.max_pixels)} | self._reductions(codec, width, height)
        return stream

    def _reductions(self, codec: str, width: int, height: int) -> dict[str, str]:
        """Decoder options that cost quality invisible at thumbnail size: half the size or less."""
        if not width or not height:
            return {}
        largest = max((fit(width, height, box.width, box.height) for box in self.boxes), key=lambda s: s[0] * s[1])
        shrink = min(width // (2 * largest[0]), height // (2 * largest[1]))
        options = {}
        if shrink >= 1:
            # Blocking artefacts the loop filter removes vanish at half size; it is a third of an
            # H.264 decode.
            options["skip_loop_filter"] = "all"
        levels = min(LOWRES.get(codec, 0), max(0, shrink.bit_length() - 1))
        if levels:
            options["lowres"] = str(levels)
        return options

    def _pick(self, container: av.container.InputContainer, stream: VideoStream) -> VideoFrame:
        """The first frame that is not black within the scan window, else the brightest seen."""
        first = _first_frame(container, stream)
        if first is None:
            raise ImageRejected(state.UNDECODABLE, "cannot decode the video: no frame could be decoded")
        scan = Scan(first)
        no_window = first.pts is None or stream.time_base is None  # no timestamps
        if scan.brightest_luma > BLACK_LUMA or no_window:
            return first
        try:
            return self._first_bright(container, stream, scan)
        except (av.FFmpegError, ScanSpent):  # damaged further on, or out of budget: the best seen
            return scan.brightest

    def _first_bright(self, container: av.container.InputContainer, stream: VideoStream, scan: Scan) -> VideoFrame:
        first = scan.brightest
        start = _seconds(first, stream)
        end = start + self.scan_seconds
        # Keyframes only (the decoder drops the rest unread): the first bright one bounds where
        # the first bright frame can be.
        stream.codec_context.skip_frame = "NONKEY"
        container.seek(_pts(first), stream=stream, backward=True)
        last_black, bright = first, None
        for keyframe in scan.frames(container.decode(stream)):
            at = _seconds(keyframe, stream)
            if at <= start:
                continue
            if at > end:
                break
            if not scan.is_black(keyframe):
                bright = keyframe
                break
            last_black = keyframe
        # Then every frame from the last black keyframe up to there (the bright keyframe itself
        # is decoded already).
        stream.codec_context.skip_frame = "DEFAULT"
        container.seek(_pts(last_black), stream=stream, backward=True)
        after, bright_at = _seconds(last_black, stream), _seconds(bright, stream) if bright else end
        for frame in scan.frames(container.decode(stream)):
            at = _seconds(frame, stream)
            if at >= bright_at:
                break
            if at > after and not scan.is_black(frame):
                return frame
        return bright or scan.brightest

    def _render(self, frame: VideoFrame, stream: VideoStream) -> tuple[tuple[SizedThumbnail, ...], Samples]:
        """Every size, each scaled from the decoded frame (area average), turned, as JPEG unless
        the size names another format; and the fingerprints' samples, from the smallest."""
        turns = _turns(frame)
        upright = _upright(frame, stream)
        sizes = []
        smallest = min(self.boxes, key=lambda box: box.width * box.height)
        samples = None
        for box in self.boxes:
            fitted = fit(*upright, box.width, box.height)
            scaled_width, scaled_height = fitted[::-1] if turns % 2 else fitted
            rgb = frame.reformat(scaled_width, scaled_height, "rgb24", interpolation="AREA", threads=1)
            # Opaque from the start (a new image is transparent, and import_pixels leaves alpha be).
            with Image(width=scaled_width, height=scaled_height, background=OPAQUE) as img:
                img.import_pixels(0, 0, scaled_width, scaled_height, "RGB", "char", _packed(rgb, 3))
                img.alpha_channel = "off"  # a new Wand image is transparent, and RGB pixels leave it so
                if turns:
                    img.rotate(-90 * turns)  # Wand turns clockwise
                if box is smallest:
                    samples = export_samples(img)
                img.strip()
                output = BY_FORMAT[box.format] if box.format else JPEG
                sizes.append(SizedThumbnail(box.name, encode(img, output, self.quality), *fitted, output))
        if samples is None:
            raise ValueError("no sizes configured")  # settings refuse that; a bug if it happens
        return tuple(sizes), samples


def _turns(frame: VideoFrame) -> int:
    """Quarter turns counter-clockwise of the stream's display matrix."""
    return round((frame.rotation or 0) / 90) % 4


def _upright(frame: VideoFrame, stream: VideoStream) -> tuple[int, int]:
    """The frame's size as shown: its pixels' aspect applied, turned by the display matrix."""
    aspect = stream.sample_aspect_ratio or Fraction(1)
    width = max(1, round(frame.width * aspect)) if aspect > 0 else frame.width
    return (frame.height, width) if _turns(frame) % 2 else (width, frame.height)


def _metadata(container: av.container.InputContainer, stream: VideoStream, upright: tuple[int, int]) -> Metadata:
    """Size as shown, codec, seconds, and the camera and time a phone writes in the container's
    metadata (QuickTime's `com.apple.quicktime.*`, Android's `com.android.*`, `creation_time`);
    never its location tags."""
    tags = {**container.metadata, **stream.metadata}
    seconds = container.duration / av.time_base if container.duration else None
    if seconds is None and stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    codec = stream.codec_context.codec.canonical_name if stream.codec_context is not None else "unknown"
    return Metadata(
        width=upright[0], height=upright[1], format=codec,
        duration=round(seconds, 3) if seconds and seconds > 0 else None,
        captured_at=iso_time(tags.get("com.apple.quicktime.creationdate") or tags.get("creation_time")),
        camera_make=clean_text(tags.get("com.apple.quicktime.make") or tags.get("com.android.manufacturer")),
        camera_model=clean_text(tags.get("com.apple.quicktime.model") or tags.get("com.android.model")),
    )


def _first_frame(container: av.container.InputContainer, stream: VideoStream) -> VideoFrame | None:
    """The first frame from the fewest packets: once the first keyframe is in, the decoder is
    drained instead of fed the frames its reordering delay would wait for (with B-frames, several
    more full decodes). Any seek afterwards resets it."""
    context = stream.codec_context
    for packet in container.demux(stream):
        frames = packet.decode()
        if not frames and packet.is_keyframe:
            frames = context.decode(None)
            if not frames:
                context.flush_buffers()  # drained for nothing: ready for the next packets
        if frames:
            return frames[0]
    return None


class ScanSpent(Exception):
    """The search for a bright frame used its budget up."""


@dataclass
class Scan:
    """The search's budget (frames decoded, CPU time) and the brightest frame it has looked at."""

    brightest: VideoFrame
    frames_left: int = SCAN_FRAMES
    cpu_until: float = field(default_factory=lambda: time.process_time() + SCAN_CPU_SECONDS)
    brightest_luma: float = field(init=False)

    def __post_init__(self) -> None:
        self.brightest_luma = mean_luma(self.brightest)

    def frames(self, decoded: Iterator[VideoFrame]) -> Iterator[VideoFrame]:
        """The decoded frames, each paid for; ScanSpent once the budget is gone."""
        for frame in decoded:
            self.frames_left -= 1
            if self.frames_left < 0 or time.process_time() > self.cpu_until:
                raise ScanSpent
            yield frame

    def is_black(self, frame: VideoFrame) -> bool:
        luma = mean_luma(frame)
        if luma > self.brightest_luma:
            self.brightest, self.brightest_luma = frame, luma
        return luma <= BLACK_LUMA


def mean_luma(frame: VideoFrame) -> float:
    """Mean luma (limited range: black is 16), measured on the frame scaled to a few pixels."""
    small = frame.reformat(*LUMA_PROBE, "yuv420p", interpolation="AREA", dst_color_range="MPEG", threads=1)
    luma = _packed(small, 1)
    return sum(luma) / len(luma)


def _check_sample_tables(source: Path) -> None:
    """Refuses an MP4/MOV whose sample tables claim more than its bytes can hold."""
    with source.open("rb") as file:
        size = source.stat().st_size
        problem = isobmff.read_claims(file, size).problem(size)
    if problem:
        raise ImageRejected(state.UNDECODABLE, f"cannot decode the video: {problem}")


def _packed(frame: VideoFrame, channels: int) -> bytes:
    """The first plane's pixels without the row padding FFmpeg aligns lines with."""
    plane = frame.planes[0]
    row = frame.width * channels
    data = bytes(plane)
    if plane.line_size == row:
        return data[: row * frame.height]
    return b"".join(data[y * plane.line_size : y * plane.line_size + row] for y in range(frame.height))


def _seconds(frame: VideoFrame, stream: VideoStream) -> float:
    """The frame's time; one without a timestamp counts as past any window."""
    return float("inf") if frame.pts is None or stream.time_base is None else float(frame.pts * stream.time_base)


def _pts(frame: VideoFrame) -> int:
    """The timestamp of a frame the scan placed in its window, which only a frame with one is."""
    if frame.pts is None:
        raise ValueError("a frame without a timestamp has no place to seek to")
    return frame.pts
