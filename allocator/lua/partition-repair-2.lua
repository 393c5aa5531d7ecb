--[[
  Reconcile's repair of one partition whose units differ from MySQL's ledger. Both sides change by
  the same amount with every take, release and withdrawal, so the difference found at a cut stays
  the same while Reserves and Releases go on: a repair is right later as long as no other repair
  ran in between. That is its condition: the repair generation (`fix`) read in the cut. A second
  reconciler that found the same difference finds `fix` moved and does nothing.

  'missing': Redis has fewer units than MySQL's pool share of the partition (lost in a failover, or
  removed behind the service's back). Redis is left as it is; a ledger record moves the difference
  from pool to base in MySQL (sellable again after a top-up), numbered as the partition's next
  change. A partition whose hash is gone is recreated as `drained`, which is what it now is: its
  units went back to base, nothing sells from it, and releases of what it sold go to base.
  'excess': Redis has more units than MySQL knows of. They are taken off sale in Redis (never sold
  twice); MySQL, which never counted them, is left alone.

  KEYS[1] partition hash
  KEYS[2] ledger stream of the shard

  ARGV[1] repair generation read in the cut (0 when the partition has none yet)
  ARGV[2] mode: 'missing' or 'excess'
  ARGV[3] units
  ARGV[4] event id of the ledger record ('missing')
  ARGV[5] sku id
  ARGV[6] partition id
  ARGV[7] reason (for the ledger)
  ARGV[8] seq of the record when the hash is gone: one past the highest MySQL holds

  Returns {1, units, seq}   repaired: units moved (excess: units taken off sale, at most avail)
          {-1, fix}         another repair ran since the cut: nothing done
]]
-- @include now
-- @include ledger
local part, stream = KEYS[1], KEYS[2]
local mode, units = ARGV[2], tonumber(ARGV[3])

local p = redis.call('HMGET', part, 'state', 'avail', 'epoch', 'seq', 'fix')
local fix = tonumber(p[5] or '0')
if fix ~= tonumber(ARGV[1]) then
  return {-1, fix}
end
redis.call('HSET', part, 'fix', fix + 1)

if mode == 'excess' then
  local off = math.min(units, tonumber(p[2] or '0'))
  if off > 0 then redis.call('HINCRBY', part, 'avail', -off) end
  return {1, off, tonumber(p[4] or '0')}
end

local seq
if p[1] then
  seq = redis.call('HINCRBY', part, 'seq', 1)
else
  seq = tonumber(ARGV[8])
  redis.call('HSET', part, 'state', 'drained', 'avail', 0, 'seq', seq, 'sku', ARGV[5], 'pid', ARGV[6])
end
ledger(stream, ARGV[4], 'reconcile', ARGV[5], units, 'pool', 'base',
  {'partition', ARGV[6], 'epoch', p[3] or '0', 'seq', int(seq), 'reason', ARGV[7], 'at', int(now_ms())})
return {1, units, seq}
