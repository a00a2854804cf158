"""Clients on NATS, in `<stream>_clients` (the bucket where records.Records counts their usage):
`client.<name>` each client's stored form, `key.<hash>` the client a key hash names, `keys.<name>`
the client's key hashes, each with the time it stops working ("0": its current key), and
`bucket.<name>` its rate bucket. Every change is a compare-and-set of one key, read again and
decided again when another process wrote it meanwhile.

A key works while `keys.<name>` lists it unexpired and the client is not revoked, so writing
`key.<hash>` before the list, and forgetting it after, never lets a key work too long. The token
bucket counts on this process's clock (NATS lends none); one that went backwards refills nothing
(thumbnailify.clients.refill), so processes a little apart share one bucket without minting tokens.
"""

from __future__ import annotations

import time

from thumbnailify.backends.nats.layout import owner_token
from thumbnailify.backends.nats.records import Records, encode
from thumbnailify.clients import Client, Grant, refill, take

CURRENT = "0"  # a key's end while it is the client's current one


def _client(name: str) -> str:
    return f"client.{owner_token(name)}"


def _keyring(name: str) -> str:
    return f"keys.{owner_token(name)}"


def _key(key_hash: str) -> str:
    return f"key.{key_hash}"


class Clients:
    def __init__(self, records: Records) -> None:
        self.records = records

    async def add(self, client: Client, key_hash: str) -> bool:
        if not await self.records.swap("clients", _client(client.name), client.stored(), 0):
            return False
        await self.records.kv["clients"].put(_key(key_hash), encode({"name": client.name}))
        await self.records.kv["clients"].put(_keyring(client.name), encode({key_hash: CURRENT}))
        return True

    async def by_key(self, key_hash: str) -> Client | None:
        found = await self.records.read("clients", _key(key_hash))
        name = found[0].get("name", "") if found else ""
        if not name:
            return None
        ring = await self.records.read("clients", _keyring(name))
        end = ring[0].get(key_hash) if ring else None
        if end is None or (end != CURRENT and float(end) <= time.time()):
            return None
        client = await self.get(name)
        return None if client is None or client.revoked else client

    async def get(self, name: str) -> Client | None:
        found = await self.records.read("clients", _client(name))
        return Client.from_stored(found[0]) if found else None

    async def all(self) -> list[Client]:
        found = [await self.records.read("clients", key) for key in await self.records.keys("clients", "client.*")]
        return sorted((Client.from_stored(entry[0]) for entry in found if entry), key=lambda client: client.name)

    async def revoke(self, name: str) -> bool:
        while True:
            found = await self.records.read("clients", _client(name))
            if found is None:
                return False
            if await self.records.swap("clients", _client(name), found[0] | {"revoked": "1"}, found[1]):
                break
        ring = await self.records.read("clients", _keyring(name))
        for key_hash in ring[0] if ring else {}:
            await self.records.forget("clients", _key(key_hash))
        await self.records.forget("clients", _keyring(name))
        return True

    async def rotate(self, name: str, key_hash: str, grace_seconds: float) -> bool:
        """The keys the client had end within the grace period (one ending sooner keeps its end)."""
        client = await self.get(name)
        if client is None or client.revoked:
            return False
        await self.records.kv["clients"].put(_key(key_hash), encode({"name": name}))
        while True:
            now = time.time()
            found = await self.records.read("clients", _keyring(name))
            ring, revision = found if found else ({}, 0)
            ends = {old: min(now + grace_seconds, float("inf") if end == CURRENT else float(end))
                    for old, end in ring.items()}
            kept = {old: repr(end) for old, end in ends.items() if end > now and grace_seconds > 0}
            if await self.records.swap("clients", _keyring(name), kept | {key_hash: CURRENT}, revision):
                break
        for old in ring.keys() - kept.keys():
            await self.records.forget("clients", _key(old))
        return True

    async def take_token(self, name: str, rate: float, burst: float) -> Grant:
        key = f"bucket.{owner_token(name)}"
        async with self.records.one_writer(key):  # a burst of one client's requests takes turns
            while True:
                now = time.time()
                found = await self.records.read("clients", key)
                held, revision = found if found else ({}, 0)
                tokens, at = (refill(float(held["tokens"]), float(held["at"]), now, rate, burst)
                              if "tokens" in held and "at" in held else (burst, now))
                grant = take(tokens, rate)
                if await self.records.swap("clients", key, {"tokens": repr(grant.remaining), "at": repr(at)},
                                           revision):
                    return grant
