//! Lua scripts that make multi-step kombu operations single atomic round trips.

/// Pops up to `ARGV[1]` messages in kombu's polling order and records each in the ack-emulation
/// keys in the same step, so a message is never out of both the queue and `unacked`.
///
/// KEYS: `unacked`, `unacked_index`, then the poll keys (step-major, `ARGV[3]` queues per step).
/// ARGV: max count, now (epoch seconds), queues per step.
/// Returns a flat list `[queue_index, message, ...]`. The `unacked` value is
/// `[envelope, exchange, routing_key]` written as Python's `json.dumps` writes it, the envelope
/// kept byte for byte.
pub const FETCH: &str = r#"
local max = tonumber(ARGV[1])
local now = ARGV[2]
local nq = tonumber(ARGV[3])
local out = {}
local got = 0
local nkeys = #KEYS - 2
local base = 0
while base < nkeys and got < max do
  local progress = true
  while progress and got < max do
    progress = false
    for q = 1, nq do
      if got >= max then break end
      local m = redis.call('RPOP', KEYS[2 + base + q])
      if m then
        progress = true
        got = got + 1
        -- kombu's envelope ends with its properties, delivery_tag last: read the last
        -- matches in the tail; decode the whole JSON only if that fails (escapes, odd order).
        local tail = string.sub(m, -1024)
        local tag, ex, rk
        for t in string.gmatch(tail, '"delivery_tag": "([^"\\]*)"') do tag = t end
        for e, r in string.gmatch(tail, '"delivery_info": {"exchange": "([^"\\]*)", "routing_key": "([^"\\]*)"') do ex, rk = e, r end
        if tag and ex then
          ex = '"' .. ex .. '"'
          rk = '"' .. rk .. '"'
        else
          tag = nil
          local ok, env = pcall(cjson.decode, m)
          if ok and type(env) == 'table' and type(env.properties) == 'table'
              and type(env.properties.delivery_tag) == 'string' then
            local di = env.properties.delivery_info
            local e, r = '', ''
            if type(di) == 'table' then
              if type(di.exchange) == 'string' then e = di.exchange end
              if type(di.routing_key) == 'string' then r = di.routing_key end
            end
            tag, ex, rk = env.properties.delivery_tag, cjson.encode(e), cjson.encode(r)
          end
        end
        if tag then
          redis.call('ZADD', KEYS[2], now, tag)
          redis.call('HSET', KEYS[1], tag, '[' .. m .. ', ' .. ex .. ', ' .. rk .. ']')
        end
        out[#out + 1] = q - 1
        out[#out + 1] = m
      end
    end
  end
  base = base + nq
end
return out
"#;

/// Moves one unacked message back onto its queue(s), only if it is still unacked (so two
/// restorers never duplicate it).
///
/// KEYS: `unacked`, `unacked_index`, then the target list keys.
/// ARGV: delivery tag, payload, `1` to push at the back (LPUSH), `0` for the front (RPUSH).
pub const RESTORE: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
for i = 3, #KEYS do
  if ARGV[3] == '1' then
    redis.call('LPUSH', KEYS[i], ARGV[2])
  else
    redis.call('RPUSH', KEYS[i], ARGV[2])
  end
end
return 1
"#;

/// Releases the `unacked_mutex` only if we still hold it.
///
/// KEYS: the mutex key. ARGV: our token.
pub const RELEASE_MUTEX: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;
