"""The Lua scripts of the Redis store (each one atomic and one round trip)."""

from __future__ import annotations

APPEND = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('LRANGE', KEYS[1], 0, -1)
"""
"""KEYS: session. ARGV: encoded event, max events, idle timeout (ms)."""

GET = """
local events = redis.call('LRANGE', KEYS[1], 0, -1)
if #events > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return events
"""
"""KEYS: session. ARGV: idle timeout (ms)."""

REPLAY = """
-- the nonce: after the event type, between \\030 (0x1e) and the \\031 (0x1f) before the item
local NONCE = '^[^\\031]*\\031[^\\030\\031]*\\030([^\\031]+)\\031'
local erased = tonumber(redis.call('GET', KEYS[2]) or '0')
local present = {}
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local nonce = string.match(raw, NONCE)
  if nonce then present[nonce] = true end
end
local added = 0
for i = 3, #ARGV, 2 do
  local raw = ARGV[i]
  if tonumber(ARGV[i + 1]) > erased then
    local nonce = string.match(raw, NONCE)
    if nonce == nil or not present[nonce] then
      redis.call('RPUSH', KEYS[1], raw)
      if nonce then present[nonce] = true end
      added = added + 1
    end
  end
end
if added > 0 then
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('LRANGE', KEYS[1], 0, -1)
"""
"""Write buffered clicks back, oldest first, each at most once (by nonce), none that arrived
before the session was erased. KEYS: session, erasure mark. ARGV: max events, idle timeout
(ms), then (encoded event with nonce, arrival ms) pairs."""

DELETE = """
local found = 0
for _, rec_id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  found = found + redis.call('DEL', ARGV[1] .. rec_id)
end
found = found + redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return found
"""
"""Erase a session and its recommendation records, and mark it erased (so that clicks
another worker buffered before the erasure are not written back). KEYS: session, the
session's recommendation ids, erasure mark. ARGV: record key prefix, erasure time (ms),
how long the mark lives (ms)."""

RECORD = """
local ttl = ARGV[3]
local impressions = {}
for i = 4, #ARGV, 4 do
  local rec_id, variant = ARGV[i], ARGV[i + 1]
  local key = ARGV[1] .. rec_id
  redis.call('HSET', key, 'v', variant, 'i', ARGV[i + 2])
  redis.call('PEXPIRE', key, ttl)
  if ARGV[i + 3] ~= '' then
    local issued = ARGV[2] .. ARGV[i + 3]
    redis.call('SADD', issued, rec_id)
    redis.call('PEXPIRE', issued, ttl)
  end
  impressions[variant] = (impressions[variant] or 0) + 1
end
for variant, n in pairs(impressions) do
  redis.call('HINCRBY', KEYS[1], variant .. ':impressions', n)
end
return (#ARGV - 3) / 4
"""
"""Write a batch of recommendation records (variant and items shown), link each to its
session's set of records, and count the impressions per variant. KEYS: counters. ARGV:
record key prefix, session-records key prefix, time to live (ms), then (recommendation id,
variant, items shown, session id or '') quadruples."""

FEEDBACK = """
local variant = redis.call('HGET', KEYS[1], 'v')
if not variant then return {-1, ''} end
local items = redis.call('HGET', KEYS[1], 'i')
if not string.find(items, ARGV[1], 1, true) then return {-2, variant} end
if redis.call('HSETNX', KEYS[1], 'c:' .. ARGV[2], '1') == 0 then return {-3, variant} end
redis.call('HINCRBY', KEYS[2], variant .. ':clicks', 1)
return {1, variant}
"""
"""KEYS: recommendation record, counters. ARGV: the item between separators, the item."""
