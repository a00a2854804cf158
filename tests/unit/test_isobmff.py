"""thumbnailify.worker.handlers.isobmff on crafted boxes: what real movies claim, tables that lie about their counts,
boxes that lie about their sizes, and truncations anywhere; never an exception, never a read or an
allocation past the file."""

from __future__ import annotations

import io
import random
import struct

import pytest

from tests.videos import encode, mp4, quadrants, sample_table_bomb
from thumbnailify.worker.handlers.isobmff import Claims, read_claims


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full(kind: bytes, *payload: bytes) -> bytes:
    """A FullBox: version 0 and flags 0 first."""
    return box(kind, bytes(4), *payload)


def movie(*tables: bytes, padding: int = 0) -> bytes:
    """ftyp, a moov with one track holding these sample tables, and an mdat of `padding` bytes."""
    stbl = box(b"stbl", *tables)
    trak = box(b"trak", box(b"mdia", box(b"minf", stbl)))
    return box(b"ftyp", b"isom", bytes(4), b"isom") + box(b"moov", trak) + box(b"mdat", bytes(padding))


def claims(data: bytes) -> Claims:
    return read_claims(io.BytesIO(data), len(data))


def stsz(count: int, sample_size: int = 0, table: bytes | None = None) -> bytes:
    sizes = table if table is not None else (struct.pack(f">{count}I", *[100] * count) if not sample_size else b"")
    return full(b"stsz", struct.pack(">II", sample_size, count), sizes)


def stts(*entries: tuple[int, int]) -> bytes:
    return full(b"stts", struct.pack(">I", len(entries)), b"".join(struct.pack(">II", *e) for e in entries))


def test_a_real_movie_claims_its_frames_and_sound() -> None:
    frames = [quadrants((32, 32))] * 4
    assert claims(mp4(frames)).samples == 4
    with_sound = encode(frames, audio="aac", options={"preset": "veryfast"})
    found = claims(with_sound)
    assert found.samples > 4 and found.problem(len(with_sound)) is None  # the AAC frames as well
    faststart = mp4(frames, faststart=True)
    assert claims(faststart) == claims(mp4(frames))


def test_the_sample_table_bomb_is_named() -> None:
    bomb = sample_table_bomb()
    assert len(bomb) < 2000
    found = claims(bomb)
    assert found.samples == 80_000_000
    assert found.problem(len(bomb)) == (
        f"the sample table claims 80000000 samples, more than a file of this size ({len(bomb)} bytes) can hold"
    )


def test_constant_sample_sizes_must_fit_in_the_file() -> None:
    fits = movie(stsz(1000, sample_size=4), stts((1000, 1)), padding=4000)
    assert claims(fits).problem(len(fits)) is None
    too_many = movie(stsz(1000, sample_size=5), stts((1000, 1)), padding=4000)
    assert claims(too_many).sample_bytes == 5000
    assert "claims 1000 samples" in (claims(too_many).problem(len(too_many)) or "")


def test_a_variable_size_table_must_hold_its_entries() -> None:
    honest = movie(stsz(10), stts((10, 1)), padding=1000)
    assert claims(honest) == Claims(10, 10)
    lying = movie(stsz(1_000_000, table=struct.pack(">10I", *[100] * 10)), stts((10, 1)))
    assert claims(lying).lie == "the stsz table claims 1000000 entries, more than its 40 bytes can hold"


@pytest.mark.parametrize(
    ("table", "name"),
    [
        (full(b"stsc", struct.pack(">I", 400_000_000)), "stsc"),
        (full(b"stco", struct.pack(">I", 1 << 30), bytes(8)), "stco"),
        (full(b"co64", struct.pack(">I", 3), bytes(16)), "co64"),
        (full(b"stss", struct.pack(">I", 2), bytes(4)), "stss"),
        (full(b"ctts", struct.pack(">I", 9), bytes(64)), "ctts"),
        (full(b"stts", struct.pack(">I", 1 << 31)), "stts"),
        (full(b"stz2", struct.pack(">I", 16), struct.pack(">I", 100), bytes(100)), "stz2"),
    ],
)
def test_every_table_must_hold_the_entries_it_counts(table: bytes, name: str) -> None:
    lie = claims(movie(table, padding=100)).lie
    assert lie is not None and lie.startswith(f"the {name} table claims")


def test_stts_counts_when_it_claims_more_than_stsz() -> None:
    data = movie(stsz(2), stts((2, 1), (5_000_000, 1)), padding=100)
    assert claims(data).samples == 5_000_002
    assert claims(data).problem(len(data)) is not None


def test_fragments_count_too() -> None:
    def trun(count: int, flags: int, records: bytes) -> bytes:
        return box(b"trun", struct.pack(">I", flags), struct.pack(">I", count), records)

    sizes_only = 0x200  # each entry: its sample size
    honest = box(b"moof", box(b"traf", trun(3, sizes_only, bytes(12))))
    no_records = box(b"moof", box(b"traf", trun(80_000_000, 0, b"")))  # default sizes: 12 bytes claim 80M
    lying = box(b"moof", box(b"traf", trun(1000, sizes_only, bytes(12))))
    head = movie(padding=64)
    assert claims(head + honest + honest) == Claims(6, 6)
    bomb = head + no_records
    assert claims(bomb).samples == 80_000_000 and claims(bomb).problem(len(bomb)) is not None
    assert (claims(head + lying).lie or "").startswith("the trun table claims 1000 entries")


def test_sizes_that_lie_are_bounded_by_the_file() -> None:
    real = mp4([quadrants((32, 32))] * 3, faststart=True)
    huge_moov = bytearray(real)
    moov_at = real.index(b"moov") - 4
    struct.pack_into(">I", huge_moov, moov_at, 0xFFFFFFF0)  # claims 4 GB: read to the file's end only
    assert claims(bytes(huge_moov)).samples == 3
    wide = bytearray(real)
    wide[moov_at : moov_at + 4] = struct.pack(">I", 1)  # a 64-bit size in a file too short for one
    claims(bytes(wide))
    zero = bytes(real[:moov_at]) + struct.pack(">I", 0) + real[moov_at + 4 :]  # "to the end of the file"
    assert claims(zero).samples == 3
    tiny = bytes(real[:moov_at]) + struct.pack(">I", 3) + real[moov_at + 4 :]  # smaller than a header
    assert claims(tiny) == Claims(0, 0)


def test_a_truncated_table_is_a_lie() -> None:
    data = movie(stsz(1000), stts((1000, 1)))
    cut = data[: data.index(b"stsz") + 100]
    assert (claims(cut).lie or "").startswith("the stsz table claims 1000 entries")


def test_damage_anywhere_never_raises() -> None:
    rnd = random.Random(11)
    real = encode([quadrants((32, 32))] * 3, audio="aac", options={"preset": "veryfast"}, faststart=True)
    variants = [real[:cut] for cut in range(0, len(real), 13)]
    for _ in range(300):
        damaged = bytearray(real)
        for _ in range(4):
            damaged[rnd.randrange(len(damaged))] = rnd.randrange(256)
        variants.append(bytes(damaged))
    for variant in variants:
        claims(variant).problem(len(variant))  # any answer but an exception
