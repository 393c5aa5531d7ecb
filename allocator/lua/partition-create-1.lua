--[[
  Creates a live partition with `avail` units and its fencing epoch; `seq` numbers its changes
  (each with a ledger record) and `held` counts the units orders hold from it. Idempotent: a
  partition that exists is left as it is and reported, so a retried pre-allocation never doubles
  stock.

  KEYS[1] partition hash

  ARGV[1] sku id
  ARGV[2] partition id
  ARGV[3] units
  ARGV[4] epoch

  Returns {1, units}               created
          {2, avail, epoch, state} existed already
]]
local part = KEYS[1]
local existing = redis.call('HMGET', part, 'avail', 'epoch', 'state')
if existing[3] then
  return {2, tonumber(existing[1]), tonumber(existing[2]), existing[3]}
end
redis.call('HSET', part, 'sku', ARGV[1], 'pid', ARGV[2], 'avail', ARGV[3], 'cap', ARGV[3], 'epoch', ARGV[4],
  'state', 'live', 'seq', 0, 'held', 0)
return {1, tonumber(ARGV[3])}
