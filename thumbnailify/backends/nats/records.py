"""Every store operation on NATS, once, as coroutines: the server awaits them, the workers run them on
a private event loop (sync.py).

A record is a JSON object (its stored form) in `<stream>_records` under its media id. A change reads
it with its revision and writes it back only if that revision is still the last (KV `update` with
`last=`): the compare-and-set that gives "change only from state X". A delete leaves a delete marker
with a revision of its own, so a worker's write prepared before it fails its check. After a write,
the change is published on the log (`<stream>.media.<id>.<event>`), with JetStream's acknowledgement.

The list index is one key per item in `<stream>_index`, `<state>.<micros>.<id>`: the entry for the
new state is written before the record, the old one removed after, so an item is never missing from
its state's list; a stale entry (a crash between) is skipped because the record is read back.
Listing reads the keys of one state (headers only: the server sends no values), so a page costs
O(items in that state) key names plus one read per item shown. An entry names the item's client too
(`<state>.<owner>.<micros>.<id>`), so one client's list reads only its own entries.

A client's usage (`<stream>_clients`, `usage.<owner>`) is counted by compare-and-set before the
record is written, the quota checked in the same step: two uploads at once cannot both pass it.
Within one process the writers of such a key take turns (`one_writer`): a burst of one client's
uploads all trying at once would each lose to the others and retry, work quadratic in the burst. An
outage between the count and the record takes the count back (if NATS answers by then). A delete
takes it back once, on the revision it read (a second delete of the same item finds nothing).

A Completed item's perceptual hash is a key of its own, `<id>.<hash>` in `<stream>_phashes`, with
no value: a similarity search lists the keys (one request) instead of reading every record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import cast

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from thumbnailify.backends.nats.layout import (
    BUCKETS,
    bucket,
    connect,
    declare,
    event_of,
    event_subject,
    index_key,
    index_pattern,
    open_upload_key,
    owner_token,
    parse_index_key,
    safe_key,
    score_micros,
)
from thumbnailify.clients import Quota, QuotaExceeded, Usage
from thumbnailify.record import DEFAULT_OWNER, PHASH_DIGITS, Fields, MediaRecord, State, readable
from thumbnailify.settings import Settings
from thumbnailify.state import append_history, history_entry
from thumbnailify.upload_bounds import Full, UploadBounds

Page = list[tuple[str, float, MediaRecord]]
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for an expected last revision that is not
Found = tuple[dict[str, str], int]  # a value and its revision
WRITER_TURNS = 64  # locks a process's writers of a busy key take turns on (each key hashes to one)


def decode(value: bytes | None) -> dict[str, str]:
    return cast(dict[str, str], json.loads(value or b"{}"))


def encode(value: dict[str, str]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Records:
    """One connection, its JetStream context and the buckets (after `open`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conf = settings.nats
        self.stream = self.conf.stream
        self.client: Client | None = None
        self.js: JetStreamContext | None = None
        self.kv: dict[str, KeyValue] = {}
        self._opening = asyncio.Lock()
        self._failed_at = -float("inf")
        self._turns = [asyncio.Lock() for _ in range(WRITER_TURNS)]

    async def ensure_open(self) -> None:
        """Connect and declare, once; again after a failed try (a NATS down at start-up), though not
        within nats.timeout of the last one: calls meanwhile fail at once instead of queueing."""
        if self.kv:
            return
        async with self._opening:
            if self.kv:
                return
            if time.monotonic() - self._failed_at < self.conf.timeout:
                raise ConnectionError("NATS unreachable (connecting again shortly)")
            try:
                await self.open()
            except BaseException:
                self._failed_at = time.monotonic()
                await self.close()
                self.client = self.js = None
                raise

    async def open(self) -> None:
        self.client = await connect(self.conf)
        self.js = self.client.jetstream(timeout=self.conf.timeout)
        await declare(self.js, self.settings)
        self.kv = {role: await self.js.key_value(bucket(self.conf, role)) for role in BUCKETS}

    @property
    def jetstream(self) -> JetStreamContext:
        if self.js is None:
            raise ConnectionError("NATS not connected")
        return self.js

    async def ping(self) -> None:
        if self.client is None or not self.client.is_connected:
            raise ConnectionError("NATS not connected")
        await self.client.flush(timeout=max(1, round(self.conf.timeout)))

    async def close(self) -> None:
        if self.client is not None and not self.client.is_closed:
            with contextlib.suppress(TimeoutError):  # whatever it still flushes is not waited for long
                await asyncio.wait_for(self.client.close(), self.conf.timeout)

    # -- keys and their revisions ------------------------------------------------------------
    def one_writer(self, key: str) -> asyncio.Lock:
        """Held around a compare-and-set loop on a key many requests change at once (a client's
        usage or rate bucket): this process's writers queue instead of all retrying against each
        other; between processes the compare-and-set still decides."""
        return self._turns[hash(key) % WRITER_TURNS]

    async def read(self, role: str, key: str) -> Found | None:
        try:
            entry = await self.kv[role].get(key)
        except KeyNotFoundError:  # also a deleted or purged key
            return None
        return decode(entry.value), entry.revision or 0

    async def swap(self, role: str, key: str, value: dict[str, str], revision: int) -> bool:
        """Write if `revision` is still the key's last one (0: if the key has no value)."""
        try:
            if revision:
                await self.kv[role].update(key, encode(value), last=revision)
            else:
                await self.kv[role].create(key, encode(value))
        except KeyWrongLastSequenceError:
            return False
        return True

    async def delete_at(self, key: str, revision: int, role: str = "records") -> bool:
        """A delete marker if `revision` is still the key's last one. (nats-py's delete reports a
        wrong revision as a plain BadRequestError, where update raises KeyWrongLastSequenceError.)"""
        try:
            await self.kv[role].delete(key, last=revision)
        except BadRequestError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE:
                raise
            return False
        return True

    async def keys(self, role: str, pattern: str) -> list[str]:
        """Keys matching a subject pattern (`Processing.>`) in a bucket whose keys are removed with
        `forget`: the subjects its stream holds, in one request. (nats-py's KeyValue.keys matches
        substrings, and its watcher can signal the end before the first keys arrived.)"""
        name = bucket(self.conf, role)
        prefix = f"$KV.{name}."
        info = await self.jetstream.stream_info(f"KV_{name}", subjects_filter=prefix + pattern)
        return [subject.removeprefix(prefix) for subject in (info.state.subjects or {})]

    async def forget(self, role: str, key: str) -> None:
        """A key and every trace of it (no delete marker: `keys` must not list it)."""
        name = bucket(self.conf, role)
        await self.jetstream.purge_stream(f"KV_{name}", subject=f"$KV.{name}.{key}")

    async def _publish(self, media_id: str, event: str, stored: dict[str, str] | None) -> None:
        payload = b"" if stored is None else encode(stored)
        await self.jetstream.publish(event_subject(self.stream, media_id, event), payload)

    # -- records -----------------------------------------------------------------------------
    async def create(self, media_id: str, record: MediaRecord, score: float, quota: Quota | None = None) -> None:
        """Only a record that names its owner counts in that client's usage (as on the other stores)."""
        stored = record.stored()
        stored["history"] = append_history(stored, history_entry(stored, record.state))
        stored["score"] = repr(score)
        size = record.size or 0
        if record.owner:
            await self.count_usage(record.owner, 1, size, quota)
        try:
            await self.kv["index"].put(index_key(record.state, record.client, score, media_id), b"")
            await self.kv["records"].put(media_id, encode(stored))
        except BaseException:
            if record.owner:
                with contextlib.suppress(Exception):
                    await self.count_usage(record.owner, -1, -size, None)
            raise
        await self._publish(media_id, "accepted", stored)

    async def count_usage(self, owner: str, items: int, size: int, quota: Quota | None) -> None:
        """Add to a client's usage, unless `quota` would be passed (QuotaExceeded, nothing changed)."""
        key = f"usage.{owner_token(owner)}"
        async with self.one_writer(key):
            while True:
                found = await self.read("clients", key)
                held, revision = found if found else ({}, 0)
                used = Usage(int(held.get("items") or 0), int(held.get("bytes") or 0))
                if quota is not None and quota.items and used.items + items > quota.items:
                    raise QuotaExceeded("items", quota.items)
                if quota is not None and quota.bytes and used.bytes + size > quota.bytes:
                    raise QuotaExceeded("bytes", quota.bytes)
                counted = {"items": str(used.items + items), "bytes": str(used.bytes + size)}
                if await self.swap("clients", key, counted, revision):
                    return

    async def usage(self, owner: str) -> Usage:
        found = await self.read("clients", f"usage.{owner_token(owner)}")
        held = found[0] if found else {}
        return Usage(int(held.get("items") or 0), int(held.get("bytes") or 0))

    async def get_stored(self, media_id: str) -> Found | None:
        return await self.read("records", media_id)

    async def get(self, media_id: str) -> MediaRecord | None:
        found = await self.read("records", media_id)
        return MediaRecord.from_stored(found[0]) if found else None

    async def transition(self, media_id: str, expected_state: State, fields: Fields) -> bool:
        """The new state's index entries are written before the record, so a lister never misses it;
        a delete or another change of state that wins meanwhile leaves them naming a state the record
        is not in, so they are taken back here."""
        placed: list[tuple[str, str]] = []  # (bucket role, key) written for the new state
        while True:
            found = await self.read("records", media_id)
            if found is None or found[0].get("state") != expected_state:
                # Deleted, or moved on to another state: a late worker leaves nothing of its own
                # behind. Moved on to this same state, its entries are the other writer's too.
                if found is None or found[0].get("state") != fields.get("state", expected_state):
                    for role, key in placed:
                        await self.forget(role, key)
                return False
            stored, revision = found
            score = float(stored.get("score") or 0)
            owner = stored.get("owner") or DEFAULT_OWNER
            new_state = fields.get("state", expected_state)
            changed = stored | fields
            if new_state != expected_state:
                for role, key in self._entries(media_id, new_state, owner, score, changed.get("phash") or ""):
                    if (role, key) not in placed:
                        await self.kv[role].put(key, b"")
                        placed.append((role, key))
            changed["history"] = append_history(stored, history_entry(fields, expected_state))
            if await self.swap("records", media_id, changed, revision):
                break
            # Someone else wrote in between: read again and decide again.
        if new_state != expected_state:
            await self._purge_index(expected_state, owner, score, media_id)
        await self._publish(media_id, event_of(fields, expected_state), changed)
        return True

    @staticmethod
    def _entries(media_id: str, state: str, owner: str, score: float, phash: str) -> list[tuple[str, str]]:
        """A record's entries in the other buckets once in `state`: its list index entry, and on
        Completed its perceptual hash (none leaves that state)."""
        entries = [("index", index_key(state, owner, score, media_id))]
        if state == State.COMPLETED and len(phash) == PHASH_DIGITS:
            entries.append(("phashes", f"{media_id}.{phash}"))
        return entries

    async def _purge_index(self, state: str, owner: str, score: float, media_id: str) -> None:
        await self.forget("index", index_key(state, owner, score, media_id))

    async def set_fields(self, media_id: str, fields: Fields) -> bool:
        """Fields beside the state, on a record that still exists (no event: not a change of state)."""
        while True:
            found = await self.read("records", media_id)
            if found is None:
                return False
            if await self.swap("records", media_id, found[0] | fields, found[1]):
                return True

    async def add_attempt(self, media_id: str, token: str) -> int:
        """Count a delivery once per token, on a record that still exists (0 when gone)."""
        while True:
            found = await self.read("records", media_id)
            if found is None:
                return 0
            stored, revision = found
            attempts = int(stored.get("attempts") or 0)
            if stored.get("counted_delivery") == token:
                return attempts
            counted = {"attempts": str(attempts + 1), "counted_delivery": token}
            if await self.swap("records", media_id, stored | counted, revision):
                return attempts + 1

    async def delete(self, media_id: str) -> bool:
        while True:
            found = await self.read("records", media_id)
            if found is None:
                return False
            # A delete marker on the revision read: a write meanwhile is read again and deleted
            # too (the delete wins, and every write prepared before it fails); of two deletes, one.
            if await self.delete_at(media_id, found[1]):
                break
        stored = found[0]
        score = float(stored.get("score") or 0)
        owner = stored.get("owner") or DEFAULT_OWNER
        for name in State:
            await self._purge_index(name, owner, score, media_id)
        if stored.get("phash"):
            await self.forget("phashes", f"{media_id}.{stored['phash']}")
        if stored.get("owner"):
            await self.count_usage(owner, -1, -int(stored.get("bytes") or 0), None)
        await self._publish(media_id, "deleted", {"owner": owner})
        return True

    async def perceptual_hashes(self) -> str:
        """The keys of `<stream>_phashes`, `<id>.<hash>`, as one string of rows."""
        return "".join(key.replace(".", "") for key in await self.keys("phashes", ">"))

    async def page(self, limit: int, after: tuple[float, str] | None, state: State | None,
                   owner: str | None = None) -> Page:
        """Newest first after the (score, id) cursor, as the other stores order them."""
        entries: dict[str, int] = {}
        for key in await self.keys("index", index_pattern(state, owner)):
            _, micros, media_id = parse_index_key(key)
            entries[media_id] = micros
        cursor = None if after is None else (score_micros(after[0]), after[1])
        ordered = sorted(((micros, media_id) for media_id, micros in entries.items()), reverse=True)
        found: Page = []
        for micros, media_id in ordered:
            if len(found) >= limit:
                break
            if cursor is not None and (micros, media_id) >= cursor:
                continue
            stored = await self.read("records", media_id)
            record = readable(media_id, stored[0]) if stored else None
            if record is not None and (state is None or record.state == state) and (
                    owner is None or record.client == owner):
                found.append((media_id, micros / 1_000_000, record))
        return found

    async def created_before(self, score: float, limit: int) -> list[str]:
        bound = score_micros(score)
        entries: dict[str, int] = {}
        for key in await self.keys("index", ">"):
            _, micros, media_id = parse_index_key(key)
            if micros < bound:
                entries[media_id] = micros
        return sorted(entries, key=lambda media_id: (entries[media_id], media_id))[:limit]

    # -- locks, Idempotency-Keys, content keys (`<stream>_meta`, with their own expiry) ----------
    async def _claim(self, key: str, value: str, seconds: float, *, mine: str | None) -> str | None:
        """Set key to value unless it holds an unexpired value other than `mine`: None, or what it holds."""
        while True:
            found = await self.read("meta", key)
            holder = None
            if found is not None and float(found[0].get("expires", 0)) > time.time():
                holder = found[0].get("value", "")
            if holder is not None and holder != mine:
                return holder
            entry = {"value": value, "expires": repr(time.time() + seconds)}
            if await self.swap("meta", key, entry, found[1] if found else 0):
                return None

    async def _release(self, key: str, value: str) -> None:
        found = await self.read("meta", key)
        if found is not None and found[0].get("value") == value:
            await self.delete_at(key, found[1], role="meta")  # False: taken or changed meanwhile, no longer ours

    async def acquire_lock(self, name: str, owner: str, seconds: float) -> bool:
        return await self._claim(f"lock.{safe_key(name)}", owner, seconds, mine=owner) is None

    async def release_lock(self, name: str, owner: str) -> None:
        await self._release(f"lock.{safe_key(name)}", owner)

    async def reserve_request(self, key: str, marker: str, seconds: float) -> str | None:
        return await self._claim(f"request.{safe_key(key)}", marker, seconds, mine=None)

    async def save_request(self, key: str, value: str, seconds: float) -> None:
        entry = {"value": value, "expires": repr(time.time() + seconds)}
        await self.kv["meta"].put(f"request.{safe_key(key)}", encode(entry))

    async def release_request(self, key: str, marker: str) -> None:
        await self._release(f"request.{safe_key(key)}", marker)

    async def find_content(self, key: str) -> str | None:
        found = await self.read("meta", f"content.{safe_key(key)}")
        return found[0].get("value") if found else None

    async def remember_content(self, key: str, media_id: str) -> None:
        await self.kv["meta"].put(f"content.{safe_key(key)}", encode({"value": media_id}))

    # -- resumable uploads (`<stream>_uploads`: `upload.<id>`, and `open.<owner>.<id>` while unfinished) --
    async def create_upload(self, upload_id: str, fields: dict[str, str], expires: float,
                            bounds: UploadBounds) -> Full | None:
        """The bounds are checked, then the upload written: two servers creating at the same moment
        may pass one by one each (it bounds storage, not correctness). The record comes first: a
        server stopped between the two writes leaves an upload the sweep takes, never an `open` key
        counted for ever."""
        opened = open_upload_key(fields["owner"], upload_id)
        if len(await self.keys("uploads", open_upload_key(fields["owner"], "*"))) >= bounds.per_client:
            return Full.CLIENT
        if len(await self.keys("uploads", "open.>")) >= bounds.total:
            return Full.TOTAL
        internal = {"_expires": repr(expires), "_open": opened}
        await self.kv["uploads"].put(f"upload.{upload_id}", encode(fields | internal))
        await self.kv["uploads"].put(opened, b"")
        return None

    async def get_upload(self, upload_id: str) -> dict[str, str] | None:
        found = await self.read("uploads", f"upload.{upload_id}")
        return None if found is None else {k: v for k, v in found[0].items() if not k.startswith("_")}

    async def update_upload(self, upload_id: str, expected_offset: int, fields: dict[str, str]) -> bool:
        found = await self.read("uploads", f"upload.{upload_id}")
        if found is None or found[0].get("offset") != str(expected_offset):
            return False
        if not await self.swap("uploads", f"upload.{upload_id}", found[0] | fields, found[1]):
            return False
        if "media_id" in fields:
            await self._close_upload(upload_id, found[0])
        return True

    async def delete_upload(self, upload_id: str) -> bool:
        found = await self.read("uploads", f"upload.{upload_id}")
        if found is None:
            return False
        await self._close_upload(upload_id, found[0])
        await self.forget("uploads", f"upload.{upload_id}")
        return True

    async def _close_upload(self, upload_id: str, stored: dict[str, str]) -> None:
        """No longer counted against the bounds. (An upload made before the per-client bound has
        no `_open`: its key was `open.<id>`.)"""
        await self.forget("uploads", stored.get("_open") or f"open.{upload_id}")

    async def expired_uploads(self, before: float, limit: int) -> list[str]:
        expired = []
        for key in await self.keys("uploads", "upload.*"):
            found = await self.read("uploads", key)
            if found is not None and float(found[0].get("_expires") or 0) < before:
                expired.append(key.removeprefix("upload."))
                if len(expired) >= limit:
                    break
        return expired
