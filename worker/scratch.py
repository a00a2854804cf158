"""ImageMagick's temporary files, in a folder of this worker's own that nothing else leaves full.

Past limits.magick_memory and magick_map ImageMagick spills the pixel cache to `magick-*` files
(up to magick_disk, per image) and removes them when it finishes. The job time limit (SIGALRM),
an OOM kill and kill -9 skip that, and in Kubernetes /tmp is an emptyDir that outlives container
restarts. So each worker process gets a folder of its own under worker.temp_dir, named in
MAGICK_TEMPORARY_PATH (ImageMagick reads it each time it makes a file) and flock'ed for as long as
the process lives. At start a worker removes the folders whose lock is free (their worker is gone,
however it died); after a job that left files behind it empties its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "worker-"


def _size(path: Path) -> int:
    """Bytes of the files under `path`; what another worker's sweep removes meanwhile counts 0."""
    total = 0
    for root, _folders, files in os.walk(path):  # a folder gone meanwhile is skipped
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
    return total


class ScratchDir:
    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        # Locked under a name no sweep looks at, then renamed: a sweep never meets it unlocked.
        starting = Path(tempfile.mkdtemp(prefix=".starting-", dir=base))
        self._lock = os.open(starting, os.O_RDONLY)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.path = base / f"{PREFIX}{starting.name.removeprefix('.starting-')}"
        starting.rename(self.path)
        os.environ["MAGICK_TEMPORARY_PATH"] = str(self.path)

    def sweep(self) -> int:
        """Remove the folders of workers that are gone; returns the bytes freed."""
        freed = 0
        for folder in self.base.glob(f"{PREFIX}*"):
            if folder == self.path:
                continue
            try:
                fd = os.open(folder, os.O_RDONLY)
            except OSError:
                continue  # removed meanwhile by another worker's sweep
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Locked until it is gone, so another worker sweeping at the same time skips it.
                freed += _size(folder)
                shutil.rmtree(folder, ignore_errors=True)
            except BlockingIOError:
                continue  # its worker is alive, or another sweep is removing it
            finally:
                os.close(fd)
        if freed:
            log.warning("removed %d bytes of ImageMagick temporary files left by ended workers", freed)
        return freed

    def empty(self) -> int:
        """Remove whatever the last job left in this worker's folder; returns the bytes freed."""
        freed = 0
        for entry in self.path.iterdir():
            freed += _size(entry) if entry.is_dir() else entry.stat().st_size
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        if freed:
            log.warning("removed %d bytes of ImageMagick temporary files the last job left", freed)
        return freed
