--[[
  The forgetter's read of an order whose `forget` index entry is due (allocator/forgetter.ts): the
  whole record when its retention has ended on the Redis clock and no release of it is still being
  applied, so the forgetter can archive it in MySQL and clear its take and allowance records. A
  sealed order changes no more (includes/retention.lua), so what is read here is what is archived.
  Stale entries leave the index: the order is gone, or open again (a retry started a new attempt
  of a rolled-back order: it is indexed again when it ends). An entry ahead of its order's
  `forget` time is moved to it.

  KEYS[1] order hash
  KEYS[2] releasing zset  "<order>\n<release id>" -> ms (releases recorded, not yet applied)
  KEYS[3] forget zset     order id -> ms its retention ends

  ARGV[1] order id

  Returns {1, HGETALL...}   sealed: archive it, clear its records, then order-forget
          {-1}              gone or open: the entry was removed
          {-2, forget_ms}   not due yet on the Redis clock: the entry now says when
          {-3}              a release of it is still being applied: kept
]]
-- @include now
local order, releasing, forget = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]

local h = redis.call('HMGET', order, 'state', 'forget', 'doc')
if not h[1] or not h[2] then
  redis.call('ZREM', forget, id)
  return {-1}
end
local due = tonumber(h[2])
if now_ms() < due then
  redis.call('ZADD', forget, due, id)
  return {-2, due}
end
if redis.call('ZSCORE', releasing, id .. '\n#recovery') then return {-3} end
if h[3] then
  for relid in pairs(cjson.decode(h[3]).releases or {}) do
    if redis.call('ZSCORE', releasing, id .. '\n' .. relid) then return {-3} end
  end
end
return {1, unpack(redis.call('HGETALL', order))}
