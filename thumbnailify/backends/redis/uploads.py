"""Resumable (tus) uploads in Redis: a hash per upload, and two sorted sets by expiry time (every
upload, for the sweep; unfinished ones only, for the bound on how many may be kept).

The scripts make the checks and the writes one step, so two server processes can never both
create past the bound or both move one upload's offset.
"""

from __future__ import annotations

UPLOAD_PREFIX = "upload:"

# KEYS: upload hash, every upload, unfinished uploads. ARGV: id, expires, limit, field, value, ...
CREATE_UPLOAD_SCRIPT = """
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""

# KEYS: upload hash, unfinished uploads. ARGV: id, expected offset, field, value, ...
UPDATE_UPLOAD_SCRIPT = """
if redis.call('HGET', KEYS[1], 'offset') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
for i = 3, #ARGV, 2 do
  if ARGV[i] == 'media_id' then redis.call('ZREM', KEYS[2], ARGV[1]) end
end
return 1
"""

# KEYS: upload hash, every upload, unfinished uploads. ARGV: id
DELETE_UPLOAD_SCRIPT = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return redis.call('DEL', KEYS[1])
"""


def upload_key(prefix: str, upload_id: str) -> str:
    return f"{prefix}{UPLOAD_PREFIX}{upload_id}"


def uploads_key(prefix: str) -> str:
    """Every upload kept, by expiry time."""
    return f"{prefix}uploads"


def unfinished_key(prefix: str) -> str:
    """Uploads still waiting for bytes, by expiry time."""
    return f"{prefix}uploads:unfinished"


def keys_of(prefix: str, upload_id: str) -> list[str]:
    return [upload_key(prefix, upload_id), uploads_key(prefix), unfinished_key(prefix)]


def pairs(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]
