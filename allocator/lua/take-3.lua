--[[
  Takes up to `wanted` units of one partition for one order: the atomic gate that makes overselling
  impossible. Runs the checks of includes/take.lua (earlier run, release tombstone, state, epoch,
  stock) before writing anything, then decrements `avail`, records the take and appends the ledger
  record. A partition that reaches zero stays live: the caller retires it (partition-retire) once
  its Reserve has settled, so that a cart that gives its units back before answering returns them
  here, not to base.

  KEYS[1] partition hash  {avail, epoch, state, seq, sku, pid}
  KEYS[2] takes hash      t:<taker> = units taken, r:<taker> = units released (per attempt)
  KEYS[3] ledger stream of the shard

  ARGV[1] order id
  ARGV[2] wanted units (> 0)
  ARGV[3] minimum units to accept (1 allows a partial take; = wanted for all or nothing)
  ARGV[4] expected epoch
  ARGV[5] sku id
  ARGV[6] partition id
  ARGV[7] taker: the attempt's name in the takes hash (includes/take.lua); the order id when absent

  Returns {code, units, avail_after}
     1  TAKEN          units taken now
     2  ALREADY_TAKEN  a previous run took `units`; nothing changed
    -1  SHORT          fewer than the minimum available; units = 0, avail_after = avail
    -2  NOT_LIVE       partition retired (exhausted), drained or unknown
    -3  STALE_EPOCH    the partition was re-owned; avail_after = its epoch
    -4  CLOSED         this attempt was already released here (rolled back); never take after that
]]
-- @include take
local part, takes, stream = KEYS[1], KEYS[2], KEYS[3]
local order = ARGV[1]
local taker = ARGV[7] or order

local checked = check_take(part, takes, taker, tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
if checked[1] ~= 0 then
  return checked
end
return {1, checked[2], apply_take(part, takes, stream, order, taker, checked, ARGV[4], ARGV[5], ARGV[6], now_ms())}
