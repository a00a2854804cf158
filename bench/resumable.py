#!/usr/bin/env python3
"""One big upload through tus (tuspy, 8 MiB PATCHes) against one binary POST of the same bytes,
on the embedded service: wall time and the server process's peak RSS for each.

    .venv/bin/python -m bench.resumable [--mb 200]

No workers run (the bytes are a JPEG header and noise: the bench measures the way in, not a
decode). The server's peak RSS is reset (/proc/<pid>/clear_refs) before each upload, so each
figure is that upload's own. tus pays for resumability with a second pass over the bytes at the
last PATCH (the pieces into the item's upload) and a round trip per PATCH.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import requests
from tusclient.client import TusClient

from tests.harness import Service, peak_rss_mb

MIB = 1024 * 1024
CHUNK = 8 * MIB


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    size = parser.parse_args().mb * MIB
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.jpg"
        with path.open("wb") as file:
            file.write(b"\xff\xd8\xff\xe0")
            for _ in range(size // MIB):
                file.write(os.urandom(MIB))
        limit = str(size + MIB)
        with Service("embedded", Path(folder) / "service", workers=0, video_workers=0,
                     THUMBNAILIFY_LIMITS_MAX_UPLOAD_BYTES=limit, THUMBNAILIFY_LIMITS_MAX_RESUMABLE_BYTES=limit,
                     THUMBNAILIFY_LIMITS_UPLOAD_TIMEOUT="600") as service:
            pid = service.server_pid()
            idle = peak_rss_mb(pid)
            rows = []
            reset_peak(pid)
            started = time.perf_counter()
            with path.open("rb") as body:
                answer = requests.post(f"{service.url}/images", params={"encoding": "binary"}, data=body,
                                       headers={"Content-Type": "image/jpeg"}, timeout=600)
            assert answer.status_code == 202, answer.text
            rows.append(("binary POST", time.perf_counter() - started, peak_rss_mb(pid)))
            reset_peak(pid)
            started = time.perf_counter()
            uploader = TusClient(f"{service.url}/uploads/").uploader(
                str(path), chunk_size=CHUNK, metadata={"filename": path.name, "filetype": "image/jpeg"})
            uploader.upload()
            rows.append((f"tus, {CHUNK // MIB} MiB PATCHes", time.perf_counter() - started, peak_rss_mb(pid)))
    print(f"{size // MIB} MB upload, embedded service; server RSS at rest {idle:.0f} MB")
    print(f"{'how':<22} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12}")
    for how, seconds, rss in rows:
        print(f"{how:<22} {seconds:>8.2f} {size / MIB / seconds:>7.0f} {rss:>12.0f}")
    print(f"tus / POST time: {rows[1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
