-- @include now
-- The idempotency gate of Reserve, shared by order-begin and order-reserve.

-- An order that exists answers the replay: {2, same_request (1|0), HGETALL...}; nil when new.
local function existing_order(order, fp)
  if redis.call('EXISTS', order) == 0 then
    return nil
  end
  local same = redis.call('HGET', order, 'fp') == fp and 1 or 0
  return {2, same, unpack(redis.call('HGETALL', order))}
end

-- Records a new attempt of an order as PENDING with its plan (what is given back should it die or
-- give up half way), its number `att` and its give-up time `until` (Redis clock, ms: it sends no
-- script after it, so a retry may roll it back from then on), and indexes it for recovery.
-- Returns its creation time on the Redis clock.
local function open_order(order, pending, id, fp, plan, doc, ttl, att, budget)
  local created = now_ms()
  redis.call('HSET', order, 'state', 'PENDING', 'fp', fp, 'plan', plan, 'doc', doc, 'ttl', ttl, 'created', created,
    'att', att, 'until', created + budget)
  redis.call('ZADD', pending, created, id)
  return created
end
