"""GET /images?similar_to=<media_id>&distance=<0..16>: the items whose perceptual hash is within
that Hamming distance of the given item's, nearest first (then by media_id), paged as the list.

The store hands over every Completed item's hash (kept beside the records: a Redis hash, an
SQLite column) as one string, and numpy scans them: 100,000 items take well under the 200 ms
target (bench.similar). Past a few million, a scan's time and the transfer of every hash
grow with the library; a BK-tree or multi-index hashing (the 64 bits cut into 4 blocks of 16,
each indexed: two hashes within distance 3 share a block exactly) would find candidates without
looking at every hash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from thumbnailify.media import is_media_id
from thumbnailify.record import MediaRecord, State
from thumbnailify.server.backends import Page, Store
from thumbnailify.server.http.errors import ApiError

MAX_DISTANCE = 16  # of 64 bits; past it, unrelated pictures start to come in
DEFAULT_DISTANCE = 10  # what a re-encode, a resize, a 5% crop or a caption stays within
UNRELATED_FILTERS = ("state", "filename", "sha256")
ID_CHARS, HASH_CHARS = 36, 16  # a media_id (a UUID's text) and a 64-bit hash in hexadecimal
ROW_CHARS = ID_CHARS + HASH_CHARS


def wanted_distance(query: Mapping[str, str]) -> int:
    text = query.get("distance", str(DEFAULT_DISTANCE))
    if not text.isdigit() or int(text) > MAX_DISTANCE:
        raise ApiError(400, f"distance must be a whole number from 0 to {MAX_DISTANCE}")
    return int(text)


def target(query: Mapping[str, str]) -> str:
    media_id = query["similar_to"]
    if not is_media_id(media_id):
        raise ApiError(404, "similar_to: no such media")
    if given := [name for name in UNRELATED_FILTERS if name in query]:
        raise ApiError(400, f"similar_to cannot be combined with {', '.join(given)}")
    return media_id


def nearest(packed: str, media_id: str, origin: str, distance: int) -> list[tuple[int, str]]:
    """(distance, media_id) of every other item within `distance` of `origin`, nearest first, from
    the store's packed hashes (each item ID_CHARS of media_id, then HASH_CHARS hex digits): one
    pass of numpy over all of them, ~10 ms for 100,000."""
    # Imported here: most servers are never asked a similar query, and numpy costs each start
    # ~70 ms of CPU and ~11 MB.
    import numpy as np  # noqa: PLC0415

    if len(packed) % ROW_CHARS:
        raise ValueError(f"the store's perceptual hashes are not {ROW_CHARS}-character rows")
    rows = np.frombuffer(packed.encode("ascii"), dtype=np.uint8).reshape(-1, ROW_CHARS)
    hashes = np.frombuffer(bytes.fromhex(rows[:, ID_CHARS:].tobytes().decode("ascii")), dtype=">u8")
    apart = np.bitwise_count(hashes ^ np.uint64(int(origin, 16)))
    found = [(int(apart[i]), rows[i, :ID_CHARS].tobytes().decode()) for i in np.flatnonzero(apart <= distance)]
    return sorted(row for row in found if row[1] != media_id)


async def similar_page(store: Store, media_id: str, distance: int, limit: int,
                       after: tuple[float, str] | None, *, owner: str) -> Page:
    """Up to `limit` rows (media_id, distance, record) after the (distance, media_id) cursor, of
    the `owner` client's items only; an item deleted meanwhile is left out."""
    origin = await store.get(media_id)
    if origin is None or origin.client != owner:
        raise ApiError(404, "similar_to: no such media")
    if origin.phash is None:
        why = f"it is {origin.state}" if origin.state != State.COMPLETED else "a release before them completed it"
        raise ApiError(409, f"similar_to: the media has no perceptual hash ({why})")
    ranked = nearest(await store.perceptual_hashes(), media_id, origin.phash, distance)
    if after is not None:
        ranked = [row for row in ranked if row > (int(after[0]), after[1])]
    rows: Page = []
    while ranked and len(rows) < limit:
        batch, ranked = ranked[: limit - len(rows)], ranked[limit - len(rows):]
        records: list[MediaRecord | None] = await asyncio.gather(*(store.get(other) for _, other in batch))
        rows += [(other, apart, record) for (apart, other), record in zip(batch, records, strict=True)
                 if record is not None and record.client == owner]
    return rows
