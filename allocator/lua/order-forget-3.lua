--[[
  The last step of forgetting an order (allocator/forgetter.ts), once it is archived in MySQL and
  its take and allowance records are cleared: its id goes into the shard's filter of forgotten ids
  (includes/filter.lua: a later Reserve of the same id asks the archive instead of starting a new
  life), and its record and index entry are deleted. An order that is no longer the one the
  forgetter read (its `forget` differs: a new attempt reopened it) is left alone. Safe to repeat.

  KEYS[1] order hash
  KEYS[2] forget zset
  KEYS[3] forgotten-id filter of the shard's current generation

  ARGV[1] order id
  ARGV[2] the order's `forget` as order-sealed read it
  ARGV[3] h1   ARGV[4] h2   ARGV[5] m   (includes/filter.lua)
  ARGV[6] seconds the filter is kept once created (two generations)

  Returns 1 forgotten; 0 left alone (reopened)
]]
-- @include filter
local order, forget, filter = KEYS[1], KEYS[2], KEYS[3]
local f = redis.call('HGET', order, 'forget')
if f and f ~= ARGV[2] then return 0 end
local m = tonumber(ARGV[5])
-- Created at its full size in one go: grown bit by bit by SETBIT, Redis's greedy string growth
-- would leave it at about 1.5 times its m / 8 bytes.
if redis.call('EXISTS', filter) == 0 then
  redis.call('SET', filter, string.rep('\0', math.ceil(m / 8)), 'EX', tonumber(ARGV[6]))
end
add_to_filter(filter, tonumber(ARGV[3]), tonumber(ARGV[4]), m)
redis.call('DEL', order)
redis.call('ZREM', forget, ARGV[1])
return 1
