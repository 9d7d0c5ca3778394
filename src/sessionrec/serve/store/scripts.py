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
redis.call('DEL', KEYS[4])
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return found
"""
"""Erase a session, its recommendation records and its KPI summary, and mark it erased (so
that clicks another worker buffered before the erasure are not written back). KEYS: session,
the session's recommendation ids, erasure mark, KPI summary. ARGV: record key prefix,
erasure time (ms), how long the mark lives (ms)."""

RECORD = """
local ttl = ARGV[3]
local impressions, sessions = {}, {}
for i = 6, #ARGV, 5 do
  local rec_id, variant, session, at = ARGV[i], ARGV[i + 1], ARGV[i + 3], ARGV[i + 4]
  local key = ARGV[1] .. rec_id
  redis.call('HSET', key, 'v', variant, 'i', ARGV[i + 2], 't', at, 's', session)
  redis.call('PEXPIRE', key, ttl)
  if session ~= '' then
    local issued = ARGV[2] .. session
    redis.call('SADD', issued, rec_id)
    redis.call('PEXPIRE', issued, ttl)
    local summary = ARGV[4] .. session
    if redis.call('HSETNX', summary, 'variant', variant) == 1 then
      redis.call('HSET', summary, 'first_seen', at)
      sessions[variant] = (sessions[variant] or 0) + 1
    end
    redis.call('HINCRBY', summary, 'impressions', 1)
    redis.call('PEXPIRE', summary, ARGV[5])
  end
  impressions[variant] = (impressions[variant] or 0) + 1
end
for variant, n in pairs(impressions) do
  redis.call('HINCRBY', KEYS[1], variant .. ':impressions', n)
end
for variant, n in pairs(sessions) do
  redis.call('HINCRBY', KEYS[1], variant .. ':sessions', n)
end
return (#ARGV - 5) / 5
"""
"""Write a batch of recommendation records (variant, items shown, time, session), link each
to its session's set of records, count the impressions per variant, and count each answer in
its session's KPI summary (created, and the session counted for the variant, by its first
answer). KEYS: counters. ARGV: record key prefix, session-records key prefix, time to live
(ms), KPI summary key prefix, KPI retention (ms), then (recommendation id, variant, items
shown, session id or '', answer time in ms) quintuples."""

FEEDBACK = """
local variant = redis.call('HGET', KEYS[1], 'v')
if not variant then return {-1, ''} end
local items = redis.call('HGET', KEYS[1], 'i')
if not string.find(items, ARGV[1], 1, true) then return {-2, variant} end
if redis.call('HSETNX', KEYS[1], 'c:' .. ARGV[2], '1') == 0 then return {-3, variant} end
redis.call('HINCRBY', KEYS[2], variant .. ':clicks', 1)
local session = redis.call('HGET', KEYS[1], 's')
if session and session ~= '' then
  local summary = ARGV[3] .. session
  if redis.call('EXISTS', summary) == 1 then
    redis.call('HINCRBY', summary, 'clicks', 1)
    redis.call('PEXPIRE', summary, ARGV[4])
  end
end
return {1, variant}
"""
"""KEYS: recommendation record, counters. ARGV: the item between separators, the item, KPI
summary key prefix, KPI retention (ms)."""

CONVERT = """
local events
if ARGV[1] ~= '' then
  redis.call('RPUSH', KEYS[1], ARGV[1])
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  events = redis.call('LRANGE', KEYS[1], 0, -1)
else
  events = redis.call('LRANGE', KEYS[1], 0, -1)
  if #events > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
end
local now, window = tonumber(ARGV[8]), tonumber(ARGV[9])
local best, best_at, best_variant = '', -1, nil
for _, rec_id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local rec = redis.call('HMGET', ARGV[4] .. rec_id, 'v', 'i', 't')
  local at = tonumber(rec[3])
  if rec[1] and at and at > best_at and now - at <= window
      and string.find(rec[2], ARGV[5], 1, true) then
    best, best_at, best_variant = rec_id, at, rec[1]
  end
end
local kind, revenue = ARGV[6], ARGV[7]
local field = kind == 'purchase' and 'purchases' or 'carts'
if best_variant == nil then
  redis.call('HINCRBY', KEYS[4], ARGV[10] .. ':unattributed_' .. field, 1)
  if tonumber(revenue) > 0 then
    redis.call('HINCRBYFLOAT', KEYS[4], ARGV[10] .. ':unattributed_revenue', revenue)
  end
  return {events, 0, ARGV[10], ''}
end
redis.call('HINCRBY', KEYS[4], best_variant .. ':' .. field, 1)
if tonumber(revenue) > 0 then
  redis.call('HINCRBYFLOAT', KEYS[4], best_variant .. ':revenue', revenue)
end
if ARGV[12] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  local n = redis.call('HINCRBY', KEYS[3], field, 1)
  if tonumber(revenue) > 0 then
    redis.call('HINCRBYFLOAT', KEYS[3], 'revenue', revenue)
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[11])
  if n == 1 then
    local session_variant = redis.call('HGET', KEYS[3], 'variant')
    redis.call('HINCRBY', KEYS[4], session_variant .. ':' .. kind .. '_sessions', 1)
  end
end
return {events, 1, best_variant, best}
"""
"""Record a cart or purchase and count it: for the latest answer of the session that showed
the item within the window (last touch), else unattributed for the session's variant. KEYS:
session, the session's recommendation ids, KPI summary, counters. ARGV: encoded event (''
when it is not kept: no consent), max events, idle timeout (ms), record key prefix, the item
between separators, event type, revenue, now (ms), window (ms), the session's variant, KPI
retention (ms), '1' when the session consented (its summary counts it) else '0'."""
