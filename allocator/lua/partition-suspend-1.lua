--[[
  Stops a partition whose Redis node came back having forgotten changes that MySQL's ledger
  already holds (docs/consistency.md, "A Redis node that lost writes"): state -> suspect, which
  every take refuses (only `live` sells) and the retire leaves alone (it stays registered, to sell
  again once restored). Its change number jumps to MySQL's highest, so a release applied while it
  is suspect (to base: it is not live) is numbered after every change MySQL holds and never
  reuses a number. Records the incident (`lostat`: Redis's number when found, `lostto`: MySQL's)
  for Reconcile. A partition whose hash is gone is created suspect, with what MySQL knows of it.
  Conditional on the number read by the check: a partition that changed since, or that another
  server suspended first, is left alone.

  KEYS[1] partition hash

  ARGV[1] seq the check read (0 when the hash was gone)
  ARGV[2] MySQL's highest seq of the partition
  ARGV[3] sku id       ARGV[4] partition id
  ARGV[5] capacity     ARGV[6] epoch      (for a hash that is gone)

  Returns  1  suspended now
          -1  changed since it was read, or suspended already: read it again
]]
local part = KEYS[1]
local p = redis.call('HMGET', part, 'seq', 'state')
if tonumber(p[1] or '0') ~= tonumber(ARGV[1]) or p[2] == 'suspect' then return -1 end
if not p[2] then
  redis.call('HSET', part, 'sku', ARGV[3], 'pid', ARGV[4], 'cap', ARGV[5], 'epoch', ARGV[6], 'avail', 0, 'held', 0)
end
redis.call('HSET', part, 'state', 'suspect', 'before', p[2] or 'live', 'seq', ARGV[2], 'lostat', ARGV[1], 'lostto', ARGV[2])
return 1
