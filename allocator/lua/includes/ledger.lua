-- Appends one durable change record to the shard's ledger stream, in the same atomic script as the
-- change itself, so a change and its record can never be separated. The ledger writer applies each
-- record to MySQL exactly once, keyed by `id`. Fields: id, kind, sku, qty, from, to, then any extras.
local function ledger(stream, id, kind, sku, qty, from, to, extra)
  local fields = {'id', id, 'kind', kind, 'sku', sku, 'qty', tostring(qty), 'from', from, 'to', to}
  if extra then
    for i = 1, #extra do fields[#fields + 1] = extra[i] end
  end
  return redis.call('XADD', stream, '*', unpack(fields))
end
