-- @include now
-- @include ledger
-- The checks of a partition take, in order, before anything is written: an earlier run of this
-- same take (ioredis may resend a script after a reconnect: the second run answers the first
-- result), a release that already closed this order on this partition, the partition's state and
-- fencing epoch, and stock. Two reads in all: this runs on every Reserve.
-- `taker` names the attempt in the takes hash: the order id for its first attempt, '<order>#<n>'
-- for the n-th (a retry that started over after rolling back a dead attempt, whose tombstones
-- must refuse that attempt's late takes without refusing the new one's).
-- Returns {code, units, avail} with the codes of take-3.lua; code 0 means `units` can be taken
-- now, and then also the partition's avail, seq and held before the take, for apply_take (held is
-- false on a partition created before it was kept: the audit then sums its takes hash instead).
local function check_take(part, takes, taker, wanted, minimum, epoch)
  local t = redis.call('HMGET', takes, 't:' .. taker, 'r:' .. taker)
  local p = redis.call('HMGET', part, 'avail', 'epoch', 'state', 'seq', 'held')
  if t[1] then
    return {2, tonumber(t[1]), tonumber(p[1] or '0')}
  end
  if t[2] then
    return {-4, 0, 0}
  end
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
  return {0, units, avail, tonumber(p[4] or '0'), p[5] and tonumber(p[5])}
end

-- Takes the units check_take allowed (`checked` is its answer): sets avail, seq and held (units
-- orders hold from the partition: the takes hash's sum, kept so that an audit reads it in O(1)),
-- records the take for the order and appends the ledger record, all in the caller's atomic
-- script; `now` is the Redis clock in ms. The ledger record names the order; its event id, the
-- attempt (`taker`), so that a retry's take of a partition an earlier attempt gave back counts.
-- Returns avail after.
local function apply_take(part, takes, stream, order, taker, checked, epoch, sku, pid, now)
  local units = checked[2]
  local left, seq = checked[3] - units, checked[4] + 1
  if checked[5] then
    redis.call('HSET', part, 'avail', int(left), 'seq', int(seq), 'held', int(checked[5] + units))
  else
    redis.call('HSET', part, 'avail', int(left), 'seq', int(seq))
  end
  redis.call('HSET', takes, 't:' .. taker, int(units))
  ledger(stream, 'take:' .. taker .. ':' .. pid, 'take', sku, units, 'pool', 'reserved',
    {'order', order, 'partition', pid, 'epoch', epoch, 'seq', int(seq), 'at', int(now)})
  return left
end
