-- The filter of forgotten order ids (allocator/forgotten.ts): one Bloom filter per shard and
-- generation, `seen:<generation>`, that the forgetter sets the bits of each order id in when it
-- deletes the order's record. A new order id whose bits are all set in the current or the previous
-- generation may have lived before: the Reserve asks MySQL's archive before writing anything.
-- `h1`, `h2`: two 32-bit hashes of the order id (double hashing), `m`: bits per filter; k is fixed.
local FILTER_K = 7

local function in_filter(key, h1, h2, m)
  for i = 0, FILTER_K - 1 do
    if redis.call('GETBIT', key, (h1 + i * h2) % m) == 0 then return false end
  end
  return true
end

-- ARGV of a new order's filter check: h1, h2, m, or h1 = '' when the caller checked the archive
-- already (this order id is not in it) and the filter is to be skipped.
local function maybe_forgotten(current, previous, h1, h2, m)
  if h1 == '' then return false end
  h1, h2, m = tonumber(h1), tonumber(h2), tonumber(m)
  return in_filter(current, h1, h2, m) or in_filter(previous, h1, h2, m)
end

-- Sets an order id's bits (the forgetter, as it deletes the order's record).
local function add_to_filter(key, h1, h2, m)
  for i = 0, FILTER_K - 1 do
    redis.call('SETBIT', key, (h1 + i * h2) % m, 1)
  end
end
