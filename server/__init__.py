"""The HTTP side: accepts uploads, stores them, queues jobs, answers for state and thumbnails.

OpenBLAS (in numpy's wheel, for the similarity search's scan) reads its thread count as it loads:
one, as its matrix products here are too small to share out, and a buffer per thread would be
~20 MB of memory mapped for nothing.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
