"""Handing freed heap memory back to the system (glibc), so RSS follows what a process holds.

glibc keeps freed heap for reuse: after a burst (a decoder's buffers, hundreds of uploads in
flight) a process would stay at its peak. malloc_trim returns what is free now; a lower mmap
threshold makes large blocks (upload buffers) mapped on their own and returned when freed.
"""

from __future__ import annotations

import ctypes

_libc = ctypes.CDLL(None)
_malloc_trim = getattr(_libc, "malloc_trim", None)
_mallopt = getattr(_libc, "mallopt", None)
M_MMAP_THRESHOLD = -3


def release_freed() -> None:
    if _malloc_trim is not None:
        _malloc_trim(0)


def map_large_blocks(threshold: int) -> None:
    """Blocks of `threshold` bytes and more get their own mapping, returned to the system on free."""
    if _mallopt is not None:
        _mallopt(M_MMAP_THRESHOLD, threshold)
