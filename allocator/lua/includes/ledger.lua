-- @include int
-- Appends one durable change record to the shard's ledger stream, in the same atomic script as the
-- change itself, so a change and its record can never be separated. The ledger writer applies each
-- record to MySQL exactly once, keyed by `id`. The record is one stream field, `m`, holding a JSON
-- object of strings: id, kind, sku, qty, from, to, then the extras (name, value, ...). One field
-- instead of one per name: Redis writes, replicates and serves it, and the writer parses it, at a
-- fraction of the cost (store/ledger-record.ts reads both forms).
local function ledger(stream, id, kind, sku, qty, from, to, extra)
  local record = {id = id, kind = kind, sku = sku, qty = type(qty) == 'number' and int(qty) or qty, from = from, to = to}
  if extra then
    for i = 1, #extra, 2 do record[extra[i]] = extra[i + 1] end
  end
  return redis.call('XADD', stream, '*', 'm', cjson.encode(record))
end
