"""The Lua scripts of the Redis store (each one atomic and one round trip)."""

from __future__ import annotations

GOING = """
-- A click of a session while the live feed is on: the session is going (a member of the
-- going set, scored by its last click in ms plus a thousandth per click counted on the set's
-- counter, so that clicks in the same ms keep their order) and one more of its clicks waits
-- for the feed, unless it is withheld (its mark then lives as long as the session).
local function going(going_key, pending_key, withheld_key, session, now, ttl, added)
  if redis.call('EXISTS', withheld_key) == 1 then
    redis.call('PEXPIRE', withheld_key, ttl)
    return
  end
  redis.call('INCRBY', pending_key, added)
  redis.call('PEXPIRE', pending_key, ttl)
  local n = redis.call('INCR', going_key .. ':n') % 1000
  -- formatted here: Redis would turn a Lua number into 14 digits, losing the thousandths
  redis.call('ZADD', going_key, string.format('%.3f', tonumber(now) + n / 1000), session)
  -- sessions without a click for longer than the idle timeout are gone: never kept longer
  local gone = string.format('(%.3f', tonumber(now) - tonumber(ttl))
  redis.call('ZREMRANGEBYSCORE', going_key, '-inf', gone)
end
"""

APPEND = (
    GOING
    + """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if #KEYS > 1 then going(KEYS[2], KEYS[3], KEYS[4], ARGV[4], ARGV[5], ARGV[3], 1) end
return redis.call('LRANGE', KEYS[1], 0, -1)
"""
)
"""KEYS: session, and with a live feed: going set, pending clicks, withheld mark. ARGV:
encoded event, max events, idle timeout (ms), and with a live feed: session id, now (ms).
Without a feed the call is the same as before the feed existed (one key, three values)."""

GET = """
local events = redis.call('LRANGE', KEYS[1], 0, -1)
if #events > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return events
"""
"""KEYS: session. ARGV: idle timeout (ms)."""

REPLAY = (
    GOING
    + """
-- the nonce: after the event type, between \\030 (0x1e) and the \\031 (0x1f) before the item
local NONCE = '^[^\\031]*\\031[^\\030\\031]*\\030([^\\031]+)\\031'
local erased = tonumber(redis.call('GET', KEYS[2]) or '0')
local present = {}
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local nonce = string.match(raw, NONCE)
  if nonce then present[nonce] = true end
end
local last = #ARGV
if #KEYS > 2 then last = #ARGV - 2 end  -- a live feed: session id and now (ms) come last
local added = 0
for i = 3, last, 2 do
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
  if #KEYS > 2 then
    going(KEYS[3], KEYS[4], KEYS[5], ARGV[#ARGV - 1], ARGV[#ARGV], ARGV[2], added)
  end
end
return redis.call('LRANGE', KEYS[1], 0, -1)
"""
)
"""Write buffered clicks back, oldest first, each at most once (by nonce), none that arrived
before the session was erased. KEYS: session, erasure mark, and with a live feed: going set,
pending clicks, withheld mark. ARGV: max events, idle timeout (ms), then (encoded event with
nonce, arrival ms) pairs, and with a live feed: session id, now (ms)."""

DELETE = """
local found = 0
for _, rec_id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  found = found + redis.call('DEL', ARGV[1] .. rec_id)
end
found = found + redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[4])
redis.call('DEL', KEYS[2])
redis.call('DEL', KEYS[6], KEYS[7])
redis.call('ZREM', KEYS[5], ARGV[4])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return found
"""
"""Erase a session, its recommendation records, its KPI summary and its live-feed state (the
going set's member, pending clicks, withheld mark), and mark it erased (so that clicks
another worker buffered before the erasure are not written back). KEYS: session, the
session's recommendation ids, erasure mark, KPI summary, going set, pending clicks, withheld
mark. ARGV: record key prefix, erasure time (ms), how long the mark lives (ms), session id."""

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

CONVERT = (
    GOING
    + """
local events
if ARGV[1] ~= '' then
  redis.call('RPUSH', KEYS[1], ARGV[1])
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  if #KEYS > 4 then going(KEYS[5], KEYS[6], KEYS[7], ARGV[13], ARGV[8], ARGV[3], 1) end
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
)
"""Record a cart or purchase and count it: for the latest answer of the session that showed
the item within the window (last touch), else unattributed for the session's variant. KEYS:
session, the session's recommendation ids, KPI summary, counters. ARGV: encoded event (''
when it is not kept: no consent), max events, idle timeout (ms), record key prefix, the item
between separators, event type, revenue, now (ms), window (ms), the session's variant, KPI
retention (ms), '1' when the session consented (its summary counts it) else '0', and with a
live feed (KEYS: going set, pending clicks, withheld mark): the session id (ARGV)."""


HAND_OVER = """
-- Hand a session's clicks not handed over yet (at most what its list still keeps: it may
-- have been trimmed to max events) to the feed, without the session id and without the
-- nonces (which would tie the entry to the session's list), as entry <seq>-1 with seq from
-- the feed's counter; the feed is trimmed to its capacity.
local function hand_over(session, sessions, pending, withheld, feed, head, capacity)
  local pending_key = pending .. session
  local fresh = tonumber(redis.call('GET', pending_key) or '0')
  redis.call('DEL', pending_key)
  if fresh <= 0 or redis.call('EXISTS', withheld .. session) == 1 then return 0 end
  local events = redis.call('LRANGE', sessions .. session, -fresh, -1)
  if #events == 0 then return 0 end
  local fields = {}
  for i, raw in ipairs(events) do
    fields[2 * i - 1] = tostring(i)
    fields[2 * i] = string.gsub(raw, '\\030[^\\031]*', '', 1)
  end
  local seq = redis.call('INCR', head)
  redis.call('XADD', feed, 'MAXLEN', capacity, seq .. '-1', unpack(fields))
  return 1
end
"""

FINISH_IDLE = (
    HAND_OVER
    + """
local now, idle, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
-- scores are the last click (ms) plus less than 1: idle enough when below now - idle + 1
local due = string.format('(%.3f', now - idle + 1)
local handed = 0
while handed < limit do
  local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', due, 'LIMIT', 0, limit - handed)
  if #batch == 0 then break end
  for _, session in ipairs(batch) do
    redis.call('ZREM', KEYS[1], session)
    handed = handed + hand_over(session, ARGV[5], ARGV[6], ARGV[7], KEYS[2], KEYS[3], ARGV[4])
  end
end
return handed
"""
)
"""Hand at most ``limit`` sessions idle long enough to the feed, longest idle first (atomic:
two replicas sweeping at once never hand a session over twice). KEYS: going set, feed,
feed counter. ARGV: now (ms), idle (ms), limit, feed capacity, session key prefix, pending
clicks key prefix, withheld mark key prefix."""

FINISH = (
    HAND_OVER
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
return hand_over(ARGV[1], ARGV[3], ARGV[4], ARGV[5], KEYS[2], KEYS[3], ARGV[2])
"""
)
"""Hand one session to the feed now. KEYS: going set, feed, feed counter. ARGV: session id,
feed capacity, session key prefix, pending clicks key prefix, withheld mark key prefix."""

WITHHOLD = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""
"""Never hand this session over: its mark lives as long as the session (renewed by its
clicks), its clicks waiting for the feed are dropped. KEYS: withheld mark, pending clicks,
going set. ARGV: session id, idle timeout (ms)."""

CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
"""Take a free lease or renew one's own (atomic). KEYS: the lease. ARGV: the holder's token,
how long the lease lasts (ms). Returns 1 when the caller holds it."""
