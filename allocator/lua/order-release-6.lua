--[[
  Decides, atomically at the order, what a release gives back, and records it before anything moves:
  the per-item cap (never more than reserved), the rules of each reason against the order's state
  (so a confirm and a cancel racing on one order have exactly one winner), and which partition
  pieces the units come from. The caller then returns those pieces to their partitions (untake,
  idempotent per release id) and removes the release from the `releasing` index; the recovery
  worker re-drives any release left in that index by a process that died.

  The sweepers read their indexes oldest first, a page at a time, so an entry that can never be acted
  on would sit at the head for good: a RECOVERY removes the order from `pending` (in the same script
  as the rollback, or at once when the order is not PENDING or is gone), and an EXPIRE removes it
  from `expiry` when the order is gone or no longer RESERVED. An order that is only not due yet
  (NOT_DUE) keeps its entry.

  An EXPIRE that ends the order (state EXPIRED) appends the `hold.expired` event to the shard's
  outbox, id `hold.expired:<order id>`, in this script: once, since a replay of the release id
  returns before it (docs/events.md).

  KEYS[1] order hash
  KEYS[2] expiry zset
  KEYS[3] releasing zset  "<order>\n<release id>" -> recorded ms
  KEYS[4] pending zset    order id -> created ms (Reserves not answered yet)
  KEYS[5] outbox stream   events for other systems (hold.expired)
  KEYS[6] forget zset      order id -> ms its retention ends (includes/retention.lua): set when the
                           order ends, and moved on by every change of a CONFIRMED one

  ARGV[1] order id
  ARGV[2] release id
  ARGV[3] reason: CANCEL_BEFORE_PAYMENT | CANCEL_AFTER_PAYMENT | REFUND | RISK_CONTROL | TIMEOUT
          | EXPIRE (the expiry sweeper) | RECOVERY (the recovery worker, on a PENDING order)
  ARGV[4] items JSON {sku: units} to release, or '' for everything still held
  ARGV[5] seconds to keep an ended order for replays
  ARGV[6] recovery grace ms: RECOVERY by the recovery worker only touches an order PENDING for at
          least this long
  ARGV[7] RECOVERY only, who rolls back: '' the recovery worker (the grace above); 'lapsed' a
          retry of the order, once the attempt's give-up time (`until`) has passed on the Redis
          clock (an attempt never sends a script after it); '<n>' attempt n giving itself up
          (it failed or ran out of time): at once, if it is still the order's attempt

  Returns {1, release JSON, state}  recorded now; release = {reason, from, at, pieces:[[sku, partition,
                                    shard, epoch, units], ...], items:{sku: units}, t: taker}
                                    (t, the attempt's name in the takes and user hashes, only
                                    when it is not the order id: includes/take.lua)
          {2, release JSON, state}  this release id was recorded before (replay)
          {-1}  NOT_FOUND         {-2} ALREADY_RELEASED   {-3} ALREADY_EXPIRED
          {-4}  IN_PROGRESS       {-5} REJECTED           {-6} ALREADY_CONFIRMED (reason needs unpaid)
          {-7}  NOT_CONFIRMED (reason needs paid)          {-8, sku} UNKNOWN_ITEM
          {-9}  NOT_DUE (EXPIRE before the expiry, RECOVERY within the grace period or before the
                attempt's give-up time): the entry stays
          {-10} NOT_PENDING (RECOVERY on an order that is no longer PENDING, or, '<n>', no longer
                attempt n)
          {-11} RETENTION_ENDED (the order's retention is over: it changes no more)
          Every answer but NOT_DUE leaves no entry of a RECOVERY in `pending` nor of an EXPIRE in `expiry`.
]]
-- @include now
-- @include outbox
-- @include retention
local order, expiry, releasing, pending, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, relid, reason = ARGV[1], ARGV[2], ARGV[3]

local h = redis.call('HMGET', order, 'state', 'doc', 'plan', 'expires', 'created', 'att', 'until', 'forget')
local state = h[1]
-- Stale entries (the order is gone, or past what the index waits for) go whatever the answer below.
if reason == 'RECOVERY' and state ~= 'PENDING' then
  redis.call('ZREM', pending, id)
elseif reason == 'EXPIRE' and state ~= 'RESERVED' then
  redis.call('ZREM', expiry, id)
end
if not state then return {-1} end
-- A rejected order held nothing and released nothing (order-reject keeps no doc).
if state == 'REJECTED' then return {-5} end
local doc = cjson.decode(h[2])
if doc.releases[relid] then
  return {2, cjson.encode(doc.releases[relid]), state}
end

local now = now_ms()
if sealed(h[8], now) then return {-11} end
local att = h[6] or '1'
if reason == 'RECOVERY' then
  if state ~= 'PENDING' then return {-10} end
  local by = ARGV[7] or ''
  if by == 'lapsed' and h[7] then
    if now < tonumber(h[7]) then return {-9} end
  elseif by ~= '' and by ~= 'lapsed' then
    if by ~= att then return {-10} end
  elseif now - tonumber(h[5]) < tonumber(ARGV[6]) then return {-9} end
elseif state == 'PENDING' then return {-4}
elseif state == 'RELEASED' then return {-2}
elseif state == 'EXPIRED' then return {-3}
elseif state == 'REJECTED' then return {-5}
elseif reason == 'EXPIRE' then
  if state ~= 'RESERVED' then return {-6} end
  if now < tonumber(h[4]) then return {-9} end
elseif reason == 'CANCEL_BEFORE_PAYMENT' or reason == 'TIMEOUT' then
  if state == 'CONFIRMED' then return {-6} end
elseif reason == 'CANCEL_AFTER_PAYMENT' or reason == 'REFUND' then
  if state == 'RESERVED' then return {-7} end
end

local release = {reason = reason, from = (state == 'CONFIRMED') and 'committed' or 'reserved', at = now,
  pieces = {}, items = {}}
if att ~= '1' then release.t = id .. '#' .. att end
local next_state = state

if reason == 'RECOVERY' then
  -- Give back every planned piece; untake caps each at what was really taken.
  for _, piece in ipairs(cjson.decode(h[3])) do
    release.pieces[#release.pieces + 1] = piece
    release.items[piece[1]] = (release.items[piece[1]] or 0) + piece[5]
  end
  next_state = 'REJECTED'
else
  local wanted = nil
  if ARGV[4] ~= '' then
    wanted = cjson.decode(ARGV[4])
    local known = {}
    for _, item in ipairs(doc.items) do known[item.sku] = true end
    for sku in pairs(wanted) do
      if not known[sku] then return {-8, sku} end
    end
  end
  local open_left = 0
  for _, item in ipairs(doc.items) do
    -- Shipped units left the building: a refund of those is a RETURN, not a release.
    local open = item.qty - item.rel - (item.shipped or 0)
    local units = open
    if wanted then units = math.min(wanted[item.sku] or 0, open) end
    if units > 0 then
      item.rel = item.rel + units
      release.items[item.sku] = units
      for _, piece in ipairs(item.pieces) do
        local k = math.min(units, piece.q - piece.r)
        if k > 0 then
          piece.r = piece.r + k
          units = units - k
          release.pieces[#release.pieces + 1] = {item.sku, piece.p, piece.s, piece.e, k}
        end
      end
    end
    open_left = open_left + item.qty - item.rel - (item.shipped or 0)
  end
  -- Ended once nothing is held; a release that found everything shipped already ends nothing.
  if open_left == 0 and next(release.items) ~= nil then
    next_state = (reason == 'EXPIRE') and 'EXPIRED' or 'RELEASED'
  end
end

doc.releases[relid] = release
redis.call('HSET', order, 'doc', cjson.encode(doc), 'state', next_state)
if next_state ~= state then
  redis.call('HSET', order, 'ended', now, 'expires', 0)
  redis.call('ZREM', expiry, id)
  if reason == 'RECOVERY' then
    redis.call('HSET', order, 'answer', 'RECOVERED')
    redis.call('ZREM', pending, id)
  elseif next_state == 'EXPIRED' then
    -- sku: the order's one SKU; an order of several has none (data.items names them all).
    local sku = nil
    if #doc.items == 1 then sku = doc.items[1].sku end
    outbox(events, 'hold.expired:' .. id, 'hold.expired', sku, now,
      {orderId = id, userId = doc.user, items = release.items, expiresAt = tonumber(h[4])})
  end
end
if next_state ~= state or state == 'CONFIRMED' then
  keep_until(order, KEYS[6], id, now, ARGV[5])
end
redis.call('ZADD', releasing, now, id .. '\n' .. relid)
return {1, cjson.encode(release), next_state}
