--[[
  Adds pieces to the plan of a reservation still being made (an item falls back to other
  partitions). The plan must list a partition before anything is taken from it: it is what the
  recovery worker gives back if the process dies.

  KEYS[1] order hash

  ARGV[1] JSON array of pieces to add: [[sku, partition, shard, epoch, units], ...]
  ARGV[2] the attempt adding them (order-begin's answer)

  Returns {1}         added
          {-1, state} this attempt is no longer PENDING (rolled back underneath, maybe replaced by
                      a retry's attempt): take nothing more
]]
local order = KEYS[1]
local h = redis.call('HMGET', order, 'state', 'att')
local state = h[1]
if state ~= 'PENDING' or (h[2] or '1') ~= ARGV[2] then
  return {-1, state or ''}
end
local plan = cjson.decode(redis.call('HGET', order, 'plan'))
for _, piece in ipairs(cjson.decode(ARGV[1])) do
  plan[#plan + 1] = piece
end
redis.call('HSET', order, 'plan', cjson.encode(plan))
return {1}
