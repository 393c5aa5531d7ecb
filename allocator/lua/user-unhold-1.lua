--[[
  Gives back units of a buyer's allowance held by one order, once per release id, never more than
  the order held. Leaves a tombstone even when nothing was held, so a late hold is refused.

  KEYS[1] user hash   total, h:<order>, r:<order>, x:<order>:<release id>

  ARGV[1] order id
  ARGV[2] units to give back (capped at held - released)
  ARGV[3] release id

  Returns {1, units}  given back now
          {2, units}  this release id already ran
]]
local user, order = KEYS[1], ARGV[1]
local guard = 'x:' .. order .. ':' .. ARGV[3]
local prior = redis.call('HGET', user, guard)
if prior then return {2, tonumber(prior)} end

local held = tonumber(redis.call('HGET', user, 'h:' .. order) or '0')
local released = tonumber(redis.call('HGET', user, 'r:' .. order) or '0')
local units = math.max(0, math.min(tonumber(ARGV[2]), held - released))
redis.call('HSET', user, 'r:' .. order, released + units, guard, units)
if units > 0 then
  redis.call('HINCRBY', user, 'total', -units)
end
return {1, units}
