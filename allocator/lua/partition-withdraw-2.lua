--[[
  Takes free units out of a partition back to base: all of them when draining (the partition is
  then DRAINED for good: takes refused, later releases go to base), or up to `units` when shrinking
  a live partition. A loss shrinks a partition to `outside` instead: the units are gone from the
  building, and never pass through base, where a top-up could carve them again. Atomic against takes: every unit is either sold or withdrawn, never both. The
  ledger record goes to the shard's stream in the same script; the admin operation also applies it
  to MySQL directly under the same event id, so whichever lands first counts and the other is a
  no-op. Idempotent per event id: a second run reports the first.

  KEYS[1] partition hash
  KEYS[2] ledger stream of the shard

  ARGV[1] mode: 'drain' or 'shrink'
  ARGV[2] units to withdraw when shrinking (ignored when draining)
  ARGV[3] event id (unique per operation and partition)
  ARGV[4] sku id
  ARGV[5] partition id
  ARGV[6] reason (for the ledger)
  ARGV[7] where the units go: 'base' (default) or 'outside' (a loss)

  Returns {1, units, state, seq}   withdrawn now; seq numbers its ledger record (0 when no units)
          {2, units, state, seq}   this event id ran before: its units and seq
          {-2, 0, state, 0}        not live (exhausted, drained or unknown): nothing to withdraw
]]
-- @include now
-- @include ledger
local part, stream = KEYS[1], KEYS[2]
local mode, event = ARGV[1], ARGV[3]

local prior = redis.call('HGET', part, 'w:' .. event)
if prior then
  -- "units:seq"; a bare "units" was written before the seq was kept.
  local units, seq = string.match(prior, '^(%d+):?(%d*)$')
  return {2, tonumber(units), redis.call('HGET', part, 'state') or '', tonumber(seq) or 0}
end
local p = redis.call('HMGET', part, 'avail', 'state', 'epoch')
if p[2] ~= 'live' then
  return {-2, 0, p[2] or '', 0}
end
local avail = tonumber(p[1])
local units = avail
if mode == 'shrink' then units = math.max(0, math.min(avail, tonumber(ARGV[2]))) end

if mode == 'drain' then redis.call('HSET', part, 'state', 'drained') end
local seq = 0
if units > 0 then
  -- Only when there is something to take: Lua passes -0 as "-0", which HINCRBY refuses.
  redis.call('HINCRBY', part, 'avail', -units)
  seq = redis.call('HINCRBY', part, 'seq', 1)
  local gone = ARGV[7] == 'outside'
  ledger(stream, event, gone and 'loss' or mode, ARGV[4], units, 'pool', gone and 'outside' or 'base',
    {'partition', ARGV[5], 'epoch', p[3], 'seq', int(seq), 'reason', ARGV[6], 'at', int(now_ms())})
end
redis.call('HSET', part, 'w:' .. event, int(units) .. ':' .. int(seq))
return {1, units, redis.call('HGET', part, 'state'), seq}
