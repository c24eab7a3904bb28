import type { RedisConnection } from '../redis.ts';
import { type Layout, multiScript, type QueueMulti, runOnMulti } from './bullmq-layout.ts';
import { evalScript } from './eval-script.ts';

/**
 * A tenant's index of its jobs: what `GET /v1/jobs` lists (newest first), and the ownership of a
 * job that is gone (410 until the entry is trimmed).
 *
 * One sorted set per tenant would cost about 120 bytes of Redis memory a job: past 128 entries
 * Redis keeps a sorted set as a skiplist and a hash table. Here the ids are split into *buckets*
 * of at most {@link INDEX_BUCKET} ids each, which Redis keeps in its compact listpack encoding
 * (`zset-max-listpack-entries`, 128 by default): about 40 bytes a job. Every score is 0, so ids
 * sort by their bytes, and ULID ids by time.
 *
 * - `tenantIndex(tenant)` (the directory) holds each bucket's lower bound; the bucket with the
 *   greatest bound at or below an id is the one that holds it, at key `{directory}:{bound}`.
 * - An id for a full bucket starts a bucket of its own when it is newer than all the bucket holds
 *   (ids mostly arrive in order); otherwise the bucket's upper half moves to a new bucket first.
 *   A bucket never passes the limit even for a moment: Redis would keep it a skiplist for good.
 * - Every key outlives its newest entry by the TTL the writer gives (the tombstone's life and the
 *   longest delay), so an entry never expires while its job can exist.
 * - Only the trim removes entries: those older than the tombstone's life whose job is gone.
 *
 * The earlier layout's one sorted set (`legacyTenantJobs`) is still read, for listing and 410s,
 * until it expires: nothing writes it any more.
 */

/** Ids a bucket holds at most: Redis' default `zset-max-listpack-entries`. */
export const INDEX_BUCKET = 128;

/** The index's Lua functions, for scripts that read or write it. */
export const INDEX_LUA = `
local function index_bucket(dir, id)
  return redis.call('ZREVRANGEBYLEX', dir, '[' .. id, '-', 'LIMIT', 0, 1)[1]
end
-- In the index at dir, or in the earlier layout's one set (legacy), read until it expires.
local function index_has(dir, legacy, id)
  local b = index_bucket(dir, id)
  if b ~= nil and redis.call('ZSCORE', dir .. ':' .. b, id) then return true end
  return redis.call('ZSCORE', legacy, id) ~= false
end
local function index_add(dir, id, ttl)
  local b = index_bucket(dir, id)
  if not b then
    b = id
    redis.call('ZADD', dir, 0, b)
  end
  local key = dir .. ':' .. b
  -- Split before adding: a sorted set that once passes the listpack limit stays a skiplist.
  if redis.call('ZCARD', key) >= ${INDEX_BUCKET} and not redis.call('ZSCORE', key, id) then
    if redis.call('ZLEXCOUNT', key, '(' .. id, '+') == 0 then
      b = id
      redis.call('ZADD', dir, 0, b)
    else
      local moved = redis.call('ZRANGE', key, ${INDEX_BUCKET / 2}, -1)
      local args = {}
      for i, m in ipairs(moved) do
        args[2 * i - 1] = 0
        args[2 * i] = m
      end
      local split = dir .. ':' .. moved[1]
      redis.call('ZADD', split, unpack(args))
      redis.call('EXPIRE', split, ttl)
      redis.call('ZREMRANGEBYRANK', key, ${INDEX_BUCKET / 2}, -1)
      redis.call('ZADD', dir, 0, moved[1])
      b = index_bucket(dir, id)
    end
    key = dir .. ':' .. b
  end
  redis.call('ZADD', key, 0, id)
  redis.call('EXPIRE', key, ttl)
end
`;

/** One index write in this many trims it (see `index_write`). */
export const TRIM_EVERY = 4;

/**
 * `index_write(dir, ttl, cutoff, jobPrefix, r, ids)`: adds `ids` to the index at `dir`, every key
 * living `ttl` seconds past this write, then trims it when `cutoff` (an exclusive lex bound: ids
 * older than the tombstone's life) is not empty.
 *
 * The trim drops entries older than the bound whose job is gone (no key at `jobPrefix .. id`), so
 * an entry never expires while its job exists, whatever its delay and retention. It checks the 4
 * oldest entries, and 4 more from a random place among the old ones (`r` in [0, 1)): otherwise a
 * few long-delayed jobs at the head of the index would keep every gone entry behind them for as
 * long as they live. A bucket found empty (trimmed, or expired) leaves the directory. Only one
 * write in {@link TRIM_EVERY} trims (`r` below 1/TRIM_EVERY): that still checks two entries for
 * each submission, and spares the other writes the trim's commands (9 to 25 once the index holds
 * entries old enough to trim).
 */
