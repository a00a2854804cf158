"""The worker side: takes jobs off the queue, makes thumbnails with ImageMagick, records the outcome.

ImageMagick reads these variables once, when Wand is first imported, so they are set here, before
any worker module can import it: one thread per process (we scale with processes), and our own
security policy (imagemagick/policy.xml) in force. MAGICK_TEMPORARY_PATH is different: ImageMagick
reads it each time it makes a temporary file, and worker.scratch sets it per process at start.

OpenBLAS (in numpy's wheel, for the fingerprints) likewise reads its thread count as it loads: one,
for the same reason and because its buffer per thread is private memory mapped at load (~20 MB
each), counted against worker.memory_limit before any job runs.
"""

import os
from pathlib import Path

POLICY_DIR = Path(__file__).resolve().parent / "imagemagick"

os.environ.setdefault("MAGICK_THREAD_LIMIT", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ["MAGICK_CONFIGURE_PATH"] = str(POLICY_DIR)
