--[[
  Retires a partition that is empty: state live -> exhausted, only if `avail` is still 0 and the
  epoch is the one the caller saw. After this, releases for the partition go to base and takes are
  refused; the caller then removes it from the registry. A partition that got units back in the
  meantime (a cancelled cart) keeps selling.

  KEYS[1] partition hash

  ARGV[1] expected epoch

  Returns  1  retired now
           2  not live already (retired or drained before): deregister it too
          -1  not empty, or re-owned under another epoch: leave it alone
]]
local part = KEYS[1]
local p = redis.call('HMGET', part, 'avail', 'epoch', 'state')
if p[3] ~= 'live' then return 2 end
if p[2] ~= ARGV[1] or tonumber(p[1]) > 0 then return -1 end
redis.call('HSET', part, 'state', 'exhausted')
return 1
