-- An integer as its decimal string. Lua 5.1 turns a number into a string with "%.14g", a float
-- format that costs about three times as much as "%d" (measured inside Redis); the scripts hold
-- only integers (counts, milliseconds), all well under 2^53. Used for every number a hot script
-- writes.
local function int(n)
  return string.format('%d', n)
end
