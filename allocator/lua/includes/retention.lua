-- @include int
-- The end of an order's record (the key lifecycle: allocator/keys.ts). An order that ended, and a
-- CONFIRMED one, is kept for replays until `forget` (ms, Redis clock): ORDER_RETENTION after its
-- last change, each change moving it on. The shard's `forget` index lists it for the forgetter
-- (allocator/forgetter.ts), which archives it in MySQL, clears its take and allowance records and
-- then deletes it. From `forget` on the order is sealed: no script changes it any more, so the
-- forgetter clears its records without racing a late Release or shipment.
local function keep_until(order, forget, id, now, retention_s)
  local due = int(now + tonumber(retention_s) * 1000)
  redis.call('HSET', order, 'forget', due)
  redis.call('ZADD', forget, due, id)
end

-- True once an order's retention has ended (`forget_at`: its `forget` field, nil while open).
local function sealed(forget_at, now)
  return forget_at ~= false and forget_at ~= nil and now >= tonumber(forget_at)
end
