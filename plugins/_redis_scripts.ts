/**
 * The Lua scripts of the Redis rate limit store. Each runs atomically in Redis and reads Redis's
 * own clock (`TIME`), so replicas share one clock and one set of counters.
 *
 * Keys of one key and model share a hash tag (a cluster would keep them on one node, though the
 * store connects to one server):
 * - `{bucket}:r`, `{bucket}:t`: hashes `w` (window index), `c` (current count), `p` (previous).
 * - `{bucket}:c`: a sorted set of request ids in flight, scored by when their lease ends.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** A script and its SHA-1, for `EVALSHA`. */
export interface LuaScript {
  /** The Lua source. */
  readonly lua: string;
  /** Its SHA-1 in hex. */
  readonly sha: string;
}

const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local idx = math.floor(now / window)
local function counts(key)
  local v = redis.call('HMGET', key, 'w', 'c', 'p')
  local w = tonumber(v[1])
  if w == idx then return tonumber(v[2]) or 0, tonumber(v[3]) or 0 end
  if w == idx - 1 then return 0, tonumber(v[2]) or 0 end
  return 0, 0
end
local function store(key, c, p)
  redis.call('HSET', key, 'w', idx, 'c', c, 'p', p)
  redis.call('PEXPIRE', key, window * 2)
end
`;

/**
 * Admits one request. KEYS: requests, tokens, in flight. ARGV: window ms, requests per minute,
 * tokens per minute, concurrent (each -1 for no limit), request id, lease ms. Returns
 * `{refused (0 none, 1 requests, 2 tokens, 3 concurrent), now ms, requests current, requests
 * previous, tokens current, tokens previous, in flight}`. Mirrors `refusal()` in
 * `_rate_limit_window.ts`.
 */
export const ADMIT: LuaScript = script(`${PRELUDE}
local rpm, tpm, conc = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local e = (now - idx * window) / window
local rc, rp, tc, tp, inflight = 0, 0, 0, 0, 0
if rpm >= 0 then rc, rp = counts(KEYS[1]) end
if tpm >= 0 then tc, tp = counts(KEYS[2]) end
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  inflight = redis.call('ZCARD', KEYS[3])
end
local refused = 0
if rpm >= 0 and rp * (1 - e) + rc + 1 > rpm then refused = 1
elseif tpm >= 0 and tp * (1 - e) + tc + 1 > tpm then refused = 2
elseif conc >= 0 and inflight >= conc then refused = 3 end
if refused == 0 then
  if rpm >= 0 then
    rc = rc + 1
    store(KEYS[1], rc, rp)
  end
  if conc >= 0 then
    local lease = tonumber(ARGV[6])
    redis.call('ZADD', KEYS[3], now + lease, ARGV[5])
    redis.call('PEXPIRE', KEYS[3], lease)
    inflight = inflight + 1
  end
end
return {refused, now, rc, rp, tc, tp, inflight}
`);

/** Adds used tokens. KEYS: tokens. ARGV: window ms, tokens. Returns the current count. */
export const CHARGE: LuaScript = script(`${PRELUDE}
local c, p = counts(KEYS[1])
c = c + tonumber(ARGV[2])
store(KEYS[1], c, p)
return c
`);

/**
 * Extends the leases of requests still in flight. KEYS: in flight. ARGV: window ms (unused),
 * lease ms, request ids.
 */
export const RENEW: LuaScript = script(`${PRELUDE}
local lease = tonumber(ARGV[2])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], now + lease, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], lease)
return #ARGV - 2
`);

function script(lua: string): LuaScript {
  return { lua, sha: createHash("sha1").update(lua).digest("hex") };
}
