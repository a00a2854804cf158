"""What a HEIF/AVIF file declares about its primary image, read from its boxes without decoding.

A HEIF file (ISO/IEC 23008-12) is a tree of ISO-BMFF boxes. The top-level `meta` box names the
primary item (`pitm`) and lists item properties (`iprp`: the properties in `ipco`, which item has
which in `ipma`). The primary item's `ispe` property is its width and height before any
transformation (an `irot` of 90 or 270 degrees swaps them); its `colr` property of type `prof`
or `rICC` is its ICC profile. A primary item of type `grid` (`iinf`) is tiles (`iref` `dimg`)
put together to the size its data says (an ImageGrid, where `iloc` puts it: in the file or the
`idat` box), which its `ispe` may hide: that size, and the tiles', is what decoding takes. So is
an overlay's (`iovl`: its canvas and its inputs) and an identity item's (`iden`: its input's). Only
the boxes on that path are read, each bounded by its parent, so a lying size or a truncated file
gives None, never an exception or a large read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from thumbnailify.worker.handlers.isobmff import boxes

MAX_META_BYTES = 4 << 20  # an iPhone's meta box is a few KiB; anything near this is hostile
MAX_TOP_LEVEL_BOXES = 64
MAX_ITEM_BYTES = 64  # an item's data read here: a grid's structure is 8 or 12 bytes
MAX_OVERLAY_BYTES = 16 + 8 * 4096  # an overlay's: 16 bytes, then 8 per input image
DERIVED = (b"grid", b"iovl", b"iden")  # image items made from other items (ISO/IEC 23008-12 6.6.2)


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, payload, box_end in boxes(data, start, end):
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


def _uint(data: bytes, pos: int, size: int, end: int) -> int:
    """A big-endian unsigned number of `size` bytes (0 reads as 0), never past `end`."""
    if pos + size > end:
        raise IndexError("field past the end of its box")
    return int.from_bytes(data[pos : pos + size], "big")


def _associations(data: bytes, start: int, end: int, found: dict[int, list[int]]) -> None:
    """Adds to `found` the 1-based `ipco` indexes of the properties an `ipma` box gives each item."""
    version, flags = data[start], int.from_bytes(data[start + 1 : start + 4], "big")
    pos = start + 4
    (entries,) = struct.unpack_from(">I", data, pos)
    pos += 4
    wide_id, wide_index = version >= 1, bool(flags & 1)
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
        indexes = found.setdefault(item_id, [])
        for index in range(count):
            raw = int.from_bytes(data[pos + index * width : pos + (index + 1) * width], "big")
            indexes.append(raw & (0x7FFF if wide_index else 0x7F))
        pos += count * width


def _item_types(meta: bytes, start: int, end: int) -> dict[int, bytes]:
    """The 4-character type (`hvc1`, `av01`, `grid`, ...) the `iinf` box's `infe` gives each item."""
    iinf = _child(meta, start, end, b"iinf")
    if iinf is None:
        return {}
    payload, box_end = iinf
    first = payload + 4 + (2 if meta[payload] == 0 else 4)  # version, flags, entry count
    types = {}
    for kind, entry, entry_end in boxes(meta, first, box_end):
        version = meta[entry] if kind == b"infe" and entry < entry_end else 0
        if version < 2:  # versions 0 and 1 name no item type
            continue
        id_size = 2 if version == 2 else 4
        at = entry + 4 + id_size + 2  # past the item ID and protection index
        if at + 4 <= entry_end:
            types[_uint(meta, entry + 4, id_size, entry_end)] = meta[at : at + 4]
    return types


def _references(meta: bytes, start: int, end: int, kind: bytes, item: int) -> list[int] | None:
    """The items an `iref` box's reference of this kind (`dimg`: a grid's tiles) leads to from item."""
    iref = _child(meta, start, end, b"iref")
    if iref is None:
        return None
    payload, box_end = iref
    id_size = 2 if meta[payload] == 0 else 4
    for found, ref, ref_end in boxes(meta, payload + 4, box_end):
        if found == kind and _uint(meta, ref, id_size, ref_end) == item:
            count = _uint(meta, ref + id_size, 2, ref_end)
            first = ref + id_size + 2
            return [_uint(meta, first + index * id_size, id_size, ref_end) for index in range(count)]
    return None


