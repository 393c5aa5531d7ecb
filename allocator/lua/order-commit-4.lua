--[[
  Closes a Reserve: RESERVED with the pieces actually taken and an expiry on the Redis clock, or
  REJECTED with the shortages (remembered, so a replay answers the same). Refused when this attempt
  is no longer PENDING: it was rolled back (by the recovery worker, or by a retry once its give-up
  time passed) while this process was slow, and maybe replaced by the retry's attempt.

  KEYS[1] order hash
  KEYS[2] pending zset
  KEYS[3] expiry zset   order id -> expires ms
  KEYS[4] forget zset   order id -> ms its retention ends (includes/retention.lua)

  ARGV[1] order id
  ARGV[2] outcome: RESERVED or REJECTED
  ARGV[3] RESERVED: the doc JSON with pieces; REJECTED: the shortages JSON
  ARGV[4] seconds to keep a REJECTED record for replays
  ARGV[5] the attempt closing it (order-begin's answer)

  Returns {1, now_ms, expires_ms}
          {-1, state}   this attempt is not PENDING any more
]]
-- @include now
-- @include retention
local order, pending, expiry = KEYS[1], KEYS[2], KEYS[3]
local h = redis.call('HMGET', order, 'state', 'att')
local state = h[1]
if state ~= 'PENDING' or (h[2] or '1') ~= ARGV[5] then
  return {-1, state or ''}
end
local now = now_ms()
local expires = 0
if ARGV[2] == 'RESERVED' then
  expires = now + tonumber(redis.call('HGET', order, 'ttl')) * 1000
  redis.call('HSET', order, 'state', 'RESERVED', 'doc', ARGV[3], 'expires', expires)
  redis.call('ZADD', expiry, expires, ARGV[1])
else
  redis.call('HSET', order, 'state', 'REJECTED', 'answer', ARGV[3], 'ended', now)
  keep_until(order, KEYS[4], ARGV[1], now, ARGV[4])
end
redis.call('ZREM', pending, ARGV[1])
return {1, now, expires}
