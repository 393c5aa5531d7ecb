--[[
  Opens a reservation: the idempotency gate of Reserve. A new order is recorded as PENDING with its
  plan (the partitions it is about to take from), so that if this attempt dies or gives up half way
  what it took can be given back. An order that exists is returned whole, with whether the replay
  asks for the same thing.

  One existing order is opened again instead: an attempt that was rolled back (state REJECTED,
  answer RECOVERED: by itself when it failed or ran out of time, by a retry once its give-up time
  passed, or by the recovery worker), retried with the same request, once that rollback has been
  applied everywhere (its entry is gone from `releasing`, so its tombstones are down and refuse the
  dead attempt's late scripts). The retry is the next attempt: its own name in the takes and user
  hashes (includes/take.lua), so those tombstones do not refuse it.

  KEYS[1] order hash      state, fp, doc, plan, ttl, created, expires, confirmed, ended, answer, att, until,
                          forget (includes/retention.lua), past (the partitions earlier attempts planned:
                          [[sku, partition, shard], ...], whose take records the forgetter clears too)
  KEYS[2] pending zset    order id -> created ms (orders whose Reserve has not answered yet)
  KEYS[3] releasing zset  "<order>\n<release id>" -> ms (releases recorded, not yet applied)
  KEYS[4] forgotten-id filter of the shard, current generation  (includes/filter.lua)
  KEYS[5] forgotten-id filter of the shard, previous generation

  ARGV[1] order id
  ARGV[2] fingerprint of the request (items, user, ttl)
  ARGV[3] plan JSON: [[sku, partition, shard, epoch, units], ...]
  ARGV[4] doc JSON: {items:[{sku, qty, rel, pieces}], user, limits:{sku:limit}, releases:{}}
  ARGV[5] ttl seconds of the hold
  ARGV[6] ms this attempt may work (its give-up time less now): `until` = now + this
  ARGV[7..9] the filter check: h1, h2, m (h1 '' to skip it: the archive was asked already)

  Returns {1, created_ms, attempt}            NEW (attempt 1, or the one after a rolled-back one)
          {2, same_request (1|0), HGETALL...}  EXISTS
          {5}                                  MAYBE_FORGOTTEN: nothing written; ask the archive
]]
-- @include gate
local order, pending, releasing = KEYS[1], KEYS[2], KEYS[3]
local id, fp = ARGV[1], ARGV[2]

local att = 1
local past = nil
local h = redis.call('HMGET', order, 'state', 'answer', 'fp', 'att', 'plan', 'past')
if h[1] == 'REJECTED' and h[2] == 'RECOVERED' and h[3] == fp
    and not redis.call('ZSCORE', releasing, id .. '\n#recovery') then
  att = tonumber(h[4] or '1') + 1
  past = h[6] and cjson.decode(h[6]) or {}
  for _, piece in ipairs(cjson.decode(h[5] or '[]')) do past[#past + 1] = {piece[1], piece[2], piece[3]} end
  redis.call('DEL', order)
end

-- A retry after a rolled-back attempt is this order's own: no filter to ask.
local answered = gate_new_order(order, fp, KEYS[4], KEYS[5], att == 1 and ARGV[7] or '', ARGV[8], ARGV[9])
if answered then return answered end
local created = open_order(order, pending, id, fp, ARGV[3], ARGV[4], ARGV[5], att, tonumber(ARGV[6]))
if past then redis.call('HSET', order, 'past', cjson.encode(past)) end
return {1, created, att}
