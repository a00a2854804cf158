"""What a HEIF/AVIF file declares about its primary image, read from its boxes without decoding.

A HEIF file (ISO/IEC 23008-12) is a tree of ISO-BMFF boxes. The top-level `meta` box names the
primary item (`pitm`) and lists item properties (`iprp`: the properties in `ipco`, which item has
which in `ipma`). The primary item's `ispe` property is its width and height before any
transformation (an `irot` of 90 or 270 degrees swaps them); its `colr` property of type `prof`
or `rICC` is its ICC profile. Only the boxes on that path are read, each bounded by its parent,
so a lying size or a truncated file gives None, never an exception.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

MAX_META_BYTES = 4 << 20  # an iPhone's meta box is a few KiB; anything near this is hostile
MAX_TOP_LEVEL_BOXES = 64


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each complete box in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, payload, box_end in _boxes(data, start, end):
        if found == kind:
            return payload, box_end
    return None


def _read_meta(file: BinaryIO) -> bytes | None:
    """The payload of the top-level `meta` box, found by seeking past the boxes before it."""
    pos = 0
    for _ in range(MAX_TOP_LEVEL_BOXES):
        file.seek(pos)
        head = file.read(16)
        if len(head) < 8:
            return None
        size, kind = struct.unpack_from(">I4s", head)
        header = 8
        if size == 1 and len(head) == 16:
            (size,) = struct.unpack_from(">Q", head, 8)
            header = 16
        if size < header:  # 0 ("to the end of the file") is only valid for the last box, mdat
            return None
        if kind == b"meta":
            if size > MAX_META_BYTES:
                return None
            file.seek(pos + header)
            payload = file.read(size - header)
            return payload if len(payload) == size - header else None
        pos += size
    return None


def _associations(data: bytes, start: int, end: int, item: int) -> list[int]:
    """1-based `ipco` indexes of the properties an `ipma` box gives the item."""
    version, flags = data[start], int.from_bytes(data[start + 1 : start + 4], "big")
    pos = start + 4
    (entries,) = struct.unpack_from(">I", data, pos)
    pos += 4
    wide_id, wide_index = version >= 1, bool(flags & 1)
    found: list[int] = []
    for _ in range(entries):
        if pos + (4 if wide_id else 2) + 1 > end:
            break
        item_id = struct.unpack_from(">I" if wide_id else ">H", data, pos)[0]
        pos += 4 if wide_id else 2
        count = data[pos]
        pos += 1
        width = 2 if wide_index else 1
        if pos + count * width > end:
            break
        for index in range(count):
            raw = int.from_bytes(data[pos + index * width : pos + (index + 1) * width], "big")
            if item_id == item:
                found.append(raw & (0x7FFF if wide_index else 0x7F))
        pos += count * width
    return found


@dataclass(frozen=True)
class Primary:
    size: tuple[int, int] | None  # upright width and height, None when no ispe says
    icc: bytes | None  # the embedded ICC profile


def read_primary(file: BinaryIO) -> Primary | None:
    """The primary image's declared properties; None when the boxes to them are not there."""
    try:
        meta = _read_meta(file)
        if meta is None or len(meta) < 4:
            return None
        start, end = 4, len(meta)  # meta is a FullBox: version and flags first
        pitm = _child(meta, start, end, b"pitm")
        iprp = _child(meta, start, end, b"iprp")
        if pitm is None or iprp is None:
            return None
        primary = struct.unpack_from(">H" if meta[pitm[0]] == 0 else ">I", meta, pitm[0] + 4)[0]
        ipco = _child(meta, *iprp, b"ipco")
        if ipco is None:
            return None
        properties = list(_boxes(meta, *ipco))
        indexes = [
            index
            for kind, payload, box_end in _boxes(meta, *iprp)
            if kind == b"ipma"
            for index in _associations(meta, payload, box_end, primary)
        ]
        size: tuple[int, int] | None = None
        icc: bytes | None = None
        quarter_turns = 0
        for index in indexes:
            if not 1 <= index <= len(properties):
                continue
            kind, payload, box_end = properties[index - 1]
            if kind == b"ispe" and box_end - payload >= 12:
                size = struct.unpack_from(">II", meta, payload + 4)
            elif kind == b"irot" and box_end > payload:
                quarter_turns = meta[payload] & 3
            elif kind == b"colr" and meta[payload : payload + 4] in (b"prof", b"rICC"):
                icc = meta[payload + 4 : box_end]
    except (struct.error, IndexError, OSError):
        return None
    if size is not None and (0 in size or quarter_turns % 2):
        size = None if 0 in size else (size[1], size[0])
    return Primary(size, icc)