def _extents(meta: bytes, start: int, end: int, item: int) -> tuple[int, list[tuple[int, int]]] | None:
    """Where an `iloc` box puts the item's data: its construction method (0: offsets in the file,
    1: in the `idat` box) and its extents as (offset, length)."""
    iloc = _child(meta, start, end, b"iloc")
    if iloc is None:
        return None
    payload, box_end = iloc
    version = meta[payload]
    pos = payload + 4
    sizes = _uint(meta, pos, 2, box_end)
    offset_size, length_size, base_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15
    index_size = sizes & 15 if version in (1, 2) else 0
    id_size = 2 if version < 2 else 4
    count = _uint(meta, pos + 2, id_size, box_end)
    pos += 2 + id_size
    for _ in range(count):  # each entry takes bytes: a lying count runs out of box
        item_id = _uint(meta, pos, id_size, box_end)
        pos += id_size
        method = 0
        if version in (1, 2):
            method = _uint(meta, pos, 2, box_end) & 15
            pos += 2
        base = _uint(meta, pos + 2, base_size, box_end)  # past the data reference index
        extent_count = _uint(meta, pos + 2 + base_size, 2, box_end)
        pos += 4 + base_size
        extent_size = index_size + offset_size + length_size
        if (extent_count and not extent_size) or pos + extent_count * extent_size > box_end:
            return None
        if item_id == item:
            return method, [
                (base + _uint(meta, at + index_size, offset_size, box_end),
                 _uint(meta, at + index_size + offset_size, length_size, box_end))
                for at in range(pos, pos + extent_count * extent_size, extent_size)
            ]
        pos += extent_count * extent_size
    return None


def _item_data(file: BinaryIO, meta: bytes, item: int, limit: int = MAX_ITEM_BYTES) -> bytes | None:
    """The item's data when it is small (at most `limit` bytes), from the file or the `idat` box."""
    start, end = 4, len(meta)
    located = _extents(meta, start, end, item)
    if located is None:
        return None
    method, extents = located
    if not extents or any(length == 0 for _, length in extents):  # 0: "to the end of the file"
        return None
    if sum(length for _, length in extents) > limit:
        return None
    if method == 1:
        idat = _child(meta, start, end, b"idat")
        return _concatenated(meta, idat[0], idat[1], extents) if idat else None
    return _file_data(file, extents) if method == 0 else None


def _concatenated(data: bytes, start: int, end: int, extents: list[tuple[int, int]]) -> bytes | None:
    if any(start + offset + length > end for offset, length in extents):
        return None
    return b"".join(data[start + offset : start + offset + length] for offset, length in extents)


def _file_data(file: BinaryIO, extents: list[tuple[int, int]]) -> bytes | None:
    parts = []
    for offset, length in extents:
        file.seek(offset)
        parts.append(file.read(length))
    data = b"".join(parts)
    return data if len(data) == sum(length for _, length in extents) else None


@dataclass(frozen=True)
class Grid:
    """An ImageGrid (ISO/IEC 23008-12 6.6.2.3): tiles of one size, cropped to the output size."""

    rows: int
    columns: int
    output: tuple[int, int]


def parse_grid(data: bytes) -> Grid | None:
    """The ImageGrid structure of a `grid` item's data; None for an unknown version or short data."""
    if len(data) < 8 or data[0] != 0:
        return None
    wide = data[1] & 1
    if len(data) < (12 if wide else 8):
        return None
    output = struct.unpack_from(">II" if wide else ">HH", data, 4)
    if 0 in output:
        return None
    return Grid(data[2] + 1, data[3] + 1, output)


@dataclass(frozen=True)
class _Item:
    size: tuple[int, int] | None  # its ispe, before any rotation
    icc: bytes | None
    quarter_turns: int


@dataclass(frozen=True)
class _Meta:
    """The `meta` box's payload and the properties of its items."""

    data: bytes
    properties: list[tuple[bytes, int, int]]  # the boxes in `ipco`
    indexes: dict[int, list[int]]  # item ID: its 1-based `ipco` indexes, from `ipma`
    types: dict[int, bytes]  # item ID: its type, from `iinf`

    def coded(self, item_id: int) -> bool:
        """An image item a decoder decodes as it is: known, and not derived from others."""
        return self.types.get(item_id, DERIVED[0]) not in DERIVED

    def item(self, item_id: int) -> _Item:
        size: tuple[int, int] | None = None
        icc: bytes | None = None
        quarter_turns = 0
        for index in self.indexes.get(item_id, []):
            if not 1 <= index <= len(self.properties):
                continue
            kind, payload, box_end = self.properties[index - 1]
            if kind == b"ispe" and box_end - payload >= 12:
                size = struct.unpack_from(">II", self.data, payload + 4)
            elif kind == b"irot" and box_end > payload:
                quarter_turns = self.data[payload] & 3
            elif kind == b"colr" and self.data[payload : payload + 4] in (b"prof", b"rICC"):
                icc = self.data[payload + 4 : box_end]
        return _Item(size, icc, quarter_turns)


