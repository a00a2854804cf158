"""Resumable (tus) uploads in Redis: a hash per upload, and sorted sets by expiry time: every
upload (for the sweep), unfinished ones, and each client's unfinished ones (for the bounds on how
many may be kept).

The scripts make the checks and the writes one step, so two server processes can never both
create past a bound or both move one upload's offset. Finishing or removing an upload takes it
out of its client's set too, named from the hash's `owner` (uploads made before clients have
none, and are in no client's set).
"""

from __future__ import annotations

from typing import cast

from thumbnailify.backends.redis.layout import Call, pairs
from thumbnailify.upload_bounds import Full, UploadBounds

UPLOAD_PREFIX = "upload:"

# KEYS: upload hash, every upload, unfinished uploads, the client's unfinished uploads.
# ARGV: id, expires, total bound, the client's bound, field, value, ...
# Returns 1 when created, else which bound is full: 0 every client's, -1 the client's own.
CREATE_UPLOAD_SCRIPT = """
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[4]) then return -1 end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return 1
"""
REFUSALS = {0: Full.TOTAL, -1: Full.CLIENT}

# Takes the upload of KEYS[1] (ARGV[1] its id) out of the unfinished ones, KEYS[2], and out of its
# client's, whose key is ARGV[2] (the clients' unfinished uploads key) .. ':' .. its owner.
CLOSE_UPLOAD = """
local function close_upload()
  redis.call('ZREM', KEYS[2], ARGV[1])
  local owner = redis.call('HGET', KEYS[1], 'owner')
  if owner then redis.call('ZREM', ARGV[2] .. ':' .. owner, ARGV[1]) end
end
"""

# KEYS: upload hash, unfinished uploads. ARGV: id, clients' unfinished uploads key, expected
# offset, field, value, ...
UPDATE_UPLOAD_SCRIPT = CLOSE_UPLOAD + """
if redis.call('HGET', KEYS[1], 'offset') ~= ARGV[3] then return 0 end
for i = 4, #ARGV, 2 do
  if ARGV[i] == 'media_id' then close_upload() end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
return 1
"""

# KEYS: upload hash, unfinished uploads, every upload. ARGV: id, clients' unfinished uploads key
DELETE_UPLOAD_SCRIPT = CLOSE_UPLOAD + """
close_upload()
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


def clients_unfinished_key(prefix: str) -> str:
    """What a client's unfinished uploads key starts with (then ':' and its name, which has no ':')."""
    return f"{unfinished_key(prefix)}:client"


def client_unfinished_key(prefix: str, owner: str) -> str:
    """One client's uploads still waiting for bytes, by expiry time."""
    return f"{clients_unfinished_key(prefix)}:{owner}"


def create_upload_call(prefix: str, upload_id: str, fields: dict[str, str], expires: float,
                       bounds: UploadBounds) -> Call:
    keys = [upload_key(prefix, upload_id), uploads_key(prefix), unfinished_key(prefix),
            client_unfinished_key(prefix, fields["owner"])]
    return {"keys": keys, "args": [upload_id, expires, bounds.total, bounds.per_client, *pairs(fields)]}


def refused_by(answer: object) -> Full | None:
    """The create script's answer: None when created, else the bound that is full."""
    return REFUSALS.get(cast(int, answer))


def update_upload_call(prefix: str, upload_id: str, expected_offset: int, fields: dict[str, str]) -> Call:
    return {"keys": [upload_key(prefix, upload_id), unfinished_key(prefix)],
            "args": [upload_id, clients_unfinished_key(prefix), str(expected_offset), *pairs(fields)]}


def delete_upload_call(prefix: str, upload_id: str) -> Call:
    return {"keys": [upload_key(prefix, upload_id), unfinished_key(prefix), uploads_key(prefix)],
            "args": [upload_id, clients_unfinished_key(prefix)]}
