"""How both sides use Redis: key names, client options, and the scripts that change a record.

The async server store and the sync worker store both use these, so the layout cannot drift.
"""

from __future__ import annotations

from common.config import RedisSettings


def client_options(conf: RedisSettings) -> dict[str, object]:
    """Strings in and out, bounded waits (an outage is an error, not a hang), stale sockets noticed."""
    return {
        "decode_responses": True,
        "socket_timeout": conf.timeout,
        "socket_connect_timeout": conf.timeout,
        "health_check_interval": 10,
    }


def media_key(prefix: str, media_id: str) -> str:
    return f"{prefix}media:{media_id}"


def index_key(prefix: str, state: str | None = None) -> str:
    """All media by creation time, or (with a state) only those in that state, for ?state= lists."""
    return f"{prefix}index" if state is None else f"{prefix}index:{state}"


def pairs(fields: dict[str, str]) -> list[str]:
    """field, value, field, value... as the scripts below take them in ARGV."""
    return [item for pair in fields.items() for item in pair]


# KEYS[1] record, KEYS[2] index, KEYS[3] its state's index; ARGV[1] score, ARGV[2] media_id,
# ARGV[3..] field, value pairs. Record and index entries in one atomic round trip.
CREATE_SCRIPT = """
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
return 1
"""

# KEYS[1] record, KEYS[2] index, KEYS[3] old state's index, KEYS[4] new state's index;
# ARGV[1] expected state, ARGV[2] media_id, ARGV[3..] field, value pairs.
# A missing record (deleted) never matches, so a late worker cannot bring it back.
TRANSITION_SCRIPT = """
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if KEYS[3] ~= KEYS[4] then
  local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  if score then
    redis.call('ZADD', KEYS[4], score, ARGV[2])
  end
end
return 1
"""

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


def dead_letter_queue(queue: str) -> str:
    """Where jobs go that failed on every retry, for an operator to inspect or replay."""
    return f"{queue}.dead"
