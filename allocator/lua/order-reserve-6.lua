--[[
  The whole Reserve of a one-item order in one atomic call, when the SKU has a live partition in
  the order's own shard: the idempotency gate (order-begin), the take (take) and the commit
  (order-commit) at once. Nothing is PENDING in between, so there is nothing for recovery to do.
  When the partition cannot give the whole quantity (short, retired, re-owned, or a tombstone),
  nothing is taken: the order is opened PENDING exactly as order-begin does, and the caller goes on
  with the general path (takes from this and other partitions, then commit).

  KEYS[1] order hash      (as order-begin)
  KEYS[2] pending zset    (as order-begin)
  KEYS[3] expiry zset     order id -> expires ms
  KEYS[4] partition hash  (as take)
  KEYS[5] takes hash      (as take)
  KEYS[6] ledger stream of the shard

  ARGV[1] order id
  ARGV[2] fingerprint of the request (items, user, ttl)
  ARGV[3] plan JSON: one piece [[sku, partition, shard, epoch, units], ...]: this partition, all units
  ARGV[4] doc JSON before the take (no pieces), kept while PENDING
  ARGV[5] ttl seconds of the hold
  ARGV[6] doc JSON after the take (the one piece), kept once RESERVED
  ARGV[7] units
  ARGV[8] expected epoch of the partition
  ARGV[9] sku id
  ARGV[10] partition id

  Returns {3, created_ms, expires_ms, avail_after}  RESERVED: taken and committed
          {1, created_ms, take_code}                NEW, PENDING: continue on the general path
          {2, same_request (1|0), HGETALL...}       EXISTS (as order-begin)
]]
-- @include order
-- @include take
local order, pending, expiry, part, takes, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, fp, units = ARGV[1], ARGV[2], tonumber(ARGV[7])

local existing = existing_order(order, fp)
if existing then
  return existing
end

local checked = check_take(part, takes, id, units, units, ARGV[8])
if checked[1] ~= 0 then
  return {1, open_order(order, pending, id, fp, ARGV[3], ARGV[4], ARGV[5]), checked[1]}
end

local created = now_ms()
local left = apply_take(part, takes, stream, id, checked, ARGV[8], ARGV[9], ARGV[10], created)
local expires = created + tonumber(ARGV[5]) * 1000
redis.call('HSET', order, 'state', 'RESERVED', 'fp', fp, 'doc', ARGV[6], 'ttl', ARGV[5], 'created', created,
  'expires', expires)
redis.call('ZADD', expiry, expires, id)
return {3, created, expires, left}
