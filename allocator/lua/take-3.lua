--[[
  Takes up to `wanted` units of one partition for one order: the atomic gate that makes overselling
  impossible. Checks, in order, before writing anything: an earlier run of this same take (ioredis
  may resend a script after a reconnect: the second run returns the first result), a release that
  already closed this order on this partition, the partition's state and fencing epoch, and stock.
  Then decrements `avail`, records the take and appends the ledger record. A partition that reaches
  zero stays live: the caller retires it (partition-retire) once its Reserve has settled, so that a
  cart that gives its units back before answering returns them here, not to base.

  KEYS[1] partition hash  {avail, epoch, state, seq, sku, pid}
  KEYS[2] takes hash      t:<order> = units taken, r:<order> = units released
  KEYS[3] ledger stream of the shard

  ARGV[1] order id
  ARGV[2] wanted units (> 0)
  ARGV[3] minimum units to accept (1 allows a partial take; = wanted for all or nothing)
  ARGV[4] expected epoch
  ARGV[5] sku id
  ARGV[6] partition id

  Returns {code, units, avail_after}
     1  TAKEN          units taken now
     2  ALREADY_TAKEN  a previous run took `units`; nothing changed
    -1  SHORT          fewer than the minimum available; units = 0, avail_after = avail
    -2  NOT_LIVE       partition retired (exhausted), drained or unknown
    -3  STALE_EPOCH    the partition was re-owned; avail_after = its epoch
    -4  CLOSED         this order was already released here (recovery); never take after that
]]
-- @include now
-- @include ledger
local part, takes, stream = KEYS[1], KEYS[2], KEYS[3]
local order, wanted, minimum = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

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
if p[2] ~= ARGV[4] then
  return {-3, 0, tonumber(p[2])}
end
local avail = tonumber(p[1])
local units = math.min(avail, wanted)
if units < minimum or units <= 0 then
  return {-1, 0, avail}
end

local left = redis.call('HINCRBY', part, 'avail', -units)
local seq = redis.call('HINCRBY', part, 'seq', 1)
redis.call('HSET', takes, 't:' .. order, units)
ledger(stream, 'take:' .. order .. ':' .. ARGV[6], 'take', ARGV[5], units, 'pool', 'reserved',
  {'order', order, 'partition', ARGV[6], 'epoch', ARGV[4], 'seq', tostring(seq), 'at', tostring(now_ms())})
return {1, units, left}
