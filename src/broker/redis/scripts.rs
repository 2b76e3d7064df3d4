//! Lua scripts that make multi-step kombu operations single atomic round trips.

/// The fetch script: the settle lane's result writes and acks, then a pop of up to `ARGV[1]`
/// messages in kombu's polling order, each recorded in the ack-emulation keys in the same
/// step, so a message is never out of both the queue and `unacked`.
///
/// KEYS: `unacked`, `unacked_index`, the poll keys (step-major, `ARGV[3]` queues per step),
/// then the result keys to write.
/// ARGV: max count (0: settle only), now (epoch seconds), queues per step, `1` if the server
/// has `RPOP key count` (Redis 6.2+), the number of acks, the number of result writes, the
/// batch's byte budget (no more messages are taken once the batch holds this many bytes;
/// popped ones beyond it go back where they were, so one fetch never brings many huge
/// messages at once; 0: none); when
/// there are writes: their database, the broker's database, expiry, SUCCESS marker and the
/// offset it must start within; then the acked delivery tags, then the result payloads.
/// Returns a flat list `[queue_index, message, ...]`. The `unacked` value is
/// `[envelope, exchange, routing_key]` written as Python's `json.dumps` writes it, the envelope
/// kept byte for byte. Commands are issued per batch, not per message: `redis.call` is what
/// costs inside a script. `SELECT` inside a script only affects the script (Redis 2.8.12+).
pub fn fetch() -> String {
    format!(
        "{}{}",
        crate::redis_client::lane::STORE_RESULTS_LUA,
        FETCH_BODY
    )
}

const FETCH_BODY: &str = r#"
local max = tonumber(ARGV[1])
local now = ARGV[2]
local nq = tonumber(ARGV[3])
local counted = ARGV[4] == '1'
local nacks = tonumber(ARGV[5])
local nw = tonumber(ARGV[6])
local budget = tonumber(ARGV[7])
local a = 8
if nw > 0 then
  local wdb, bdb = ARGV[8], ARGV[9]
  a = 13
  if wdb ~= bdb then redis.call('SELECT', wdb) end
  store_results(#KEYS - nw + 1, nw, tonumber(ARGV[10]), ARGV[11], tonumber(ARGV[12]), a + nacks)
  if wdb ~= bdb then redis.call('SELECT', bdb) end
end
if nacks > 0 then
  redis.call('ZREM', KEYS[2], unpack(ARGV, a, a + nacks - 1))
  redis.call('HDEL', KEYS[1], unpack(ARGV, a, a + nacks - 1))
end
local out, zargs, hargs = {}, {}, {}
local got = 0
local bytes, full = 0, false
local nkeys = #KEYS - 2 - nw
local base = 0
-- kombu's envelope ends with its properties: delivery_info, priority, body_encoding, then
-- delivery_tag last. Plain searches and comparisons read exchange, routing key and tag from
-- that tail (Lua patterns cost microseconds per message here); nil for any other shape or
-- for fields with escapes, which are then decoded whole. Messages of one queue usually
-- share the whole tail but the tag (a 36-character uuid): a tail equal to the last one read
-- reuses its exchange and routing key.
local seen_tail, seen_ex, seen_rk
local function kombu_tail(m)
  local n = #m
  if string.sub(m, n - 2) ~= '"}}' then return nil end
  local d = string.find(m, '"delivery_info": {"exchange": "', math.max(1, n - 400), true)
  if not d then return nil end
  local tail = string.sub(m, d, n - 39)
  if tail == seen_tail then
    local tag = string.sub(m, n - 38, n - 3)
    if string.find(tag, '"', 1, true) or string.find(tag, '\\', 1, true) then return nil end
    return seen_ex, seen_rk, tag
  end
  local exs = d + 31
  local exe = string.find(m, '"', exs, true)
  if not exe or string.sub(m, exe, exe + 18) ~= '", "routing_key": "' then return nil end
  local rks = exe + 19
  local rke = string.find(m, '"', rks, true)
  if not rke or string.sub(m, rke, rke + 15) ~= '"}, "priority": ' then return nil end
  local ps = rke + 16
  local pe = string.find(m, ', "body_encoding": "base64", "delivery_tag": "', ps, true)
  if not pe or not string.find(string.sub(m, ps, pe - 1), '^%d+$') then return nil end
  local ex, rk, tag = string.sub(m, exs, exe - 1), string.sub(m, rks, rke - 1), string.sub(m, pe + 46, n - 3)
  if string.find(ex, '\\', 1, true) or string.find(rk, '\\', 1, true)
      or string.find(tag, '"', 1, true) or string.find(tag, '\\', 1, true) then
    return nil
  end
  if #tag == 36 then seen_tail, seen_ex, seen_rk = tail, ex, rk end
  return ex, rk, tag
end
local function take(m, q)
  got = got + 1
  local ex, rk, tag = kombu_tail(m)
  if not tag then
    local ok, env = pcall(cjson.decode, m)
    if ok and type(env) == 'table' and type(env.properties) == 'table'
        and type(env.properties.delivery_tag) == 'string' then
      local di = env.properties.delivery_info
      local e, r = '', ''
      if type(di) == 'table' then
        if type(di.exchange) == 'string' then e = di.exchange end
        if type(di.routing_key) == 'string' then r = di.routing_key end
      end
      -- cjson.encode quotes and escapes; the fast path's fields need no escaping.
      tag, ex, rk = env.properties.delivery_tag, string.sub(cjson.encode(e), 2, -2), string.sub(cjson.encode(r), 2, -2)
    end
  end
  if tag then
    zargs[#zargs + 1] = now
    zargs[#zargs + 1] = tag
    hargs[#hargs + 1] = tag
    hargs[#hargs + 1] = '[' .. m .. ', "' .. ex .. '", "' .. rk .. '"]'
  end
  out[#out + 1] = q - 1
  out[#out + 1] = m
  bytes = bytes + #m
  if budget > 0 and bytes >= budget then full = true end
end
while base < nkeys and got < max and not full do
  for q = 1, nq do
    if got >= max or full then break end
    local key = KEYS[2 + base + q]
    if counted then
      local items = redis.call('RPOP', key, max - got)
      if items then
        for i, m in ipairs(items) do
          if full then
            -- Over budget: the rest go back to the tail, last first, as they were.
            for j = #items, i, -1 do redis.call('RPUSH', key, items[j]) end
            break
          end
          take(m, q)
        end
      end
    else
      while got < max and not full do
        local m = redis.call('RPOP', key)
        if not m then break end
        take(m, q)
      end
    end
  end
  base = base + nq
end
if #zargs > 0 then
  redis.call('ZADD', KEYS[2], unpack(zargs))
  redis.call('HSET', KEYS[1], unpack(hargs))
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
