--[[
  A Reserve that cannot be filled, answered in one atomic call: the SKU has no live partition and
  nothing in base to carve (a sold-out flash sale, where most calls end up). The idempotency gate
  of order-begin, then the REJECTED record that order-commit would leave (kept for replays), with
  nothing PENDING in between, because nothing is taken. A rejected order keeps what a replay and
  the refusals of Confirm and Release read (state, fp, answer, times), not the doc: it holds nothing.

  KEYS[1] order hash  (as order-begin)
  KEYS[2] forget zset  order id -> ms its retention ends (includes/retention.lua)
  KEYS[3] forgotten-id filter, current generation   (as order-begin)
  KEYS[4] forgotten-id filter, previous generation

  ARGV[1] fingerprint of the request (items, user, ttl)
  ARGV[2] shortages JSON, the answer
  ARGV[3] seconds to keep the record for replays
  ARGV[4] order id
  ARGV[5..7] the filter check (as order-begin)

  Returns {1, now_ms}                          REJECTED now
          {2, same_request (1|0), HGETALL...}  EXISTS (as order-begin)
          {5}                                  MAYBE_FORGOTTEN (as order-begin)
]]
-- @include gate
-- @include retention
local order = KEYS[1]

local answered = gate_new_order(order, ARGV[1], KEYS[3], KEYS[4], ARGV[5], ARGV[6], ARGV[7])
if answered then return answered end
local now = now_ms()
local at = int(now)
redis.call('HSET', order, 'state', 'REJECTED', 'fp', ARGV[1], 'created', at, 'answer', ARGV[2], 'ended', at)
keep_until(order, KEYS[2], ARGV[4], now, ARGV[3])
return {1, now}
