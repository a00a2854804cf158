#!/usr/bin/env python3
"""GET /images?similar_to= at 100,000 items, on both stores.

    .venv/bin/python -m bench.similar [--items 100000] [--runs 20]

Plants --items Completed records with random perceptual hashes (and a few near one of them) in
an SQLite file and under a fresh Redis prefix, then times the search the handler runs
(thumbnailify.server.similar.similar_page: the origin's record, every hash from the store, the
scan, the page of 50 records) --runs times on each. Target: a median under 200 ms. The Redis
keys are removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import redis

from bench.support import print_table, run_script, service_env
from thumbnailify.backends.redis.aio import RedisStore
from thumbnailify.backends.redis.layout import media_key, phash_key
from thumbnailify.backends.sqlite.aio_store import SQLiteStore
from thumbnailify.clients import DEFAULT_CLIENT
from thumbnailify.record import MediaRecord, State
from thumbnailify.server.similar import similar_page
from thumbnailify.settings import Settings, load_settings
from thumbnailify.state import accepted, completed, now

TARGET_MS = 200.0
PAGE = 50
NEAR = 60  # items within distance 10 of the origin, so that a page has rows to read


def planted(count: int, seed: int = 1) -> tuple[list[tuple[str, dict[str, str]]], str]:
    """count Completed records as the stores keep them (media_id, fields), and the origin's id."""
    rng = random.Random(seed)
    origin_hash = rng.getrandbits(64)
    moment = now()
    base = accepted("image/jpeg", moment, "ab" * 32).stored()
    rows = []
    for index in range(count):
        if index < NEAR:
            value = origin_hash ^ sum(1 << bit for bit in rng.sample(range(64), rng.randint(0, 10)))
        else:
            value = rng.getrandbits(64)
        done = completed({"default": "image/jpeg"}, {"default": (100, 75)}, moment, phash=f"{value:016x}")
        rows.append((str(uuid.uuid4()), base | done))
    return rows, rows[0][0]


def timed(store: SQLiteStore | RedisStore, origin: str, runs: int) -> list[float]:
    async def run() -> list[float]:
        await store.open()
        times = []
        try:
            for _ in range(runs):
                started = time.perf_counter()
                rows = await similar_page(store, origin, 10, PAGE + 1, None, owner=DEFAULT_CLIENT)
                times.append((time.perf_counter() - started) * 1000)
                assert len(rows) == PAGE + 1, len(rows)
        finally:
            await store.close()
        return times
    return asyncio.run(run())


def sqlite_times(settings: Settings, rows: list[tuple[str, dict[str, str]]], origin: str, runs: int) -> list[float]:
    store = SQLiteStore(settings)
    asyncio.run(store.open())
    database = store._store.db
    with database.transaction() as conn:
        conn.executemany("INSERT INTO media (media_id, score, state, record, phash) VALUES (?, ?, ?, ?, ?)",
                         [(media_id, index, State.COMPLETED, json.dumps(fields), fields["phash"])
                          for index, (media_id, fields) in enumerate(rows)])
    asyncio.run(store.close())
    return timed(SQLiteStore(settings), origin, runs)


def redis_times(settings: Settings, rows: list[tuple[str, dict[str, str]]], origin: str, runs: int) -> list[float]:
    prefix = settings.redis.prefix
    client = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    try:
        with client.pipeline(transaction=False) as pipe:
            for start in range(0, len(rows), 5000):
                chunk = rows[start:start + 5000]
                for media_id, fields in chunk:
                    pipe.hset(media_key(prefix, media_id), mapping=fields)
                pipe.append(phash_key(prefix), "".join(media_id + fields["phash"] for media_id, fields in chunk))
                pipe.execute()
        return timed(RedisStore(settings), origin, runs)
    finally:
        keys = [media_key(prefix, media_id) for media_id, _ in rows] + [phash_key(prefix)]
        for start in range(0, len(keys), 10000):
            client.unlink(*keys[start:start + 10000])
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    rows, origin = planted(args.items)
    assert MediaRecord.from_stored(rows[0][1]).phash is not None
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(service_env("embedded", Path(tmp)))
        results["sqlite"] = sqlite_times(settings, rows, origin, args.runs)
        settings = load_settings(service_env("distributed", Path(tmp)))
        results["redis"] = redis_times(settings, rows, origin, args.runs)
    table = []
    for name, times in results.items():
        median = statistics.median(times)
        table.append([name, f"{median:.0f}", f"{max(times):.0f}", f"< {TARGET_MS:.0f}",
                      "yes" if median < TARGET_MS else "NO"])
    print_table(["store", "median ms", "max ms", "target", "met"], table,
                title=f"similar_to over {args.items} items, a page of {PAGE} ({args.runs} runs)")
    return 0 if all(statistics.median(times) < TARGET_MS for times in results.values()) else 1


if __name__ == "__main__":
    run_script(main)
