--[[
  Holds units of one buyer's per-user allowance of one SKU for one order, atomically against the
  limit: a buyer who already holds or bought the limit is refused. Idempotent per order, and
  refused after a release closed the order here (a crashed attempt's late hold).

  KEYS[1] user hash   total = units held or bought, h:<order> = units held, r:<order> = released

  ARGV[1] order id
  ARGV[2] units (> 0)
  ARGV[3] the SKU's per-user limit (> 0)

  Returns {1, units}      held now
          {2, units}      already held by an earlier run
          {-1, remaining} over the limit; remaining = what the buyer may still take
          {-4, 0}         CLOSED: this order was released here already
]]
local user, order = KEYS[1], ARGV[1]
local units, limit = tonumber(ARGV[2]), tonumber(ARGV[3])

local prior = redis.call('HGET', user, 'h:' .. order)
if prior then return {2, tonumber(prior)} end
if redis.call('HEXISTS', user, 'r:' .. order) == 1 then return {-4, 0} end

local used = tonumber(redis.call('HGET', user, 'total') or '0')
if used + units > limit then
  return {-1, math.max(0, limit - used)}
end
redis.call('HINCRBY', user, 'total', units)
redis.call('HSET', user, 'h:' .. order, units)
return {1, units}
