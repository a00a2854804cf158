"""Clients in Redis: a hash per client, a string per key hash naming its client (with an expiry
once rotated out), a set of each client's key hashes, a set of every client's name, and a
token bucket per client.

The scripts make each change one atomic step; the token bucket reads Redis's own clock (TIME),
so every server process, whatever its own clock says, shares one bucket and one time.
"""

from __future__ import annotations


def client_key(prefix: str, name: str) -> str:
    return f"{prefix}client:{name}"


def client_keys_key(prefix: str, name: str) -> str:
    """The hashes of a client's keys (the current one and any still in their grace period)."""
    return f"{prefix}client-keys:{name}"


def clients_key(prefix: str) -> str:
    return f"{prefix}clients"


def key_key(prefix: str, key_hash: str) -> str:
    return f"{prefix}key:{key_hash}"


def bucket_key(prefix: str, name: str) -> str:
    return f"{prefix}bucket:{name}"


# KEYS: client hash, its key set, every client, the key. ARGV: name, key hash, field, value, ...
ADD_CLIENT_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SET', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

# KEYS: client hash, its key set. ARGV: key prefix.
REVOKE_CLIENT_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'revoked', '1')
for _, hash in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', ARGV[1] .. 'key:' .. hash) end
redis.call('DEL', KEYS[2])
return 1
"""

# KEYS: client hash, its key set, the new key. ARGV: key prefix, name, new key hash, grace (ms).
# The keys the client had end within the grace period (one already ending sooner keeps its end).
ROTATE_KEY_SCRIPT = """
local revoked = redis.call('HGET', KEYS[1], 'revoked')
if revoked == false or revoked == '1' then return 0 end
local grace = tonumber(ARGV[4])
for _, hash in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = ARGV[1] .. 'key:' .. hash
  local left = redis.call('PTTL', key)
  if left == -2 or grace == 0 then
    redis.call('DEL', key)
    redis.call('SREM', KEYS[2], hash)
  elseif left == -1 or left > grace then
    redis.call('PEXPIRE', key, grace)
  end
end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"""

# KEYS: the bucket. ARGV: rate (tokens per second), burst. Returns {1 taken | 0 not, tokens left}
# (as text: Lua numbers leave a script as integers). A clock that went backwards (a failover to a
# replica whose clock is behind) refills nothing: thumbnailify.clients.refill does the same.
TAKE_TOKEN_SCRIPT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1])
local at = tonumber(held[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
elseif now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {taken, string.format('%.6f', tokens)}
"""
