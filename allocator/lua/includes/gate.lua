-- @include order
-- @include filter
-- The gate of a Reserve's first script (order-begin, order-reserve, order-reject): the order that
-- exists is answered ({2, ...}, as existing_order); an id Redis does not know but the filter of
-- forgotten ids may have seen is answered {5} (MAYBE_FORGOTTEN: nothing written, ask the archive);
-- nil when a new order may be opened. `h1` '' skips the filter (includes/filter.lua).
local function gate_new_order(order, fp, current, previous, h1, h2, m)
  local existing = existing_order(order, fp)
  if existing then return existing end
  if maybe_forgotten(current, previous, h1, h2, m) then return {5} end
  return nil
end
