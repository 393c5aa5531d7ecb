--[[
  Creates again the record of an order that a Redis node lost and MySQL's ledger recorded
  (admin/lost-writes.ts), so that a replay of its Reserve answers what it got instead of taking
  again, and Confirm, Release and the expiry keep working on it. Never overwrites: an order that
  exists (not lost, or restored by another server first) is left as it is. The fingerprint is
  unknown (the ledger has no buyer or ttl): `fp` is empty, `restored` is 1 and `items` holds the
  items part, which reserve.ts accepts as the same request. An unpaid hold goes back on the expiry
  index; an ended or paid order is kept for the retention (includes/retention.lua).

  KEYS[1] order hash
  KEYS[2] expiry zset of the order's shard
  KEYS[3] forget zset of the order's shard

  ARGV[1] order id     ARGV[2] state     ARGV[3] doc JSON     ARGV[4] items fingerprint
  ARGV[5] created ms   ARGV[6] expires ms (0 unless RESERVED)  ARGV[7] confirmed ms (0 if not)
  ARGV[8] ended ms (0 if open)   ARGV[9] ttl seconds   ARGV[10] retention seconds

  Returns  1  created
           2  existed: left alone
]]
-- @include now
-- @include retention
local order, expiry = KEYS[1], KEYS[2]
if redis.call('EXISTS', order) == 1 then return 2 end
local state = ARGV[2]
redis.call('HSET', order, 'state', state, 'fp', '', 'restored', 1, 'items', ARGV[4], 'doc', ARGV[3], 'ttl', ARGV[9],
  'created', ARGV[5], 'expires', ARGV[6])
if ARGV[7] ~= '0' then redis.call('HSET', order, 'confirmed', ARGV[7]) end
if ARGV[8] ~= '0' then redis.call('HSET', order, 'ended', ARGV[8]) end
if state == 'RESERVED' then
  redis.call('ZADD', expiry, ARGV[6], ARGV[1])
else
  keep_until(order, KEYS[3], ARGV[1], now_ms(), ARGV[10])
end
return 1
