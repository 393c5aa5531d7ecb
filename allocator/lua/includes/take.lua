-- @include now
-- @include ledger
-- The checks of a partition take, in order, before anything is written: an earlier run of this
-- same take (ioredis may resend a script after a reconnect: the second run answers the first
-- result), a release that already closed this order on this partition, the partition's state and
-- fencing epoch, and stock. Returns {code, units, avail} with the codes of take-3.lua; code 0 means
-- `units` can be taken now (`avail` is what the partition holds before).
local function check_take(part, takes, order, wanted, minimum, epoch)
  local prior = redis.call('HGET', takes, 't:' .. order)
  if prior then
    return {2, tonumber(prior), tonumber(redis.call('HGET', part, 'avail') or '0')}
  end
  if redis.call('HEXISTS', takes, 'r:' .. order) == 1 then
    return {-4, 0, 0}
  end
  local p = redis.call('HMGET', part, 'avail', 'epoch', 'state')
  if p[3] ~= 'live' then
    return {-2, 0, 0}
  end
  if p[2] ~= epoch then
    return {-3, 0, tonumber(p[2])}
  end
  local avail = tonumber(p[1])
  local units = math.min(avail, wanted)
  if units < minimum or units <= 0 then
    return {-1, 0, avail}
  end
  return {0, units, avail}
end

-- Takes `units` that check_take allowed: decrements avail, records the take for the order and
-- appends the ledger record, all in the caller's atomic script. Returns avail after.
local function apply_take(part, takes, stream, order, units, epoch, sku, pid)
  local left = redis.call('HINCRBY', part, 'avail', -units)
  local seq = redis.call('HINCRBY', part, 'seq', 1)
  redis.call('HSET', takes, 't:' .. order, units)
  ledger(stream, 'take:' .. order .. ':' .. pid, 'take', sku, units, 'pool', 'reserved',
    {'order', order, 'partition', pid, 'epoch', epoch, 'seq', tostring(seq), 'at', tostring(now_ms())})
  return left
end
