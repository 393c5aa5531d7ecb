--[[
  A paid order's units left the building (a warehouse SHIPMENT message): they leave `committed` and
  on_hand. Decided at the order, atomically: only a CONFIRMED order ships, never more of a SKU than it
  still has committed (reserved, less released, less shipped before), and each message once (its id
  is kept in the doc). Released units can no longer be shipped, and shipped ones no longer be
  released (order-release caps at qty - rel - shipped): a refund of goods that left is a RETURN.
  The ledger record goes to the order shard's stream in the same script.

  KEYS[1] order hash
  KEYS[2] ledger stream of the order's shard
  KEYS[3] forget zset   order id -> ms its retention ends (a shipment moves it on)

  ARGV[1] order id
  ARGV[2] message id (idempotency key of this shipment)
  ARGV[3] sku id
  ARGV[4] units to ship (> 0)
  ARGV[5] seconds to keep the record after this change

  Returns {1, units}    shipped now (capped at what is committed)
          {2, units}    this message shipped before: its units
          {-1, state}   the order is not CONFIRMED (or does not exist: state '')
          {-2}          the SKU is not part of the order
          {-3}          nothing of the SKU is committed any more (all released or shipped)
          {-4}          RETENTION_ENDED: the order's retention is over, it changes no more
]]
-- @include now
-- @include ledger
-- @include retention
local order, stream = KEYS[1], KEYS[2]
local id, msg, sku = ARGV[1], ARGV[2], ARGV[3]

local h = redis.call('HMGET', order, 'state', 'doc', 'forget')
if h[1] ~= 'CONFIRMED' then return {-1, h[1] or ''} end
local doc = cjson.decode(h[2])
doc.ships = doc.ships or {}
if doc.ships[msg] then return {2, doc.ships[msg]} end
local now = now_ms()
if sealed(h[3], now) then return {-4} end

local item = nil
for _, it in ipairs(doc.items) do
  if it.sku == sku then item = it end
end
if not item then return {-2} end
local committed = item.qty - item.rel - (item.shipped or 0)
local units = math.min(tonumber(ARGV[4]), committed)
if units <= 0 then return {-3} end

item.shipped = (item.shipped or 0) + units
doc.ships[msg] = units
redis.call('HSET', order, 'doc', cjson.encode(doc))
keep_until(order, KEYS[3], id, now, ARGV[5])
ledger(stream, 'ship:' .. msg, 'ship', sku, units, 'committed', 'outside', {'order', id, 'at', int(now)})
return {1, units}
