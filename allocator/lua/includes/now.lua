-- @include int
-- Milliseconds since the epoch on the Redis clock: expiry is measured on Redis's clock, never on
-- a server's, so that servers with skewed clocks agree.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
