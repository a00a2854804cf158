"""What an MP4/MOV file's sample tables claim, read from its boxes before FFmpeg sees them.

FFmpeg's mov demuxer sizes its per-sample index (about 36 bytes a sample) and several tables from
the counts a file declares, before anything checks them against the bytes there: a 1.6 KB file
whose `stsz` says 80 million one-byte samples takes 2.8 GB to open. Here the box tree (ISO/IEC
14496-12; QuickTime's is the same) is walked, every box bounded by its parent and by what the file
really holds, and two things are checked:

* every table box (`stts`, `ctts`, `stsc`, `stsz`, `stz2`, `stco`, `co64`, `stss`, `stps`, and a
  fragment's `trun`) holds the entries its count declares (a table that does not fit is a lie);
* all the samples claimed, over every track and fragment, fit in the file: each takes at least one
  byte (a constant `stsz` sample size: that many bytes each).

Nothing is read past the end of the file, no allocation is larger than the file, and a damaged or
lying box gives an answer, never an exception.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

MAX_TOP_LEVEL_BOXES = 100_000  # a fragmented movie has a moof and an mdat per fragment
READ_WHOLE = frozenset({b"moov", b"moof"})  # the top-level boxes whose trees are read
CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"moof", b"traf"})  # on the way to stbl, trun
MAX_DEPTH = 8
# Bytes of one entry of each table box (after its version/flags and entry count).
ENTRY_BYTES = {b"stts": 8, b"ctts": 8, b"stsc": 12, b"stco": 4, b"co64": 8, b"stss": 4, b"stps": 4}
# trun flags: which per-sample fields each entry has (duration, size, flags, composition offset).
TRUN_SAMPLE_FIELDS = (0x100, 0x200, 0x400, 0x800)


@dataclass(frozen=True)
class Claims:
    """What the sample tables of a file declare."""

    samples: int  # over every track and fragment
    sample_bytes: int  # the least the samples can take: 1 each, or their constant size
    lie: str | None = None  # a table that does not hold what its count says, named

    def problem(self, file_size: int) -> str | None:
        """Why the file cannot be what it says, or None."""
        if self.lie:
            return self.lie
        if self.sample_bytes > file_size:
            return (f"the sample table claims {self.samples} samples, more than a file of this size "
                    f"({file_size} bytes) can hold")
        return None


def boxes(data: bytes, start: int, end: int, *, clip: bool = False) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of each box in data[start:end]. A box that claims more than is
    there ends the walk, or with `clip` (the last box of a truncated file) ends where the data does."""
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
        if size < header or (pos + size > end and not clip):
            return
        yield kind, pos + header, min(pos + size, end)
        pos += size


def _top_level(file: BinaryIO, file_size: int) -> Iterator[bytes]:
    """The payload of each top-level box whose tree holds sample tables; the rest are seeked past."""
    pos = 0
    for _ in range(MAX_TOP_LEVEL_BOXES):
        if pos + 8 > file_size:
            return
        file.seek(pos)
        head = file.read(16)
        if len(head) < 8:
            return
        size, kind = struct.unpack_from(">I4s", head)
        header = 8
        if size == 1:
            if len(head) < 16:
                return
            (size,) = struct.unpack_from(">Q", head, 8)
            header = 16
        elif size == 0:
            size = file_size - pos
        if size < header:
            return
        if kind in READ_WHOLE:
            file.seek(pos + header)
            yield file.read(min(size, file_size - pos) - header)
        pos += size


class _Tally:
    """Samples and their least bytes, summed over tracks and fragments; the first lie found."""

    def __init__(self) -> None:
        self.samples = 0
        self.sample_bytes = 0
        self.lie: str | None = None

    def claims(self) -> Claims:
        return Claims(self.samples, self.sample_bytes, self.lie)

    def fits(self, kind: bytes, entries: int, entry_bits: int, available_bytes: int) -> None:
        """Record a lie when a table's entries cannot be in the bytes its box has."""
        available = max(available_bytes, 0)
        if self.lie is None and entries * entry_bits > 8 * available:
            self.lie = (f"the {kind.decode('latin-1')} table claims {entries} entries, more than its "
                        f"{available} bytes can hold")

    def add(self, count: int, least_bytes: int) -> None:
        self.samples += count
        self.sample_bytes += least_bytes

    def sample_table(self, data: bytes, start: int, end: int) -> None:
        """One track's stbl: its samples are the most that its stsz/stz2 or its stts claims."""
        sizes: tuple[int, int] = (0, 0)  # count, least bytes
        timed = 0
        for kind, payload, box_end in boxes(data, start, end, clip=True):
            if box_end - payload < 8:
                continue
            if kind == b"stsz" and box_end - payload >= 12:
                sample_size, count = struct.unpack_from(">II", data, payload + 4)
                if not sample_size:
                    self.fits(kind, count, 32, box_end - payload - 12)
                sizes = (count, count * max(sample_size, 1))
            elif kind == b"stz2" and box_end - payload >= 12:
                field_bits = data[payload + 7]
                (count,) = struct.unpack_from(">I", data, payload + 8)
                self.fits(kind, count, max(field_bits, 1), box_end - payload - 12)
                sizes = (count, count)
            elif kind in ENTRY_BYTES:
                (entries,) = struct.unpack_from(">I", data, payload + 4)
                self.fits(kind, entries, 8 * ENTRY_BYTES[kind], box_end - payload - 8)
                if kind == b"stts":
                    timed = _stts_total(data, payload + 8, entries, box_end)
        self.add(max(sizes[0], timed), max(sizes[1], timed))

    def track_run(self, data: bytes, start: int, end: int) -> None:
        """A fragment's trun: its samples, and the per-sample fields its flags say it holds."""
        if end - start < 8:
            return
        flags = int.from_bytes(data[start + 1 : start + 4], "big")
        (count,) = struct.unpack_from(">I", data, start + 4)
        optional = 4 * bool(flags & 0x1) + 4 * bool(flags & 0x4)  # data offset, first sample's flags
        fields = sum(bool(flags & bit) for bit in TRUN_SAMPLE_FIELDS)
        self.fits(b"trun", count, 32 * fields, end - start - 8 - optional)
        self.add(count, count)


def _stts_total(data: bytes, start: int, entries: int, end: int) -> int:
    """The samples an stts counts, over the entries that are really there."""
    present = min(entries, (end - start) // 8)
    table = array("I", data[start : start + 8 * present])  # sample count, sample delta; big-endian
    if sys.byteorder == "little":
        table.byteswap()
    return sum(table[::2])


def _walk(data: bytes, start: int, end: int, tally: _Tally, depth: int = 0) -> None:
    for kind, payload, box_end in boxes(data, start, end, clip=True):
        if kind == b"stbl":
            tally.sample_table(data, payload, box_end)
        elif kind == b"trun":
            tally.track_run(data, payload, box_end)
        elif kind in CONTAINERS and depth < MAX_DEPTH:
            _walk(data, payload, box_end, tally, depth + 1)


def read_claims(file: BinaryIO, file_size: int) -> Claims:
    """What the file's sample tables claim (nothing, for a file without them)."""
    tally = _Tally()
    try:
        for payload in _top_level(file, file_size):
            _walk(payload, 0, len(payload), tally)
    except (struct.error, OSError):
        pass  # what was read so far is the answer; FFmpeg judges the rest
    return tally.claims()
