--[[
  Ends a forgotten order's part of a buyer's allowance of a SKU (allocator/forgetter.ts): the units
  it still counts (held less released) leave `total`, and its fields go. The per-user limit thus
  counts the units a buyer holds or bought in orders that are open or ended less than
  ORDER_RETENTION ago. The hash goes once nothing is left in it. Safe to repeat: a second run finds
  the fields gone and subtracts nothing.

  KEYS[1] user hash   total, h:<taker>, r:<taker>, x:<taker>:<release id>

  ARGV[1] number of takers n   ARGV[2..n+1] the order's takers   ARGV[n+2..] its release ids

  Returns the units that left `total`
]]
local user = KEYS[1]
local n = tonumber(ARGV[1])
local freed = 0
for i = 2, n + 1 do
  local taker = ARGV[i]
  local counted = redis.call('HMGET', user, 'h:' .. taker, 'r:' .. taker)
  freed = freed + tonumber(counted[1] or '0') - tonumber(counted[2] or '0')
  redis.call('HDEL', user, 'h:' .. taker, 'r:' .. taker)
  for j = n + 2, #ARGV do redis.call('HDEL', user, 'x:' .. taker .. ':' .. ARGV[j]) end
end
if freed > 0 then redis.call('HINCRBY', user, 'total', -freed) end
if redis.call('HLEN', user) == 1 and tonumber(redis.call('HGET', user, 'total') or '1') <= 0 then
  redis.call('DEL', user)
end
return freed
