--[[
  Retires a partition that is empty: state live -> exhausted, only if `avail` is still 0 and the
  epoch is the one the caller saw. After this, releases for the partition go to base and takes are
  refused; the caller then removes it from the registry. A partition that got units back in the
  meantime (a cancelled cart) keeps selling. Retiring now appends the `partition.exhausted` event
  to the shard's outbox, id `partition.exhausted:<partition id>` (once: a second call finds the
  partition no longer live).

  KEYS[1] partition hash
  KEYS[2] outbox stream of the partition's shard

  ARGV[1] expected epoch

  Returns  1  retired now
           2  not live already (retired or drained before): deregister it too
          -1  not empty, re-owned under another epoch, or suspect (its node lost writes: it sells
              again once restored from MySQL, partition-restore): leave it alone
]]
-- @include now
-- @include outbox
local part, events = KEYS[1], KEYS[2]
local p = redis.call('HMGET', part, 'avail', 'epoch', 'state', 'sku', 'pid', 'cap')
if p[3] == 'suspect' then return -1 end
if p[3] ~= 'live' then return 2 end
if p[2] ~= ARGV[1] or tonumber(p[1]) > 0 then return -1 end
redis.call('HSET', part, 'state', 'exhausted')
outbox(events, 'partition.exhausted:' .. p[5], 'partition.exhausted', p[4], now_ms(),
  {partitionId = p[5], capacity = tonumber(p[6]), epoch = tonumber(p[2])})
return 1
