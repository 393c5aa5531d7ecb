--[[
  Gives back up to `units` of what one order took from one partition, once per release id. The
  units return to the partition while it is live; once it is exhausted or drained they go to base
  (through the ledger) and never resurrect it. The total released can never exceed what was taken.
  Also leaves a tombstone (r:<order>) even when nothing was taken, so that a take still in flight
  from a crashed attempt is refused afterwards.

  KEYS[1] partition hash  (held, where kept, falls by the units released)
  KEYS[2] takes hash      t:<order>, r:<order>, x:<order>:<release id> = units of that release
  KEYS[3] ledger stream of the shard

  ARGV[1] order id
  ARGV[2] units to release (>= 0; capped at taken - released)
  ARGV[3] release id (idempotency key of this release within the order)
  ARGV[4] from: 'reserved' (unpaid hold) or 'committed' (paid)
  ARGV[5] reason (for the ledger)
  ARGV[6] sku id
  ARGV[7] partition id

  Returns {code, units, to}
     1  RELEASED   units released now, to 'pool' or 'base' ('' when 0)
     2  REPLAYED   this release id already ran here; units and `to` of that run
]]
-- @include now
-- @include ledger
local part, takes, stream = KEYS[1], KEYS[2], KEYS[3]
local order, relid = ARGV[1], ARGV[3]
local guard = 'x:' .. order .. ':' .. relid

local prior = redis.call('HGET', takes, guard)
if prior then
  local units, to = string.match(prior, '^(%d+):(%a*)$')
  return {2, tonumber(units), to}
end

local taken = tonumber(redis.call('HGET', takes, 't:' .. order) or '0')
local released = tonumber(redis.call('HGET', takes, 'r:' .. order) or '0')
local units = math.max(0, math.min(tonumber(ARGV[2]), taken - released))
redis.call('HSET', takes, 'r:' .. order, released + units)

local to = ''
if units > 0 then
  local p = redis.call('HMGET', part, 'state', 'epoch', 'held')
  if p[1] == 'live' then
    redis.call('HINCRBY', part, 'avail', units)
    to = 'pool'
  else
    to = 'base'
  end
  if p[3] then
    redis.call('HINCRBY', part, 'held', -units)
  end
  local seq = redis.call('HINCRBY', part, 'seq', 1)
  ledger(stream, 'release:' .. order .. ':' .. ARGV[7] .. ':' .. relid, 'release', ARGV[6], units, ARGV[4], to,
    {'order', order, 'partition', ARGV[7], 'epoch', p[2] or '0', 'seq', int(seq), 'reason', ARGV[5],
     'at', int(now_ms())})
end
redis.call('HSET', takes, guard, units .. ':' .. to)
return {1, units, to}
