"""What the worker tells about the original beside its thumbnails (the record's `metadata`), read
from what the decode has anyway or from the file's headers: never a second decode.

Only the fields named here leave the worker; whatever else a file carries (GPS and every other
location tag, serial numbers, maker notes) is neither returned nor kept, and every thumbnail is
stripped of all metadata.
"""

from __future__ import annotations

import mmap
import re
import struct
from datetime import UTC, datetime
from pathlib import Path

from thumbnailify.media import GIF, WEBP, MediaType

MAX_TEXT = 128  # characters of a camera's make or model, or a profile's name, kept
_EXIF_TIME = re.compile(r"(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"[+-]\d{2}:\d{2}")


def clean_text(value: object) -> str | None:
    """A printable, bounded string from a tag of unknown content; None when nothing is left."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = "".join(char for char in value if char.isprintable()).strip()
    return text[:MAX_TEXT] or None


def exif_time(moment: object, offset: object = None) -> str | None:
    """EXIF's "YYYY:MM:DD HH:MM:SS" (the camera's local time) as ISO 8601, with its UTC offset when
    EXIF gives one (OffsetTimeOriginal); None when it is not a real time."""
    text = clean_text(moment)
    found = _EXIF_TIME.fullmatch(text or "")
    if found is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in found.groups())
        parsed = datetime(year, month, day, hour, minute, second)  # the camera's local time: no zone
    except ValueError:
        return None
    zone = clean_text(offset)
    return parsed.isoformat() + (zone if zone and _OFFSET.fullmatch(zone) else "")


def iso_time(value: object) -> str | None:
    """A container's creation time (ISO 8601, UTC) as ISO 8601 UTC to the second."""
    text = clean_text(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def icc_description(profile: bytes | None) -> str | None:
    """The name an ICC profile gives itself (its `desc` tag: ICC v2 `desc` text, v4 `mluc`)."""
    if not profile or len(profile) < 132:
        return None
    try:
        (count,) = struct.unpack_from(">I", profile, 128)
        for index in range(min(count, 256)):
            signature, offset, size = struct.unpack_from(">4sII", profile, 132 + 12 * index)
            if signature == b"desc":
                return _description(profile[offset : offset + size])
    except struct.error:
        return None
    return None


def _description(tag: bytes) -> str | None:
    kind = tag[:4]
    if kind == b"desc":  # ICC v2: ASCII count (with its NUL), then the text
        (length,) = struct.unpack_from(">I", tag, 8)
        return clean_text(tag[12 : 12 + length].split(b"\0", 1)[0].decode("latin-1"))
    if kind == b"mluc":  # ICC v4: records of (language, country, length, offset), UTF-16BE
        records, record_size = struct.unpack_from(">II", tag, 8)
        if records < 1 or record_size < 12:
            return None
        length, offset = struct.unpack_from(">II", tag, 16 + 4)
        return clean_text(tag[offset : offset + length].decode("utf-16-be", errors="replace"))
    return None


def frames_in_file(source: Path, media_type: MediaType) -> int | None:
    """How many frames an animated GIF or WebP has, from its blocks (every frame, however many the
    worker decodes); None for other types or a file whose blocks do not add up."""
    if media_type not in (GIF, WEBP):
        return None
    with source.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            return _gif_frames(data) if media_type is GIF else _webp_frames(data)
        except (IndexError, struct.error):
            return None


def _gif_frames(data: mmap.mmap) -> int | None:
    pos = 13
    flags = data[10]
    if flags & 0x80:  # global colour table
        pos += 3 << ((flags & 7) + 1)
    frames = 0
    while True:
        block = data[pos]
        if block == 0x3B:  # trailer
            return frames
        if block == 0x2C:  # image descriptor
            frames += 1
            flags = data[pos + 9]
            pos += 10 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0) + 1  # + LZW minimum code size
        elif block == 0x21:  # extension: its label, then sub-blocks
            pos += 2
        else:
            return frames or None  # garbage after the frames: as many as were whole
        while (size := data[pos]) != 0:
            pos += size + 1
        pos += 1


def _webp_frames(data: mmap.mmap) -> int | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    pos, end, frames = 12, min(len(data), 8 + struct.unpack_from("<I", data, 4)[0]), 0
    while pos + 8 <= end:
        kind, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        frames += kind == b"ANMF"
        pos += 8 + size + (size & 1)
    return max(frames, 1)
