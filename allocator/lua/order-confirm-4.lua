--[[
  Payment succeeded: RESERVED becomes CONFIRMED and no longer expires; its record is kept for
  ORDER_RETENTION after its last change (includes/retention.lua). A hold whose expiry has
  passed on the Redis clock is refused even if the sweeper has not released it yet: it is expired.
  Appends one ledger record per SKU still held (reserved -> committed).

  KEYS[1] order hash
  KEYS[2] expiry zset
  KEYS[3] ledger stream of the order's shard
  KEYS[4] forget zset   order id -> ms its retention ends

  ARGV[1] order id
  ARGV[2] seconds to keep the record after this change

  Returns {1, confirmed_ms}  CONFIRMED now
          {2, confirmed_ms}  was already confirmed
          {-1}               NOT_FOUND
          {-2}               ALREADY_RELEASED
          {-3}               ALREADY_EXPIRED
          {-4}               IN_PROGRESS (the Reserve has not answered yet)
          {-5}               REJECTED (the Reserve failed)
]]
-- @include now
-- @include ledger
-- @include retention
local order, expiry, stream = KEYS[1], KEYS[2], KEYS[3]
local h = redis.call('HMGET', order, 'state', 'expires', 'confirmed', 'doc')
local state = h[1]
if not state then return {-1} end
if state == 'CONFIRMED' then return {2, tonumber(h[3])} end
if state == 'RELEASED' then return {-2} end
if state == 'EXPIRED' then return {-3} end
if state == 'PENDING' then return {-4} end
if state == 'REJECTED' then return {-5} end

local now = now_ms()
if now >= tonumber(h[2]) then return {-3} end

for _, item in ipairs(cjson.decode(h[4]).items) do
  local open = item.qty - item.rel
  if open > 0 then
    ledger(stream, 'confirm:' .. ARGV[1] .. ':' .. item.sku, 'confirm', item.sku, open, 'reserved', 'committed',
      {'order', ARGV[1], 'at', int(now)})
  end
end
redis.call('HSET', order, 'state', 'CONFIRMED', 'confirmed', now, 'expires', 0)
redis.call('ZREM', expiry, ARGV[1])
keep_until(order, KEYS[4], ARGV[1], now, ARGV[2])
return {1, now}
