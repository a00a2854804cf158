"""The worker side: takes jobs off the queue, makes thumbnails with ImageMagick, records the outcome.

ImageMagick reads these variables once, when Wand is first imported, so they are set here, before
any worker module can import it: one thread per process (we scale with processes), and our own
security policy (imagemagick/policy.xml) in force. MAGICK_TEMPORARY_PATH is different: ImageMagick
reads it each time it makes a temporary file, and worker.scratch sets it per process at start.

Wand finds ImageMagick by trying 26 library names with ctypes.util.find_library, and each miss runs
ldconfig, gcc and ld: 0.2 s and as much CPU in subprocesses at every worker start. The names of
ImageMagick 6 (Debian, Ubuntu, the images: what the worker is tested with) and 7 come first, so a
machine with both loads 6 (Wand alone would try 7 first); another build still gets the full search.
"""

import os
from pathlib import Path

POLICY_DIR = Path(__file__).resolve().parent / "imagemagick"

os.environ.setdefault("MAGICK_THREAD_LIMIT", "1")
os.environ.setdefault("WAND_MAGICK_LIBRARY_SUFFIX", "-6.Q16;-7.Q16HDRI;-7.Q16")
os.environ["MAGICK_CONFIGURE_PATH"] = str(POLICY_DIR)
