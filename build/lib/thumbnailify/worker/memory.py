"""Each worker's memory, bounded in the process itself (worker.memory_limit).

RLIMIT_DATA bounds the private writable memory a process maps (malloc's heap and its large
mmaps, not the shared libraries' code nor files mapped shared), so an allocation past it fails
inside the decoder (FFmpeg: ENOMEM, PyAV's av.MemoryError; ImageMagick: a resource error) instead
of the process growing until the kernel's OOM killer ends it, or the machine. RLIMIT_AS would also
count thread stacks reserved but never touched and every library's address space.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)


def limit_memory(limit_bytes: int) -> None:
    """Caps this process's data segment at limit_bytes (0: no cap); never raises a cap in force."""
    if limit_bytes <= 0:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    capped = [limit_bytes if current == resource.RLIM_INFINITY else min(current, limit_bytes)
              for current in (soft, hard)]
    resource.setrlimit(resource.RLIMIT_DATA, (min(capped), capped[1]))
    log.debug("memory limit %d bytes", min(capped))
