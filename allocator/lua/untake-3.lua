--[[
  Gives back up to `units` of what one order took from one partition, once per release id. The
  units return to the partition while it is live; once it is exhausted or drained they go to base
  (through the ledger) and never resurrect it. The total released can never exceed what was taken.
  Units that are physically gone (a loss base and pool could not cover left the partition a
  `debt`, partition-owe) do not return to sale at all: they pay the debt first (reserved or
  committed -> missing, which pays off the shortfall in MySQL).
  Also leaves a tombstone (r:<order>) even when nothing was taken, so that a take still in flight
  from a crashed attempt is refused afterwards.

  KEYS[1] partition hash  (held, where kept, falls by the units released; debt, where owed, is paid first)
  KEYS[2] takes hash      t:<taker>, r:<taker>, x:<taker>:<release id> = units of that release
  KEYS[3] ledger stream of the shard

  ARGV[1] order id
  ARGV[2] units to release (>= 0; capped at taken - released)
  ARGV[3] release id (idempotency key of this release within the order)
  ARGV[4] from: 'reserved' (unpaid hold) or 'committed' (paid)
  ARGV[5] reason (for the ledger)
  ARGV[6] sku id
  ARGV[7] partition id
  ARGV[8] taker: the attempt's name in the takes hash (includes/take.lua); the order id when absent

  Returns {code, units, to}
     1  RELEASED   units released now, to 'pool' or 'base' ('' when 0, 'missing' when all paid a debt)
     2  REPLAYED   this release id already ran here; units and `to` of that run
]]
-- @include now
-- @include ledger
local part, takes, stream = KEYS[1], KEYS[2], KEYS[3]
local order, relid = ARGV[1], ARGV[3]
local taker = ARGV[8] or order
local guard = 'x:' .. taker .. ':' .. relid

local prior = redis.call('HGET', takes, guard)
if prior then
  local units, to = string.match(prior, '^(%d+):(%a*)$')
  return {2, tonumber(units), to}
end

local taken = tonumber(redis.call('HGET', takes, 't:' .. taker) or '0')
local released = tonumber(redis.call('HGET', takes, 'r:' .. taker) or '0')
local units = math.max(0, math.min(tonumber(ARGV[2]), taken - released))
redis.call('HSET', takes, 'r:' .. taker, released + units)

local to = ''
if units > 0 then
  local p = redis.call('HMGET', part, 'state', 'epoch', 'held', 'debt')
  if p[3] then
    redis.call('HINCRBY', part, 'held', -units)
  end
  -- Named by the attempt: two attempts' rollbacks (both '#recovery') are two records.
  local event = 'release:' .. taker .. ':' .. ARGV[7] .. ':' .. relid
  local extra = function(seq)
    return {'order', order, 'partition', ARGV[7], 'epoch', p[2] or '0', 'seq', int(seq), 'reason', ARGV[5], 'at', int(now_ms())}
  end
  local paid = math.min(units, tonumber(p[4] or '0'))
  if paid > 0 then
    redis.call('HINCRBY', part, 'debt', -paid)
    to = 'missing'
    ledger(stream, event .. ':missing', 'release', ARGV[6], paid, ARGV[4], 'missing', extra(redis.call('HINCRBY', part, 'seq', 1)))
  end
  local back = units - paid
  if back > 0 then
    if p[1] == 'live' then
      redis.call('HINCRBY', part, 'avail', back)
      to = 'pool'
    else
      to = 'base'
    end
    ledger(stream, event, 'release', ARGV[6], back, ARGV[4], to, extra(redis.call('HINCRBY', part, 'seq', 1)))
  end
end
redis.call('HSET', takes, guard, units .. ':' .. to)
return {1, units, to}
