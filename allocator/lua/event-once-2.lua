--[[
  Adds an event to the outbox unless an event of the same id was added lately: the derived events
  (stock.low, sku.sold_out), which servers decide from what they read, so that several servers
  seeing the same moment add one. The marker and the event are written together, so a process
  that dies in between cannot leave a marker without its event.

  KEYS[1] marker of the event id (string, expires)
  KEYS[2] outbox stream of the SKU's shard

  ARGV[1] event id
  ARGV[2] event type
  ARGV[3] sku
  ARGV[4] data JSON (an object)
  ARGV[5] seconds the marker lives: an event of the same id after that is added again (a duplicate
          of the same id, which consumers drop)

  Returns 1  added now
          0  added before (the marker is there)
]]
-- @include now
-- @include outbox
local mark, events = KEYS[1], KEYS[2]
if redis.call('SET', mark, '1', 'NX', 'EX', tonumber(ARGV[5])) == false then return 0 end
outbox(events, ARGV[1], ARGV[2], ARGV[3], now_ms(), cjson.decode(ARGV[4]))
return 1
