--[[
  The whole Reserve of a one-item order in one atomic call, when the SKU has a live partition in
  the order's own shard: the idempotency gate (order-begin), the take (take) and the commit
  (order-commit) at once. Nothing is PENDING in between, so there is nothing for recovery to do.
  When the partition cannot give the whole quantity (short, retired, re-owned, or a tombstone),
  nothing is written: the caller opens the order with order-begin and goes on with the general path
  (takes from this and other partitions, then commit). That costs a second call only then, and
  spares every call the PENDING doc and plan that the general path needs.

  KEYS[1] order hash      (as order-begin)
  KEYS[2] expiry zset     order id -> expires ms
  KEYS[3] partition hash  (as take)
  KEYS[4] takes hash      (as take)
  KEYS[5] ledger stream of the shard
  KEYS[6] forgotten-id filter, current generation   (as order-begin)
  KEYS[7] forgotten-id filter, previous generation

  ARGV[1] order id
  ARGV[2] fingerprint of the request (items, user, ttl)
  ARGV[3] ttl seconds of the hold
  ARGV[4] doc JSON after the take (the one piece), kept once RESERVED
  ARGV[5] units
  ARGV[6] expected epoch of the partition
  ARGV[7] sku id
  ARGV[8] partition id
  ARGV[9..11] the filter check (as order-begin)

  Returns {3, created_ms, expires_ms, avail_after}  RESERVED: taken and committed
          {4, take_code}                            nothing written: use the general path
          {2, same_request (1|0), HGETALL...}       EXISTS (as order-begin)
          {5}                                       MAYBE_FORGOTTEN (as order-begin)
]]
-- @include gate
-- @include take
local order, expiry, part, takes, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, fp, ttl, units = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[5])

local answered = gate_new_order(order, fp, KEYS[6], KEYS[7], ARGV[9], ARGV[10], ARGV[11])
if answered then return answered end

local checked = check_take(part, takes, id, units, units, ARGV[6])
if checked[1] ~= 0 then
  return {4, checked[1]}
end

local created = now_ms()
local left = apply_take(part, takes, stream, id, id, checked, ARGV[6], ARGV[7], ARGV[8], created)
local expires = created + tonumber(ttl) * 1000
local expires_s = int(expires)
redis.call('HSET', order, 'state', 'RESERVED', 'fp', fp, 'doc', ARGV[4], 'ttl', ttl, 'created', int(created), 'expires', expires_s)
redis.call('ZADD', expiry, expires_s, id)
return {3, created, expires, left}