def _parse_meta(file: BinaryIO) -> tuple[_Meta, int] | None:
    """The top-level `meta` box and its primary item's ID."""
    data = _read_meta(file)
    if data is None or len(data) < 4:
        return None
    start, end = 4, len(data)  # meta is a FullBox: version and flags first
    pitm = _child(data, start, end, b"pitm")
    iprp = _child(data, start, end, b"iprp")
    if pitm is None or iprp is None:
        return None
    primary = struct.unpack_from(">H" if data[pitm[0]] == 0 else ">I", data, pitm[0] + 4)[0]
    ipco = _child(data, *iprp, b"ipco")
    if ipco is None:
        return None
    indexes: dict[int, list[int]] = {}
    for kind, payload, box_end in boxes(data, *iprp):
        if kind == b"ipma":
            _associations(data, payload, box_end, indexes)
    return _Meta(data, list(boxes(data, *ipco)), indexes, _item_types(data, start, end)), primary


def _grid_size(file: BinaryIO, meta: _Meta, primary: int) -> tuple[tuple[int, int], int] | None:
    """A grid's output size and the pixels its tiles decode to; None when the grid does not add up:
    unreadable, a tile count other than rows x columns, tiles that are not coded images, of several
    sizes or none, or tiles that do not cover the output (or cover more than a row and a column
    beyond it)."""
    data = _item_data(file, meta.data, primary)
    grid = parse_grid(data) if data is not None else None
    tiles = _references(meta.data, 4, len(meta.data), b"dimg", primary)
    if grid is None or tiles is None or len(tiles) != grid.rows * grid.columns:
        return None
    if not all(meta.coded(tile) for tile in set(tiles)):
        return None
    sizes = {meta.item(tile).size for tile in set(tiles)}
    size = sizes.pop() if len(sizes) == 1 else None  # every tile the same size, and known
    if size is None:
        return None
    (tile_width, tile_height), (width, height) = size, grid.output
    covered = grid.columns * tile_width >= width and grid.rows * tile_height >= height
    beyond = (grid.columns - 1) * tile_width >= width or (grid.rows - 1) * tile_height >= height
    if not covered or beyond:
        return None
    return grid.output, len(tiles) * tile_width * tile_height


def _overlay_size(file: BinaryIO, meta: _Meta, primary: int) -> tuple[tuple[int, int], int] | None:
    """An overlay's canvas size (ImageOverlay, 6.6.2.4: version, flags, fill colour, then the
    canvas) and the pixels of the canvas and its inputs; None unless every input is a coded image
    with a size."""
    data = _item_data(file, meta.data, primary, MAX_OVERLAY_BYTES)
    inputs = _references(meta.data, 4, len(meta.data), b"dimg", primary)
    if data is None or len(data) < 2 or data[0] != 0 or not inputs:
        return None
    wide = data[1] & 1
    if len(data) < (20 if wide else 14) or not all(meta.coded(image) for image in set(inputs)):
        return None
    canvas: tuple[int, int] = struct.unpack_from(">II" if wide else ">HH", data, 10)
    sizes = [size for image in inputs if (size := meta.item(image).size) is not None]
    if len(sizes) != len(inputs) or 0 in canvas:
        return None
    return canvas, canvas[0] * canvas[1] + sum(width * height for width, height in sizes)


def _identity_size(meta: _Meta, primary: int) -> tuple[tuple[int, int], int] | None:
    """An identity item (`iden`, its input with transforms) is its one coded input's size."""
    inputs = _references(meta.data, 4, len(meta.data), b"dimg", primary)
    if inputs is None or len(inputs) != 1 or not meta.coded(inputs[0]):
        return None
    size = meta.item(inputs[0]).size
    return (size, size[0] * size[1]) if size else None


@dataclass(frozen=True)
class Primary:
    size: tuple[int, int] | None  # upright width and height (a grid's output), None when nothing says
    icc: bytes | None  # the embedded ICC profile
    pixels: int | None  # what decoding it takes: a grid's tiles (at least its output), else its size
    consistent: bool = True  # False for a derived image not the size its ispe says (libheif refuses it)


def read_primary(file: BinaryIO) -> Primary | None:
    """The primary image's declared properties; None when the boxes to them are not there, or it is
    a derived image (grid, overlay, identity) whose structure does not add up: the size a decoder
    makes of it is its structure's, which its ispe alone could hide."""
    try:
        parsed = _parse_meta(file)
        if parsed is None:
            return None
        meta, primary = parsed
        item = meta.item(primary)
        size, pixels = item.size, 0
        kind = meta.types.get(primary)
        if kind in DERIVED:
            derived = (
                _grid_size(file, meta, primary) if kind == b"grid"
                else _overlay_size(file, meta, primary) if kind == b"iovl"
                else _identity_size(meta, primary)
            )
            if derived is None:
                return None
            size, pixels = derived  # whatever its ispe says: the decoder makes this size
    except (struct.error, IndexError, OSError):
        return None
    if size is None or 0 in size:
        return Primary(None, item.icc, None)
    upright = (size[1], size[0]) if item.quarter_turns % 2 else size
    consistent = item.size is None or size == item.size or kind == b"iden"  # iden: its input may turn
    return Primary(upright, item.icc, max(pixels, size[0] * size[1]), consistent)
