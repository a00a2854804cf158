"""Handing freed heap memory back to the system (glibc), so RSS follows what a process holds.

glibc keeps freed heap for reuse: after a burst (a decoder's buffers, hundreds of uploads in
flight) a process would stay at its peak. malloc_trim returns what is free now; an mmap threshold
makes blocks of at least its size mapped on their own and returned when freed.
"""

from __future__ import annotations

import ctypes

_libc = ctypes.CDLL(None)
_malloc_trim = getattr(_libc, "malloc_trim", None)
_mallopt = getattr(_libc, "mallopt", None)
_mallinfo2 = getattr(_libc, "mallinfo2", None)
M_MMAP_THRESHOLD = -3


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


if _mallinfo2 is not None:
    _mallinfo2.restype = _MallInfo2


def release_freed() -> None:
    if _malloc_trim is not None:
        _malloc_trim(0)


def freed_bytes() -> int | None:
    """What the heap holds free, ready for reuse (None where glibc cannot say)."""
    return None if _mallinfo2 is None else int(_mallinfo2().fordblks)


def map_large_blocks(threshold: int) -> None:
    """Blocks of `threshold` bytes and more get their own mapping, returned to the system on free."""
    if _mallopt is not None:
        _mallopt(M_MMAP_THRESHOLD, threshold)
