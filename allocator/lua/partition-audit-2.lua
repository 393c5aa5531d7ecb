--[[
  Reads one partition at one instant for Reconcile: its state, avail, epoch, the sequence number of
  its last change (`seq`: every change that moves units writes a ledger record carrying it), the
  units orders hold from it and its repair generation (`fix`). Read in one script, these are a cut:
  MySQL's ledger rows of this partition numbered 1..seq describe exactly this state. Writes nothing.

  KEYS[1] partition hash  avail, epoch, state, seq, held, fix
  KEYS[2] takes hash      t:<order> = units taken, r:<order> = units released

  Returns {exists (1|0), state, avail, epoch, seq, held, fix}
    held is read from the partition when it keeps it, summed from its takes hash otherwise (a
    partition created before `held` was kept).
]]
local part, takes = KEYS[1], KEYS[2]
local p = redis.call('HMGET', part, 'state', 'avail', 'epoch', 'seq', 'held', 'fix')
local held = tonumber(p[5])
if not held then
  held = 0
  local fields = redis.call('HGETALL', takes)
  for i = 1, #fields, 2 do
    local kind = string.sub(fields[i], 1, 2)
    if kind == 't:' then
      held = held + tonumber(fields[i + 1])
    elseif kind == 'r:' then
      held = held - tonumber(fields[i + 1])
    end
  end
end
return {p[1] and 1 or 0, p[1] or '', tonumber(p[2] or '0'), tonumber(p[3] or '0'), tonumber(p[4] or '0'), held,
  tonumber(p[6] or '0')}
