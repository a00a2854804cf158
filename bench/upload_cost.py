#!/usr/bin/env python3
"""What one large upload costs the server: its CPU per POST of a 12 MP JPEG as base64 (3.8 MB).

    .venv/bin/python -m bench.upload_cost [--posts 60] [--rounds 3]

The server alone (distributed: Redis, RabbitMQ, files on the volume), one client posting the
photo one upload at a time (each with a JPEG comment of its own, so none is a duplicate); the
server process's user and system CPU over the posts, and the client's wall time per POST
(its median). Each round starts a service of its own; the table has each round and the medians.
Pair it with `make bench-compare BEFORE=<rev>` for changes to the upload path: its POST ->
Completed figure holds this cost and a worker's job together.
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests

from bench.compare import unique_base64
from bench.support import BenchService, make_corpus, print_table, run_script

WARM_UP = 5


def one_round(jpeg: bytes, posts: int) -> tuple[float, float, float]:
    """(server CPU ms per POST, of it system ms, client wall ms per POST median)."""
    bodies = [unique_base64(jpeg) for _ in range(WARM_UP + posts)]
    with BenchService("distributed", workers=None) as service:
        session = requests.Session()
        server = next(process for process in service.family() if "server" in " ".join(process.cmdline()))
        for body in bodies[:WARM_UP]:
            session.post(f"{service.url}/images", data=body, headers={"Content-Type": "image/jpeg"}).raise_for_status()
        before = server.cpu_times()
        walls = []
        for body in bodies[WARM_UP:]:
            started = time.perf_counter()
            session.post(f"{service.url}/images", data=body, headers={"Content-Type": "image/jpeg"}).raise_for_status()
            walls.append(time.perf_counter() - started)
        after = server.cpu_times()
    user, system = after.user - before.user, after.system - before.system
    return (user + system) / posts * 1000, system / posts * 1000, statistics.median(walls) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    jpeg = next(item.path for item in make_corpus(1, 0) if item.media_type == "image/jpeg").read_bytes()
    rounds = [one_round(jpeg, args.posts) for _ in range(args.rounds)]
    rows = [[f"round {index + 1}", *(f"{value:.1f}" for value in figures)] for index, figures in enumerate(rounds)]
    rows.append(["median", *(f"{statistics.median(column):.1f}" for column in zip(*rounds, strict=True))])
    print_table(["", "server CPU ms / POST", "of it system", "client wall ms / POST (median)"], rows,
                title=f"12 MP JPEG as base64 ({len(unique_base64(jpeg)) / 1e6:.1f} MB), {args.posts} POSTs a round")
    return 0


if __name__ == "__main__":
    run_script(main)
