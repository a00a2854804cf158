"""Deterministic test videos, encoded with PyAV (FFmpeg's encoders, in its wheel), and the cases
that post them.

Each case has an exact expected outcome, like the photo corpus (tests/corpus.py): a 4xx at POST, an
Error code, or Completed with the thumbnail's size (within 1 px of the exact fit, as the corpus
rounds) and the colour of known frames. Pictures are quadrants of flat colours, so a corner tells
which frame was taken and which way up it is.

Findings (PyAV 18.1 / FFmpeg 8.0, probed here):
* A display matrix of +90° (what `set_display_rotation(90)` writes, and `frame.rotation` reads back)
  is shown by ffmpeg turned a quarter counter-clockwise: the top-right quadrant comes to the top
  left. A phone's portrait video carries -90° (a quarter clockwise).
* MOV `alis` data references are followed by FFmpeg only with `enable_drefs=1` (default 0), and
  then relative to the upload's own folder: a movie could show another upload's pictures.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import struct
import tempfile
from array import array
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageChops, ImageDraw

from tests.corpus import BLUE, GREEN, RED, RGB, WHITE, YELLOW, Case, Corner, MeanColour, _good, _refused, _worker_error

BLACK: RGB = (0, 0, 0)
QUADRANTS = (RED, GREEN, BLUE, WHITE)  # top-left, top-right, bottom-left, bottom-right
SIZE = (320, 180)
FPS = 10
MOV_DEMUXER = "mov,mp4,m4a,3gp,3g2,mj2"
os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1's encoder: errors only on stderr


def quadrants(size: tuple[int, int] = SIZE, colours: Sequence[RGB] = QUADRANTS) -> Image.Image:
    width, height = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    for i, colour in enumerate(colours):
        x, y = (i % 2) * width // 2, (i // 2) * height // 2
        draw.rectangle((x, y, x + width // 2 - 1, y + height // 2 - 1), fill=colour)
    return img


def flat(colour: RGB, size: tuple[int, int] = SIZE) -> Image.Image:
    return Image.new("RGB", size, colour)


def yuv_frame(size: tuple[int, int], y: int, u: int, v: int) -> av.VideoFrame:
    """A flat frame given in limited-range YUV: Y=16 with a chroma tint is black by its luma alone."""
    frame = av.VideoFrame(size[0], size[1], "yuv420p")
    for plane, value in zip(frame.planes, (y, u, v), strict=True):
        plane.update(bytes([value]) * plane.buffer_size)
    return frame


def encode(
    frames: Sequence[Image.Image | av.VideoFrame],
    *,
    container: str = "mp4",
    codec: str = "libx264",
    fps: int = FPS,
    gop: int | None = None,
    rotation: float | None = None,
    faststart: bool = False,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    audio: str | None = None,
    audio_first: bool = False,
    times_ms: Sequence[int] | None = None,
    second_video: Sequence[Image.Image] = (),
) -> bytes:
    """The frames as a movie file (through a temporary file: faststart rewrites it in place).

    audio: a sound track of that codec (a tone as long as the video), as stream 1, or stream 0 with
    audio_first; times_ms: each frame's time in ms (variable frame rate) instead of 1/fps apart;
    second_video: the frames of a second video track (stream after the first video's).
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"movie.{container}"
        flags = {"movflags": "+faststart"} if faststart else {}
        with av.open(str(path), "w", format=container, options=flags) as out:
            sound = _add_audio(out, audio) if audio and audio_first else None
            settings = {"fps": fps, "pix_fmt": pix_fmt, "options": options, "gop": gop}
            stream = _add_video(out, frames[0], codec, settings | {"millisecond_times": times_ms is not None})
            if rotation is not None:
                stream.set_display_rotation(rotation)
            extra = _add_video(out, second_video[0], codec, settings | {"millisecond_times": False}) \
                if second_video else None
            if audio and not audio_first:
                sound = _add_audio(out, audio)
            if sound is not None:
                _mux_tone(out, sound, seconds=(times_ms[-1] / 1000 if times_ms else len(frames) / fps) + 0.1)
            _mux_frames(out, stream, frames, times_ms)
            if extra is not None:
                _mux_frames(out, extra, second_video, None)
        return path.read_bytes()


def _add_video(
    out: av.container.OutputContainer, first: Image.Image | av.VideoFrame, codec: str, settings: dict[str, Any],
) -> av.video.stream.VideoStream:
    stream = out.add_stream(codec, rate=settings["fps"], options=settings["options"] or {})
    stream.width, stream.height = first.width, first.height
    stream.pix_fmt = settings["pix_fmt"]
    gop = settings["gop"]
    if settings["millisecond_times"]:
        stream.codec_context.time_base = Fraction(1, 1000)
    if gop is not None:
        stream.codec_context.gop_size = gop
    return stream


def _mux_frames(
    out: av.container.OutputContainer, stream: av.video.stream.VideoStream,
    frames: Sequence[Image.Image | av.VideoFrame], times_ms: Sequence[int] | None,
) -> None:
    for index, picture in enumerate(frames):
        frame = picture if isinstance(picture, av.VideoFrame) else av.VideoFrame.from_image(picture)
        frame.pts = times_ms[index] if times_ms else index
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


AUDIO_RATE = 48000  # what phones record


def _add_audio(out: av.container.OutputContainer, codec: str) -> av.audio.stream.AudioStream:
    return out.add_stream(codec, rate=AUDIO_RATE, layout="mono")


def _mux_tone(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float) -> None:
    """A 440 Hz tone, in the sample format the encoder takes (the encoder cuts its own frame sizes)."""
    samples = round(seconds * AUDIO_RATE)
    tone = array("f", (0.2 * math.sin(2 * math.pi * 440 * i / AUDIO_RATE) for i in range(samples)))
    frame = av.AudioFrame(format="fltp" if stream.codec_context.name == "aac" else "flt", layout="mono",
                          samples=samples)
    frame.planes[0].update(tone.tobytes())
    frame.rate, frame.pts = AUDIO_RATE, 0
    out.mux(stream.encode(frame))
    out.mux(stream.encode())


def mp4(frames: Sequence[Image.Image | av.VideoFrame], **kw: object) -> bytes:
    return encode(frames, container="mp4", options={"preset": "veryfast"}, **kw)  # type: ignore[arg-type]


def webm(frames: Sequence[Image.Image | av.VideoFrame], **kw: object) -> bytes:
    return encode(frames, container="webm", codec="libvpx-vp9", options={"deadline": "realtime", "cpu-used": "8"},
                  **kw)  # type: ignore[arg-type]


def mov(frames: Sequence[Image.Image | av.VideoFrame], **kw: object) -> bytes:
    return encode(frames, container="mov", options={"preset": "veryfast"}, **kw)  # type: ignore[arg-type]


def hevc_mov(frames: Sequence[Image.Image | av.VideoFrame], **kw: object) -> bytes:
    """What an iPhone records: HEVC in a QuickTime movie."""
    quiet = {"preset": "ultrafast", "x265-params": "log-level=error"}
    return encode(frames, container="mov", codec="libx265", options=quiet, **kw)  # type: ignore[arg-type]


def _svt_av1_webm(frames: Sequence[Image.Image], kw: dict[str, object]) -> bytes:
    return encode(frames, container="webm", codec="libsvtav1", options={"preset": "12"}, **kw)  # type: ignore[arg-type]


def av1_webm(frames: Sequence[Image.Image], **kw: object) -> bytes:
    """Encoded in a process of its own: SVT-AV1 (PyAV's only AV1 encoder) switches the calling thread
    to real-time scheduling (SCHED_FIFO 99) when run as root, and every service the tests started
    from it would then starve Redis and RabbitMQ of CPU."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_svt_av1_webm, frames, kw).result()


def quadrant_checks(colours: Sequence[RGB] = QUADRANTS) -> tuple[Corner, ...]:
    return tuple(
        Corner(position, colour)  # type: ignore[arg-type]
        for position, colour in zip(("top-left", "top-right", "bottom-left", "bottom-right"), colours, strict=True)
    )


# --------------------------------------------------------------------------
# Container surgery
# --------------------------------------------------------------------------


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the ISO-BMFF boxes between start and end (32-bit sizes only)."""
    end = len(data) if end is None else end
    found = []
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size < 8:
            break
        found.append((kind, at, size))
        at += size
    return found


def find_box(data: bytes, path: Sequence[bytes]) -> list[tuple[int, int]]:
    """(offset, size) of each box on the path from the top level, e.g. moov/trak/mdia/..."""
    chain: list[tuple[int, int]] = []
    start, end = 0, len(data)
    for kind in path:
        match = next((b for b in boxes(data, start, end) if b[0] == kind), None)
        if match is None:
            raise ValueError(f"no {kind!r} box")
        _, at, size = match
        chain.append((at, size))
        start, end = at + 8 + (8 if kind == b"dref" else 0), at + size  # dref: version/flags, count
    return chain


def alias_record(filename: str) -> bytes:
    """A Mac alias `alis` data reference entry naming `filename` in the movie's own folder, laid
    out as FFmpeg's mov_read_dref reads it (nlvl_from = nlvl_to = 1: relative to the movie)."""
    name = filename.encode()
    body = bytes(10) + bytes([0]) + bytes(27) + bytes(12)  # reserved, volume name (empty)
    body += bytes([len(name)]) + name.ljust(63, b"\0") + bytes(16)  # file name
    body += struct.pack(">hh", 1, 1) + bytes(16)  # levels up from the alias / down to the target
    path = b"/" + name
    path += b"\0" * (len(path) % 2)
    body += struct.pack(">hH", 2, len(path)) + path  # an absolute path record, then the end marker
    body += struct.pack(">hH", -1, 0)
    return struct.pack(">I4s", 12 + len(body), b"alis") + struct.pack(">I", 0) + body  # flags 0: external


def with_external_reference(movie: bytes, filename: str) -> bytes:
    """The movie with its video track's data moved out by reference: its `dref` names `filename`
    beside it, and its own `mdat` is zeroed. moov must come after mdat, so no offset moves."""
    chain = find_box(movie, [b"moov", b"trak", b"mdia", b"minf", b"dinf", b"dref"])
    dref_at, dref_size = chain[-1]
    mdat = next(b for b in boxes(movie) if b[0] == b"mdat")
    if mdat[1] > chain[0][0]:
        raise ValueError("moov must follow mdat")
    new_dref = struct.pack(">I4sII", 16, b"dref", 0, 1) + alias_record(filename)
    new_dref = struct.pack(">I", len(new_dref)) + new_dref[4:]
    grow = len(new_dref) - dref_size
    out = bytearray(movie[:dref_at] + new_dref + movie[dref_at + dref_size :])
    for at, size in chain[:-1]:  # every ancestor box grows by as much
        struct.pack_into(">I", out, at, size + grow)
    _, mdat_at, mdat_size = mdat
    out[mdat_at + 8 : mdat_at + mdat_size] = bytes(mdat_size - 8)
    return bytes(out)


def oversized_mjpeg(size: tuple[int, int]) -> bytes:
    """One black Motion-JPEG frame of `size` in a QuickTime movie (compresses to almost nothing)."""
    frame = av.VideoFrame(size[0], size[1], "yuvj420p")
    for plane, value in zip(frame.planes, (0, 128, 128), strict=True):
        plane.update(bytes([value]) * plane.buffer_size)
    return encode([frame], container="mov", codec="mjpeg", pix_fmt="yuvj420p")


def audio_only_mp4() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audio.mp4"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("aac", rate=8000)
            frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
            frame.rate = 8000
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            for index in range(4):
                frame.pts = index * 1024
                out.mux(stream.encode(frame))
            out.mux(stream.encode())
        return path.read_bytes()


def sample_table_bomb(count: int = 80_000_000) -> bytes:
    """A 1.6 KB MP4 whose one track claims `count` one-byte samples in one chunk (constant stsz
    sample size 1, one stts entry, one stsc entry): FFmpeg builds a 36-byte index entry for each
    before anything checks them, 2.8 GB for 80 million."""
    movie = mp4([quadrants((16, 16))])
    chain = find_box(movie, [b"moov", b"trak", b"mdia", b"minf", b"stbl"])
    stbl_at, stbl_size = chain[-1]
    tables = {
        b"stsz": struct.pack(">III", 0, 1, count),  # version/flags, sample size 1, count
        b"stts": struct.pack(">IIII", 0, 1, count, 1),  # one entry: count samples of duration 1
        b"stsc": struct.pack(">IIIII", 0, 1, 1, count, 1),  # chunk 1 on: count samples a chunk
        b"stss": struct.pack(">III", 0, 1, 1),  # the first sample is a keyframe
    }
    children = b""
    for kind, at, size in boxes(movie, stbl_at + 8, stbl_at + stbl_size):
        if kind in tables:
            children += struct.pack(">I4s", 8 + len(tables[kind]), kind) + tables[kind]
        elif kind not in (b"ctts", b"sdtp"):  # tables of the one real sample
            children += movie[at : at + size]
    stbl = struct.pack(">I4s", 8 + len(children), b"stbl") + children
    out = bytearray(movie[:stbl_at] + stbl + movie[stbl_at + stbl_size :])  # moov is last: no offset moves
    for at, size in chain[:-1]:
        struct.pack_into(">I", out, at, size + len(stbl) - stbl_size)
    return bytes(out)


SKIP_FRAMES_FPS = 5000


def black_then_skip_frames(skips: int = 20_000, size: tuple[int, int] = (3840, 2160)) -> bytes:
    """A 4K video of a black keyframe, a dim red frame, then `skips` frames that repeat a dimmer
    blue one (31-byte P-frames with every macroblock skipped, yet each a full 4K decode), then
    white at 4 s: decoding the scan window frame by frame takes minutes. Encoded once (x264,
    one GOP), then the skipped frame's packet repeated."""
    black, red, blue, white = (yuv_frame(size, 0, 128, 128), yuv_frame(size, 12, 128, 200),
                               yuv_frame(size, 6, 200, 128), yuv_frame(size, 235, 128, 128))
    quiet = {"preset": "ultrafast", "x264-params": "keyint=infinite:scenecut=0:log-level=error"}
    movie = encode([black, red, blue, blue, white], fps=SKIP_FRAMES_FPS, options=quiet)
    with av.open(io.BytesIO(movie)) as source:
        template = source.streams.video[0]
        packets = [packet for packet in source.demux(template) if packet.size]
        order = packets[:3] + [packets[3]] * skips + packets[4:]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "skips.mp4"
            with av.open(str(path), "w", format="mp4") as out:
                stream = out.add_stream_from_template(template)
                for index, packet in enumerate(order):
                    copy = av.Packet(bytes(packet))
                    copy.pts = copy.dts = index
                    copy.time_base = Fraction(1, SKIP_FRAMES_FPS)
                    copy.is_keyframe = packet.is_keyframe
                    copy.stream = stream
                    out.mux(copy)
            return path.read_bytes()


def device_cases(picture: Sequence[Image.Image]) -> list[Case]:
    """What phones and cameras record: a sound track (AAC in MP4/MOV, Opus in WebM), sometimes
    before the video; B-frames; 10-bit HEVC; a variable frame rate; a second video track."""
    h264 = {"preset": "veryfast"}
    bframes = {"preset": "veryfast", "bf": "3", "x264-params": "b-adapt=0"}  # I B B B P B B B P ...
    x265 = {"preset": "ultrafast", "x265-params": "log-level=error"}
    vp9 = {"deadline": "realtime", "cpu-used": "8"}
    panning = [ImageChops.offset(quadrants(), 2 * i, 0) for i in range(12)]  # x264 codes a pan with B-frames
    second = [quadrants(colours=(YELLOW,) * 4)] * 3
    return [
        _video("mp4-h264-aac", "video/mp4", encode(picture, audio="aac", options=h264), SIZE, *quadrant_checks(),
               note="a phone's or camera's MP4: H.264 video, AAC sound"),
        _video("mov-h264-aac", "video/quicktime", encode(picture, container="mov", audio="aac", options=h264), SIZE,
               *quadrant_checks()),
        _video("webm-vp9-opus", "video/webm", encode(picture, container="webm", codec="libvpx-vp9", audio="libopus",
                                                     options=vp9), SIZE, *quadrant_checks(),
               note="a browser's screen or camera recording (MediaRecorder)"),
        _video("mp4-audio-stream-first", "video/mp4", encode(picture, audio="aac", audio_first=True, options=h264),
               SIZE, *quadrant_checks(), note="stream 0 is the sound, stream 1 the video"),
        _video("mp4-portrait-with-sound", "video/mp4",
               encode(picture[:5], audio="aac", audio_first=True, rotation=-90, options=h264), SIZE[::-1],
               *quadrant_checks((BLUE, RED, WHITE, GREEN)), note="a phone held upright: display matrix -90"),
        _video("mp4-h264-bframes", "video/mp4", encode(panning, audio="aac", options=bframes), SIZE,
               *quadrant_checks(), note="decode order differs from display order: the first shown frame"),
        _video("mov-hevc-10bit-aac", "video/quicktime",
               encode(picture[:3], container="mov", codec="libx265", pix_fmt="yuv420p10le", audio="aac",
                      rotation=-90, options=x265), SIZE[::-1], *quadrant_checks((BLUE, RED, WHITE, GREEN)),
               note="an iPhone's HDR video: 10-bit HEVC, portrait, with sound"),
        _video("mp4-variable-frame-rate", "video/mp4",
               encode(picture[:6], audio="aac", times_ms=[0, 33, 50, 117, 400, 433], options=h264), SIZE,
               *quadrant_checks(), note="frames at irregular times, as phones record in low light"),
        _video("mp4-second-video-track", "video/mp4", encode(picture[:3], audio="aac", second_video=second,
                                                             options=h264), SIZE, *quadrant_checks(),
               note="the first video track is the picture; the second (yellow) is not"),
    ]


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

HLS_PLAYLIST = (
    b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nfile:///etc/passwd\n"
    b"#EXTINF:10.0,\nhttp://169.254.169.254/latest/meta-data/\n#EXT-X-ENDLIST\n"
)
FFCONCAT = b"ffconcat version 1.0\nfile '/etc/passwd'\n"
# EBML header: versions, ID and size lengths, DocType "matroska" (a .mkv, not a WebM)
MATROSKA_HEADER = bytes.fromhex("1a45dfa39b 428681 01 42f781 01 42f281 04 42f381 08 428288") + b"matroska"


def _video(name: str, ctype: str, body: bytes, size: tuple[int, int], *checks: object, note: str = "") -> Case:
    return _good(name, ctype, body, size, *checks, out_type="image/jpeg", note=note)  # type: ignore[arg-type]


def black_intro() -> bytes:
    """1 s black, 0.4 s red, then green; keyframes every 0.7 s (0, 0.7, 1.4, ...): the first
    bright keyframe is already green, the first bright frame (1.0 s) red."""
    frames = [flat(BLACK)] * 10 + [quadrants(colours=(RED,) * 4)] * 4 + [quadrants(colours=(GREEN,) * 4)] * 16
    return mp4(frames, gop=7)


def black_intro_cut_on_keyframe() -> bytes:
    """1 s black, then red from a keyframe on (1.0 s), green from 1.5 s: the keyframe is the answer."""
    frames = [flat(BLACK)] * 10 + [quadrants(colours=(RED,) * 4)] * 5 + [quadrants(colours=(GREEN,) * 4)] * 10
    return mp4(frames, gop=10)


def black_past_window() -> bytes:
    """Black (by luma) for 6 s, the first frame tinted red, then white: past video.scan_seconds
    (5), so the thumbnail is the first frame."""
    frames = [yuv_frame(SIZE, 16, 128, 200)] + [yuv_frame(SIZE, 16, 200, 128)] * 59 + [flat(WHITE)] * 10
    return mp4(frames, gop=25)


def video_cases() -> list[Case]:
    picture = [quadrants()] * 10
    h264 = mp4(picture)
    h264_tail_moov = h264  # PyAV writes moov last unless asked for faststart
    h264_faststart = mp4(picture, faststart=True)
    vp9 = webm(picture)
    quicktime = mov(picture)
    moov_at = h264_faststart.index(b"moov") - 4
    first_sample = next(b for b in boxes(h264_faststart) if b[0] == b"mdat")[1] + 8
    portrait = mp4([quadrants()] * 5, rotation=-90)
    return [
        _video("mp4-h264", "video/mp4", h264, SIZE, *quadrant_checks()),
        _video("mp4-h264-faststart", "video/mp4", h264_faststart, SIZE, *quadrant_checks()),
        _video("webm-vp9", "video/webm", vp9, SIZE, *quadrant_checks()),
        _video("mov-h264", "video/quicktime", quicktime, SIZE, *quadrant_checks()),
        _video("mov-posted-as-mp4", "video/mp4", quicktime, SIZE, *quadrant_checks(),
               note="one family: FFmpeg reads both with the mov demuxer"),
        _video("mp4-rotated-portrait", "video/mp4", portrait, SIZE[::-1],
               *quadrant_checks((BLUE, RED, WHITE, GREEN)),
               note="display matrix -90 (a phone held upright): shown a quarter turn clockwise"),
        _video("mp4-rotated-plus-90", "video/mp4", mp4([quadrants()] * 5, rotation=90), SIZE[::-1],
               *quadrant_checks((GREEN, WHITE, RED, BLUE))),
        _video("mp4-black-intro", "video/mp4", black_intro(), SIZE, MeanColour((0.1, 0.1, 0.9, 0.9), RED),
               note="the first frame that is not black (1.0 s), not the first bright keyframe (1.4 s, green)"),
        _video("mp4-black-intro-cut-on-keyframe", "video/mp4", black_intro_cut_on_keyframe(), SIZE,
               MeanColour((0.1, 0.1, 0.9, 0.9), RED)),
        _video("mp4-all-black", "video/mp4", mp4([flat(BLACK)] * 20), SIZE, MeanColour((0, 0, 1, 1), BLACK, 8)),
        _video("mp4-black-past-scan-window", "video/mp4", black_past_window(), SIZE,
               MeanColour((0.1, 0.1, 0.9, 0.9), (115, 0, 0), 30),
               note="nothing bright within 5 s: the first frame (luma 16, red chroma)"),
        _video("webm-black-intro", "video/webm", webm([flat(BLACK)] * 8 + [quadrants(colours=(YELLOW,) * 4)] * 4),
               SIZE, MeanColour((0.1, 0.1, 0.9, 0.9), YELLOW)),
        _video("mp4-large-frame-small-box", "video/mp4", mp4([quadrants((1280, 720))] * 3), (1280, 720),
               *quadrant_checks()),
        _video("mov-hevc-portrait", "video/quicktime", hevc_mov([quadrants()] * 3, rotation=-90), SIZE[::-1],
               *quadrant_checks((BLUE, RED, WHITE, GREEN)), note="as an iPhone records: HEVC, display matrix -90"),
        _video("webm-av1", "video/webm", av1_webm([quadrants()] * 3), SIZE, *quadrant_checks()),
        _video("mov-mjpeg-lowres", "video/quicktime",
               encode([quadrants((1280, 720))] * 2, container="mov", codec="mjpeg", pix_fmt="yuvj420p"), (1280, 720),
               *quadrant_checks(), note="Motion JPEG is decoded at 1/4 size (lowres): still 2x the box"),
        _video("mp4-4k-black-then-20000-skipped-frames", "video/mp4", black_then_skip_frames(), SIZE,
               MeanColour((0.1, 0.1, 0.9, 0.9), (109, 0, 0), 30),
               note="the scan's budget runs out long before the white frame at 4 s: the brightest frame "
                    "seen (dim red), not the first (black) nor the dimmer blue after it"),
        _worker_error("mp4-sample-table-bomb", "video/mp4", sample_table_bomb(), 422,
                      note="1.6 KB claiming 80 million samples: refused before FFmpeg builds its index"),
        _worker_error("mp4-truncated-no-moov", "video/mp4", h264_tail_moov[: len(h264_tail_moov) // 2], 422,
                      note="cut in mdat: the index (moov) is never reached"),
        _worker_error("mp4-truncated-in-moov", "video/mp4", h264_faststart[: moov_at + 200], 422),
        _worker_error("mp4-truncated-in-first-frame", "video/mp4", h264_faststart[: first_sample + 100], 422,
                      note="index complete, the first frame's data cut short"),
        _worker_error("webm-truncated-in-header", "video/webm", vp9[:120], 422),
        _worker_error("mp4-ftyp-then-garbage", "video/mp4", h264[:32] + bytes(range(256)) * 16, 422),
        _worker_error("mp4-audio-only", "video/mp4", audio_only_mp4(), 422, note="no video stream"),
        _worker_error("mov-png-codec", "video/quicktime", encode(picture[:2], container="mov", codec="png",
                                                                 pix_fmt="rgb24"), 415,
                      note="a decoder outside the list of camera and screen codecs"),
        _worker_error("mov-mjpeg-8200x6200", "video/quicktime", oversized_mjpeg((8200, 6200)), 413,
                      note="50.8 MP frames declared by the stream header: refused before a decode"),
        *device_cases(picture),
        _refused("hls-playlist-as-mp4", "video/mp4", 415, body=HLS_PLAYLIST),
        _refused("hls-playlist-as-webm", "video/webm", 415, body=HLS_PLAYLIST),
        _refused("ffconcat-as-mp4", "video/mp4", 415, body=FFCONCAT),
        _refused("matroska-as-webm", "video/webm", 415, body=MATROSKA_HEADER + bytes(64)),
        _refused("mp4-as-webm", "video/webm", 415, body=h264),
        _refused("webm-as-mp4", "video/mp4", 415, body=vp9),
        _refused("mp4-as-jpeg", "image/jpeg", 415, body=h264),
        _refused("jpeg-as-mp4", "video/mp4", 415, body=b"\xff\xd8\xff\xe0" + bytes(60)),
    ]
