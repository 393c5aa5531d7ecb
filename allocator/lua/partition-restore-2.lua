--[[
  Gives a suspect partition (partition-suspend) back what MySQL's ledger knows of it as of its
  change number `seq`: avail (the partition's pool there), held, and the takes, releases and
  release guards of the orders whose changes Redis forgot, then lets it sell again (the state it
  had before, `live` for one whose hash was gone). Conditional on the partition still being
  suspect at the number the caller summed MySQL up to: a release applied meanwhile, or another
  server's restore, makes this a no-op that says so, and the caller reads again.

  KEYS[1] partition hash
  KEYS[2] takes hash  t:<order>, r:<order>, x:<order>:<release id>

  ARGV[1] seq MySQL's sums are as of
  ARGV[2] avail     ARGV[3] held
  ARGV[4] takes fields as JSON {field: value}

  Returns  1  restored: selling again
          -1  not suspect, or changed since: read it again
]]
local part, takes = KEYS[1], KEYS[2]
local p = redis.call('HMGET', part, 'seq', 'state', 'before')
if p[2] ~= 'suspect' or tonumber(p[1] or '0') ~= tonumber(ARGV[1]) then return -1 end
for field, value in pairs(cjson.decode(ARGV[4])) do
  redis.call('HSET', takes, field, value)
end
redis.call('HSET', part, 'avail', ARGV[2], 'held', ARGV[3], 'state', p[3] or 'live')
redis.call('HDEL', part, 'before')
return 1
