--[[
  Clears one forgotten order's records from one partition's takes hash (allocator/forgetter.ts):
  t:, r: and x: fields of each of its attempts. The order's retention is over and its attempts
  sent their last scripts long before (retention > RESERVE_TIMEOUT_MS), so nothing reads them
  again. A partition that no longer sells (exhausted or drained) whose takes are all cleared goes
  too: no order that took from it can still return units to it (its `held` counts units of
  confirmed orders, which stay sold; a release that comes after all goes to base through the
  ledger: untake on a missing partition).
  Safe to repeat.

  KEYS[1] partition hash
  KEYS[2] takes hash

  ARGV[1..n] fields to delete

  Returns 1 cleared; 2 cleared, and the retired partition's hash deleted
]]
local part, takes = KEYS[1], KEYS[2]
redis.call('HDEL', takes, unpack(ARGV))
if redis.call('EXISTS', takes) == 1 then return 1 end
local state = redis.call('HGET', part, 'state')
if state == 'exhausted' or state == 'drained' then
  redis.call('DEL', part)
  return 2
end
return 1