export const INDEX_WRITE_LUA = `${INDEX_LUA}
local function index_write(dir, ttl, cutoff, jobPrefix, r, ids)
  for _, id in ipairs(ids) do index_add(dir, id, ttl) end
  redis.call('EXPIRE', dir, ttl)
  -- One write in TRIM_EVERY trims: up to 8 entries checked, 2 a write on average (a submission adds 1).
  if cutoff == '' or r >= ${1 / TRIM_EVERY} then return end
  r = r * ${TRIM_EVERY}
  local n = redis.call('ZLEXCOUNT', dir, '-', cutoff)
  if n == 0 then return end
  local function check(rank, skip, at)
    local b = redis.call('ZRANGE', dir, rank, rank)[1]
    if not b then return end
    local key = dir .. ':' .. b
    local old = redis.call('ZLEXCOUNT', key, '-', cutoff)
    if old > skip then
      local from = skip + math.floor(at * (old - skip))
      for _, id in ipairs(redis.call('ZRANGE', key, from, math.min(from + 3, old - 1))) do
        if redis.call('EXISTS', jobPrefix .. id) == 0 then redis.call('ZREM', key, id) end
      end
    end
    if redis.call('EXISTS', key) == 0 then redis.call('ZREM', dir, b) end
  end
  local place = r * n
  local pick = math.floor(place)
  check(0, 0, 0)
  -- The random place skips the 4 oldest, just checked, when it falls in the same bucket.
  check(pick, pick == 0 and 4 or 0, place - pick)
end
`;

/** `index_write` (above) of the ids ARGV[5..] to the index at KEYS[1]; ARGV[1..4] as its arguments. */
const ADD = multiScript(
  'index_add',
  `${INDEX_WRITE_LUA}
local ids = {}
for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
index_write(KEYS[1], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ids)
return 0`,
);

/**
 * Lists the index at KEYS[1], newest first: ARGV[2] ids below ARGV[1] (all when ARGV[1] is '').
 * Buckets found empty are skipped; the trim drops them from the directory. Returns the earlier
 * layout's set at KEYS[2] the same way, beside: the caller merges the two (Lua compares strings by
 * the server's locale, not byte by byte as Redis orders them).
 */
const LIST = `
local dir, count = KEYS[1], tonumber(ARGV[2])
local hi = ARGV[1] == '' and '+' or '(' .. ARGV[1]
local out, below = {}, hi
while #out < count do
  local buckets = redis.call('ZREVRANGEBYLEX', dir, below, '-', 'LIMIT', 0, 8)
  if #buckets == 0 then break end
  for _, b in ipairs(buckets) do
    for _, id in ipairs(redis.call('ZREVRANGEBYLEX', dir .. ':' .. b, hi, '-', 'LIMIT', 0, count - #out)) do
      out[#out + 1] = id
    end
    below = '(' .. b
    if #out >= count then break end
  end
end
return { out, redis.call('ZREVRANGEBYLEX', KEYS[2], hi, '-', 'LIMIT', 0, count) }`;

const HAS = `${INDEX_LUA}
return index_has(KEYS[1], KEYS[2], ARGV[1]) and 1 or 0`;

/** Whether `id` is in `tenant`'s index (the status read asks the same inside its script). */
export async function isIndexed(redis: RedisConnection, layout: Layout, tenant: string, id: string): Promise<boolean> {
  return (await evalScript(redis, HAS, 2, layout.tenantIndex(tenant), layout.legacyTenantJobs(tenant), id)) === 1;
}

/** Every key of `tenant`'s index: its directory, then its buckets, oldest first (for sizing it). */
export async function indexKeys(redis: RedisConnection, layout: Layout, tenant: string): Promise<string[]> {
  const dir = layout.tenantIndex(tenant);
  return [dir, ...(await redis.zrange(dir, 0, -1)).map((bound) => `${dir}:${bound}`)];
}

/** What trims the index as ids are added: see `ADD`. */
export interface IndexTrim {
  /** Exclusive lex bound (`(job_…`): entries below it are old enough to trim once their job is gone. */
  cutoff: string;
  /** The key prefix of a job's hash: an entry whose `{jobPrefix}{id}` is gone is dropped. */
  jobPrefix: string;
  /** A draw in [0, 1): whether this write trims, and where (see `index_write`). Default: random. */
  draw?: number;
}

/** Adds `ids` to `tenant`'s index inside `multi` (trimming it with `trim`), atomic with the rest. */
export function indexOnMulti(
  multi: QueueMulti,
  layout: Layout,
  tenant: string,
  ids: string[],
  ttlSeconds: number,
  trim?: IndexTrim,
): void {
  runOnMulti(
    multi,
    ADD,
    layout.tenantIndex(tenant),
    String(ttlSeconds),
    trim?.cutoff ?? '',
    trim?.jobPrefix ?? '',
    String(trim?.draw ?? Math.random()),
    ...ids,
  );
}

/** Up to `count` of `tenant`'s job ids, newest first, below `cursor` (an id) when given. */
export async function listIndexed(
  redis: RedisConnection,
  layout: Layout,
  tenant: string,
  cursor: string | undefined,
  count: number,
): Promise<string[]> {
  const [ids, legacy] = (await evalScript(
    redis,
    LIST,
    2,
    layout.tenantIndex(tenant),
    layout.legacyTenantJobs(tenant),
    cursor ?? '',
    String(count),
  )) as [string[], string[]];
  if (legacy.length === 0) return ids;
  // Both newest first: merge them (ids compare as Redis orders them, byte by byte).
  const merged: string[] = [];
  let i = 0;
  let j = 0;
  while (merged.length < count && (i < ids.length || j < legacy.length)) {
    const a = ids[i];
    const b = legacy[j];
    if (b === undefined || (a !== undefined && a > b)) merged.push(ids[i++] as string);
    else if (a === undefined || b > a) merged.push(legacy[j++] as string);
    else {
      merged.push(a);
      i++;
      j++;
    }
  }
  return merged;
}
