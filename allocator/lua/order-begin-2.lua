--[[
  Opens a reservation: the idempotency gate of Reserve. A new order is recorded as PENDING with its
  plan (the partitions it is about to take from), so that if this process dies half way the
  recovery worker knows what to give back. An order that exists is returned whole, with whether
  the replay asks for the same thing.

  KEYS[1] order hash    state, fp, doc, plan, ttl, created, expires, confirmed, ended, answer
  KEYS[2] pending zset  order id -> created ms (orders whose Reserve has not answered yet)

  ARGV[1] order id
  ARGV[2] fingerprint of the request (items, user, ttl)
  ARGV[3] plan JSON: [[sku, partition, shard, epoch, units], ...]
  ARGV[4] doc JSON: {items:[{sku, qty, rel, pieces}], user, limits:{sku:limit}, releases:{}}
  ARGV[5] ttl seconds of the hold

  Returns {1, created_ms}                     NEW
          {2, same_request (1|0), HGETALL...}  EXISTS
]]
-- @include order
local order, pending = KEYS[1], KEYS[2]

local existing = existing_order(order, ARGV[2])
if existing then
  return existing
end
return {1, open_order(order, pending, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])}
