--[[
  Marks units that orders hold from this partition as physically gone: a loss that base and pool
  could not cover (the shortfall) leaves the partition a `debt`, at most what its orders hold and do
  not already owe. A release of the partition's units pays the debt first (untake) instead of
  putting units that are gone back on sale. Idempotent per event id.

  KEYS[1] partition hash  held, debt, o:<event id> = units owed by that event

  ARGV[1] units the loss still has to place
  ARGV[2] event id (the loss's, per partition)

  Returns the units this partition owes for the event (0 when its orders hold nothing more, or it
  keeps no `held`: a partition created before it was kept)
]]
local part = KEYS[1]
local guard = 'o:' .. ARGV[2]
local prior = redis.call('HGET', part, guard)
if prior then return tonumber(prior) end
local p = redis.call('HMGET', part, 'held', 'debt')
local room = tonumber(p[1] or '0') - tonumber(p[2] or '0')
local owe = math.max(0, math.min(tonumber(ARGV[1]), room))
if owe > 0 then redis.call('HINCRBY', part, 'debt', owe) end
redis.call('HSET', part, guard, owe)
return owe
