"""How both sides use Redis: key names, client options, and the scripts that change a record.

The async server store and the sync worker store both use these, so the layout cannot drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, cast

from redis.connection import parse_url
from redis.exceptions import RedisError

from thumbnailify.clients import Quota, QuotaExceeded
from thumbnailify.record import DEFAULT_OWNER, Fields, MediaRecord, State
from thumbnailify.settings import RedisSettings
from thumbnailify.state import HISTORY_LIMIT, history_entry


def client_options(conf: RedisSettings) -> dict[str, object]:
    """Strings in and out, bounded waits (an outage is an error, not a hang), stale sockets noticed."""
    return {
        "decode_responses": True,
        "socket_timeout": conf.timeout,
        "socket_connect_timeout": conf.timeout,
        "health_check_interval": 10,
    }


# Every client is made with decode_responses=True (client_options), so replies are text; redis-py's
# types say bytes | str whatever the client, so these state what the replies are, once.
def text(reply: bytes | str | None) -> str | None:
    return cast(str | None, reply)


def texts(reply: object) -> list[str]:
    return cast(list[str], reply)


def text_hash(reply: object) -> dict[str, str]:
    return cast(dict[str, str], reply)


def scored(reply: object) -> list[tuple[str, float]]:
    """A sorted-set range read withscores=True."""
    return cast(list[tuple[str, float]], reply)


def master_options(conf: RedisSettings) -> dict[str, object]:
    """client_options plus what redis.url says of the database and credentials, for connections
    Sentinel points at (the url's host and port are then unused)."""
    parsed = parse_url(conf.url)
    return client_options(conf) | {key: parsed[key] for key in ("db", "username", "password") if parsed.get(key)}


class NotReplicated(RedisError):
    """A write the master took but fewer than redis.wait_replicas replicas confirmed in time."""


def wait_command(conf: RedisSettings) -> tuple[object, ...]:
    """WAIT for redis.wait_replicas replicas, at most redis.timeout: sent right after a write on
    its connection, so a failover cannot lose a write we have acted on (an accepted job, an outcome
    acked to the queue)."""
    return ("WAIT", conf.wait_replicas, int(conf.timeout * 1000))


def media_key(prefix: str, media_id: str) -> str:
    return f"{prefix}media:{media_id}"


def index_key(prefix: str, state: str | None = None) -> str:
    """All media by creation time, or (with a state) only those in that state, for ?state= lists."""
    return f"{prefix}index" if state is None else f"{prefix}index:{state}"


def owner_index_key(prefix: str, owner: str) -> str:
    """One client's media by creation time (records made before clients are in no such index)."""
    return f"{prefix}index:owner:{owner}"


def usage_key(prefix: str, owner: str) -> str:
    """A client's usage: a hash of `items` and `bytes`, kept by the create and delete scripts."""
    return f"{prefix}usage:{owner}"


def phash_key(prefix: str) -> str:
    """Every Completed item's media_id and perceptual hash, as rows of one string (see the scripts
    below), read whole by a similarity search (GET /images?similar_to=) instead of every record."""
    return f"{prefix}phashes"


def request_key(prefix: str, key: str) -> str:
    """An Idempotency-Key's in-flight marker or saved answer."""
    return f"{prefix}request:{key}"


def content_key(prefix: str, key: str) -> str:
    """The media_id last made from some content with some thumbnail settings (see worker.jobs)."""
    return f"{prefix}content:{key}"


def lock_key(prefix: str, name: str) -> str:
    return f"{prefix}lock:{name}"


def pairs(fields: Fields) -> list[str]:
    """field, value, field, value... as the scripts below take them in ARGV."""
    return [item for pair in fields.items() for item in pair]


# Every change of a record is published on the events channel as one JSON message,
# {"media_id": ..., "record": {...}} (or "deleted": true), in the same atomic step as the change,
# so every server process can stream it (GET /events).
_PUBLISH_RECORD = """
local flat = redis.call('HGETALL', KEYS[1])
local record = {}
for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
redis.call('PUBLISH', ARGV[4], cjson.encode({media_id = ARGV[2], record = record}))
"""

# Appends ARGV[3] (one JSON entry) to the record's JSON 'history' field, keeping the last ARGV[5].
# A history that is not a JSON list (edited by hand) starts anew: the change itself must be written.
_APPEND_HISTORY = """
local read, history = pcall(cjson.decode, redis.call('HGET', KEYS[1], 'history') or '[]')
if not read or type(history) ~= 'table' then history = {} end
table.insert(history, cjson.decode(ARGV[3]))
while #history > tonumber(ARGV[5]) do table.remove(history, 1) end
redis.call('HSET', KEYS[1], 'history', cjson.encode(history))
"""

# The perceptual hashes are one string of rows, each a media_id (36 characters) and its hash (16
# hexadecimal digits): a similarity search reads them with one GET (5 MB for 100,000 items, ~20
# ms), where a hash of 100,000 fields costs Python ~0.3 s to take in. A Completed record's row is
# appended as it completes; a deleted record's row (if it has one) is replaced by the last row and
# the string shortened by one row (a copy of the string, ~5 ms at 100,000 items). A media_id, with its dashes
# at fixed places, can only match at the start of a row.
_FORGET_PHASH = """
local rows = redis.call('GET', KEYS[2])
local at = rows and string.find(rows, ARGV[1], 1, true)
if at and (at - 1) % 52 == 0 then
  local last = string.sub(rows, -52)
  if at == #rows - 51 then
    rows = string.sub(rows, 1, at - 1)
  else
    rows = string.sub(rows, 1, at - 1) .. last .. string.sub(rows, at + 52, -53)
  end
  redis.call('SET', KEYS[2], rows)
end
"""

# KEYS[1] record, KEYS[2] index, KEYS[3] its state's index, KEYS[4] its owner's index, KEYS[5] its
# owner's usage; ARGV[1] score, ARGV[2] media_id, ARGV[3] history entry, ARGV[4] events channel,
# ARGV[5] history limit, ARGV[6] "1" when the record has an owner, ARGV[7] its bytes, ARGV[8] and
# ARGV[9] the owner's quota of items and bytes (0: none), ARGV[10..] field, value pairs. The quota
# check, usage, record, index entries, history and event in one atomic round trip: -1 over the
# items quota, -2 over the bytes quota (nothing written), 1 done.
CREATE_SCRIPT = """
if ARGV[6] == '1' then
  local items = tonumber(redis.call('HGET', KEYS[5], 'items') or '0')
  local used = tonumber(redis.call('HGET', KEYS[5], 'bytes') or '0')
  if tonumber(ARGV[8]) > 0 and items + 1 > tonumber(ARGV[8]) then return -1 end
  if tonumber(ARGV[9]) > 0 and used + tonumber(ARGV[7]) > tonumber(ARGV[9]) then return -2 end
  redis.call('HINCRBY', KEYS[5], 'items', 1)
  redis.call('HINCRBY', KEYS[5], 'bytes', ARGV[7])
  redis.call('ZADD', KEYS[4], ARGV[1], ARGV[2])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 10))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
""" + _APPEND_HISTORY + _PUBLISH_RECORD + """
return 1
"""

# KEYS[1] record, KEYS[2] index, KEYS[3] old state's index, KEYS[4] new state's index, KEYS[5]
# the perceptual hashes; ARGV[1] expected state, ARGV[2] media_id, ARGV[3] history entry, ARGV[4]
# events channel, ARGV[5] history limit, ARGV[6..] field, value pairs.
# A missing record (deleted) never matches, so a late worker cannot bring it back. The change that
# gives the record a perceptual hash (to Completed: no change leaves that state) lists it.
TRANSITION_SCRIPT = """
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if KEYS[3] ~= KEYS[4] then
  local phash = redis.call('HGET', KEYS[1], 'phash')
  if phash and #phash == 16 then
    redis.call('APPEND', KEYS[5], ARGV[2] .. phash)
  end
  local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  if score then
    redis.call('ZADD', KEYS[4], score, ARGV[2])
  end
end
""" + _APPEND_HISTORY + _PUBLISH_RECORD + """
return 1
"""

# KEYS[1] record, KEYS[2] the perceptual hashes, KEYS[3..] every index; ARGV[1] media_id, ARGV[2]
# events channel, ARGV[3] the key prefix. The owner's index and usage are named from the record (a
# delete does not know whose it is; the prefix is the caller's, so the keys stay within it).
DELETE_SCRIPT = """
local owner = redis.call('HGET', KEYS[1], 'owner')
local size = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0') or 0
local listed = redis.call('HGET', KEYS[1], 'phash')
local existed = redis.call('DEL', KEYS[1])
if listed and #listed == 16 then
""" + _FORGET_PHASH + """
end
for i = 3, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
if owner then
  redis.call('ZREM', ARGV[3] .. 'index:owner:' .. owner, ARGV[1])
  if existed == 1 then
    redis.call('HINCRBY', ARGV[3] .. 'usage:' .. owner, 'items', -1)
    redis.call('HINCRBY', ARGV[3] .. 'usage:' .. owner, 'bytes', -size)
  end
end
if existed == 1 then
  redis.call('PUBLISH', ARGV[2], cjson.encode({media_id = ARGV[1], deleted = true, owner = owner or ARGV[4]}))
end
return existed
"""


def events_channel(prefix: str) -> str:
    return f"{prefix}events"


class Call(TypedDict):
    """keys= and args= of a registered script."""

    keys: Sequence[str]
    args: Sequence[str | int | float]


def create_call(prefix: str, media_id: str, record: MediaRecord, score: float, quota: Quota | None = None) -> Call:
    keys = [media_key(prefix, media_id), index_key(prefix), index_key(prefix, record.state),
            owner_index_key(prefix, record.client), usage_key(prefix, record.client)]
    stored = record.stored()
    entry = history_entry(stored, record.state)
    limits = quota or Quota(0, 0)
    counted = "1" if record.owner else ""
    return {"keys": keys, "args": [score, media_id, entry, events_channel(prefix), HISTORY_LIMIT, counted,
                                   record.size or 0, limits.items, limits.bytes, *pairs(stored)]}


def created(result: object, quota: Quota | None) -> None:
    """CREATE_SCRIPT's answer: QuotaExceeded when it refused the record."""
    if quota is not None and result == -1:
        raise QuotaExceeded("items", quota.items)
    if quota is not None and result == -2:
        raise QuotaExceeded("bytes", quota.bytes)


def transition_call(prefix: str, media_id: str, expected_state: State, fields: Fields) -> Call:
    keys = [
        media_key(prefix, media_id),
        index_key(prefix),
        index_key(prefix, expected_state),
        index_key(prefix, fields.get("state", expected_state)),
        phash_key(prefix),
    ]
    entry = history_entry(fields, expected_state)
    return {"keys": keys, "args": [expected_state, media_id, entry, events_channel(prefix), HISTORY_LIMIT,
                                   *pairs(fields)]}


def delete_call(prefix: str, media_id: str) -> Call:
    keys = [media_key(prefix, media_id), phash_key(prefix), index_key(prefix),
            *(index_key(prefix, name) for name in State)]
    return {"keys": keys, "args": [media_id, events_channel(prefix), prefix, DEFAULT_OWNER]}


# KEYS[1] record; ARGV[1] the delivery's token. Counts a delivery attempt only on a record that
# still exists, and only once per delivery: a call repeated after its reply was lost (a stall over
# the client timeout) finds its token already recorded and returns the count unchanged.
ATTEMPT_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('HGET', KEYS[1], 'counted_delivery') == ARGV[1] then
  return tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
end
redis.call('HSET', KEYS[1], 'counted_delivery', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
"""


# KEYS[1] record; ARGV field, value pairs. Fields beside the state (a webhook's progress), only
# on a record that still exists.
SET_FIELDS_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# KEYS[1] lock; ARGV[1] owner, ARGV[2] milliseconds. Takes a free lock, or extends one's own.
ACQUIRE_LOCK_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS[1] lock; ARGV[1] owner. Only the owner releases a lock (it may have expired and been taken).
RELEASE_LOCK_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
