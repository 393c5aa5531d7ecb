-- Appends one event for other systems to the shard's outbox stream, in the same atomic script as
-- the change it reports, so the change and its event can never be separated; mq/events.ts
-- publishes it to RabbitMQ and deletes it once the broker has confirmed it. One stream field, `e`:
-- a JSON object {id, type, sku, at (ms, Redis clock), data} (kernel/events.ts reads it). The
-- stream is trimmed at about OUTBOX_MAX entries, the end of the key when no publisher drains it
-- (Redis memory stays bounded; the oldest events are lost only after that many have waited).
local OUTBOX_MAX = 100000
local function outbox(stream, id, kind, sku, at, data)
  return redis.call('XADD', stream, 'MAXLEN', '~', OUTBOX_MAX, '*', 'e',
    cjson.encode({id = id, type = kind, sku = sku, at = at, data = data}))
end
