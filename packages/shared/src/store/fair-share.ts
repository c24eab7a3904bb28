import type { Config } from '../config.ts';
import type { RedisConnection } from '../redis.ts';
import { type AddScript, addScript, BULL_BANDS, BULL_LUA, type Layout, OWN_FIELDS, QUEUES } from './bullmq-layout.ts';
import { evalScript } from './eval-script.ts';
import { INDEX_WRITE_LUA, type IndexTrim } from './tenant-index.ts';

/**
 * Fair share between tenants, over BullMQ without a paid feature.
 *
 * BullMQ serves its wait list to whichever worker asks, so a tenant with thousands of jobs at
 * priority 1 would hold every worker for as long as its backlog lasts. Here, a job only enters
 * BullMQ's wait list when a worker slot is free for it, and the slot goes to tenants in turn:
 *
 * - **Lanes.** A job that cannot start at once is *parked*: added in BullMQ's `waiting-children`
 *   state (as a flow's parent is born, with no children: see `BULL_LUA`), and entered in its
 *   tenant's lane (`lane:{tenant}`, ordered by the tenant's own priority, then by arrival), in
 *   the same transaction. A worker never takes a parked job, and BullMQ's fetch loop never sees
 *   one (a delayed job would make it fetch one job at a time): only the dispatcher releases it.
 * - **Turns.** `ready` holds the tenants with parked jobs, scored by when each was last served
 *   (`served`, a global sequence); a tenant that arrives takes the place just ahead of the head,
 *   unless it was served more recently. The dispatcher serves the lowest score, then moves that
 *   tenant to the back: round-robin, whatever each tenant's backlog or priorities.
 * - **Caps.** `running:{tenant}` holds the tenant's jobs handed to workers and not finished (its
 *   share in use); a tenant at `TENANT_MAX_ACTIVE` moves from `ready` to `capped` and back when
 *   one of its jobs ends. Entries of jobs that ended without telling us (a worker died, the
 *   stalled check failed the job) are dropped when the tenant is found at its cap, and by each
 *   worker at one heartbeat in {@link FAIR_REPAIR_EVERY} (every 30 s).
 * - **Slots.** Each worker registers its concurrency (`workers`, refreshed every few seconds);
 *   `slots` is their sum. A dispatch promotes at most as many jobs as there are free slots (slots
 *   minus BullMQ's active and waiting jobs), so the wait list never holds a job a later tenant
 *   would have to queue behind.
 *
 * A dispatch runs when a slot frees (a job ends: pipelined before BullMQ's completion, so the
 * worker's own fetch takes the promoted job), when a submission parks a job while a slot is free,
 * and on each worker heartbeat (the safety net). A submission while slots are free and nobody
 * waits skips the lane: the job goes straight to BullMQ's queue, with its share taken, in band 0
 * with the released jobs.
 *
 * **One tenant alone** (no tenant waits for a turn, its tenant has no cap, and the queue holds no
 * other tenant's jobs: `solo` names the tenant that holds the queue) skips the lane too, and its
 * jobs queue in BullMQ in the solo band (`bull_lower`: their own priority order, behind any job
 * BullMQ prioritized at an API priority), as BullMQ alone would run them: nothing is parked or
 * released per job. They take their share when a worker starts them, at the gate below. Another
 * tenant's job due meanwhile (a delay ran out, a schedule's run) is served before them. One
 * submitted meanwhile is parked, and the tenant that held the queue joins the turns just behind
 * it: the newcomer's job is released on the next freed slot, then the two alternate, the first
 * tenant's turn raising its next queued job to band 0 (`bull_raise`). One of its queued jobs that
 * a worker takes while others wait is parked at the gate.
 *
 * Jobs that reach the queue another way (a client delay running out, a schedule's run, a parent
 * whose children finished, a child of a fan-out) pass the same gate when a worker starts them,
 * and are parked then, once, if their tenant is at its cap or others are waiting.
 */

/** Jobs of a tenant that waits alone released ahead of a free slot (see `fair_dispatch`). */
const FAIR_SPARES = 8;

/** How often a worker refreshes its slots (and, one beat in {@link FAIR_REPAIR_EVERY}, repairs the shares). */
export const FAIR_HEARTBEAT_MS = 5_000;

/**
 * A worker repairs the shares (drops running entries of jobs that ended without telling us) at one
 * heartbeat in this many, every 30 s: a repair costs two commands per running job of each busy
 * tenant it samples, at every beat more than BullMQ's own lock renewal of long jobs. A tenant at
 * its cap is repaired at once anyway, when it is found there.
 */
export const FAIR_REPAIR_EVERY = 6;

/** A worker's slots stop counting this long after its last heartbeat (it died). */
const FAIR_WORKER_TTL_MS = 3 * FAIR_HEARTBEAT_MS;

/** Running entries younger than this are never dropped: their job may still be being added. */
const SETTLE_MS = 10_000;

/**
 * The fair-share Lua functions, reading their context from ARGV[o .. o+6]: the fair-share key
 * prefix, BullMQ's queue key prefix, now, the default cap, the per-tenant caps (JSON), the
 * settle time and the events stream's length.
 */
export function fairLua(o: number): string {
  return `${BULL_LUA}
local FP, Q, now = ARGV[${o}], ARGV[${o + 1}], tonumber(ARGV[${o + 2}])
local defaultCap, caps = tonumber(ARGV[${o + 3}]), cjson.decode(ARGV[${o + 4}])
local settle, maxlen = tonumber(ARGV[${o + 5}]), ARGV[${o + 6}]
local function fair_running(t) return FP .. 'running:' .. t end
local function fair_lane(t) return FP .. 'lane:' .. t end
local function fair_cap(t)
  local c = caps[t]
  if c == nil then return defaultCap end
  return tonumber(c)
end
local function fair_repair(t)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', fair_running(t), '-inf', now - settle)) do
    if bull_done(Q, id) then redis.call('ZREM', fair_running(t), id) end
  end
end
local function fair_at_cap(t)
  local cap = fair_cap(t)
  if cap <= 0 or redis.call('ZCARD', fair_running(t)) < cap then return false end
  fair_repair(t)
  return redis.call('ZCARD', fair_running(t)) >= cap
end
-- At its cap, or set aside in 'capped'; a tenant with no cap is neither, and costs no command (one
-- left in 'capped' by a cap since removed leaves it at the next heartbeat).
local function fair_capped(t)
  return fair_cap(t) > 0 and (redis.call('ZSCORE', FP .. 'capped', t) or fair_at_cap(t))
end
local SPARES = ${FAIR_SPARES}
local function fair_slots() return tonumber(redis.call('GET', FP .. 'slots') or '0') end
local function fair_idle(freed)
  return fair_slots() + freed - bull_busy(Q) + redis.call('ZCARD', FP .. 'spares')
end
local function fair_free() return fair_slots() - bull_load(Q) end
local function fair_solo(t)
  if fair_cap(t) > 0 or redis.call('EXISTS', FP .. 'ready') == 1 then return false end
  if redis.call('GET', FP .. 'solo') == t then return true end
  if bull_queued(Q) > 0 then return false end
  redis.call('SET', FP .. 'solo', t)
  return true
end
-- A tenant served now: busy, and its turn's sequence number (answered).
local function fair_served(t)
  redis.call('SADD', FP .. 'busy', t)
  local seq = redis.call('INCR', FP .. 'seq')
  redis.call('HSET', FP .. 'served', t, seq)
  return seq
end
local function fair_take(t, id)
  redis.call('ZADD', fair_running(t), now, id)
  return fair_served(t)
end
local function fair_spare(t, id) return t .. ' ' .. id end
local function fair_enter(t)
  if redis.call('ZSCORE', FP .. 'ready', t) or redis.call('ZSCORE', FP .. 'capped', t) then return end
  local last = tonumber(redis.call('HGET', FP .. 'served', t) or '-1')
  local head = redis.call('ZRANGE', FP .. 'ready', 0, 0, 'WITHSCORES')
  local score = math.max(last, 0)
  if head[2] then score = math.max(last, tonumber(head[2]) - 0.5) end
  redis.call('ZADD', FP .. 'ready', score, t)
end
local function fair_revoke(t)
  local spares = redis.call('ZRANGE', FP .. 'spares', 0, -1, 'WITHSCORES')
  for i = 1, #spares, 2 do
    local owner, id = string.match(spares[i], '^(%S+) (%S+)$')
    if owner ~= t then
      redis.call('ZREM', FP .. 'spares', spares[i])
      if owner and bull_unpromote(Q, id, now) then
        redis.call('ZADD', fair_lane(owner), spares[i + 1], id)
        redis.call('ZREM', fair_running(owner), id)
        fair_enter(owner)
      end
    end
  end
end
local function fair_solo_waits(t)
  return redis.call('GET', FP .. 'solo') == t and bull_solo_head(Q) ~= nil
end
local function fair_park(t, id, priority)
  fair_revoke(t)
  local seq = redis.call('INCR', FP .. 'seq')
  redis.call('ZADD', fair_lane(t), tonumber(priority) * 0x100000000 + seq % 0x100000000, id)
  fair_enter(t)
  -- The tenant that held the queue alone takes turns from now on, with its queued jobs: behind
  -- the one that made it share, whenever either was last served.
  local solo = redis.call('GET', FP .. 'solo')
  local s = redis.call('ZSCORE', FP .. 'ready', t)
  if s and solo and solo ~= t and not redis.call('ZSCORE', FP .. 'capped', solo) and bull_solo_head(Q) then
    local last = tonumber(redis.call('HGET', FP .. 'served', solo) or '-1')
    redis.call('ZADD', FP .. 'ready', 'NX', math.max(last, tonumber(s) + 0.5), solo)
  end
end
local function fair_others_wait(t)
  local head = redis.call('ZRANGE', FP .. 'ready', 0, 1)
  return (head[1] and head[1] ~= t) or head[2] ~= nil
end
local function fair_uncap(t)
  local s = redis.call('ZSCORE', FP .. 'capped', t)
  if s and not fair_at_cap(t) then
    redis.call('ZREM', FP .. 'capped', t)
    redis.call('ZADD', FP .. 'ready', s, t)
  end
end
local function fair_dispatch(freed)
  local idle = math.min(fair_idle(freed), 1000)
  local moved, rounds = 0, 0
  while idle > 0 and rounds < idle + 32 do
    rounds = rounds + 1
    local t = redis.call('ZRANGE', FP .. 'ready', 0, 0)[1]
    if not t then break end
    local lane = fair_lane(t)
    if fair_at_cap(t) then
      local s = redis.call('ZSCORE', FP .. 'ready', t)
      redis.call('ZREM', FP .. 'ready', t)
      redis.call('ZADD', FP .. 'capped', s, t)
    else
      local id = redis.call('ZRANGE', lane, 0, 0)[1]
      local queued = false
      if not id and fair_solo_waits(t) then id, queued = bull_solo_head(Q), true end
      if not id then
        redis.call('ZREM', FP .. 'ready', t)
      elseif (queued and bull_raise(Q, id)) or (not queued and bull_promote(Q, id, maxlen)) then
        redis.call('ZREM', lane, id)
        local seq = fair_take(t, id)
        idle = idle - 1
        moved = moved + 1
        redis.call('ZREM', FP .. 'ready', t)
        -- Its queued jobs keep it in turns only while others wait: alone, BullMQ serves them.
        if redis.call('ZCARD', lane) > 0 or (redis.call('EXISTS', FP .. 'ready') == 1 and fair_solo_waits(t)) then
          redis.call('ZADD', FP .. 'ready', seq, t)
        end
      else
        -- Not parked (every park writes its lane entry in the same script, so this is rare): gone,
        -- finished, or in the queue by another way, where it runs on its share.
        redis.call('ZREM', lane, id)
        if not bull_done(Q, id) then fair_take(t, id) end
      end
    end
  end
  -- One tenant alone waits: a few of its jobs go out ahead as spares, so a worker that frees a
  -- slot always finds one (BullMQ's fetch loop slows down on an empty queue). Another tenant
  -- that arrives takes them back first (fair_revoke): it never queues behind a spare.
  local room = math.min(SPARES, fair_slots()) - redis.call('ZCARD', FP .. 'spares')
  if room > 0 and redis.call('ZCARD', FP .. 'ready') == 1 then
    local t = redis.call('ZRANGE', FP .. 'ready', 0, 0)[1]
    local lane = fair_lane(t)
    while room > 0 and not fair_at_cap(t) do
      local head = redis.call('ZRANGE', lane, 0, 0, 'WITHSCORES')
      if not head[1] or not bull_promote(Q, head[1], maxlen) then break end
      redis.call('ZREM', lane, head[1])
      fair_take(t, head[1])
      redis.call('ZADD', FP .. 'spares', head[2], fair_spare(t, head[1]))
      room = room - 1
      moved = moved + 1
    end
    if redis.call('ZCARD', lane) == 0 then redis.call('ZREM', FP .. 'ready', t) end
  end
  return moved
end
local function fair_freed(t, id, release, freed)
  if release == '1' then
    redis.call('ZREM', fair_running(t), id)
    if fair_cap(t) > 0 then fair_uncap(t) end
  end
  if redis.call('ZCARD', FP .. 'ready') == 0 then return 0 end
  return fair_dispatch(freed)
end
`;
}

/**
 * A job BullMQ's add has just added, in the same script (`addScript`, bullmq-layout.ts), enters
 * its tenant's index (`index_write`, tenant-index.ts), gets its webhook URL (ARGV[16], when not
 * empty) and its place: `park` enters it in its tenant's lane (it was added parked; the reply is
 * then the free slots, and a dispatch is due when > 0); `direct` (it took a free slot's share)
 * moves it to band 0, ahead of everything, so the dispatcher counts it; `solo` (its tenant is
 * alone) into the solo band; '' leaves it where BullMQ put it (a delayed job).
 */
const ENTER = addScript(
  'fair_enter',
  `${fairLua(9)}${INDEX_WRITE_LUA}
-- The place admission chose, handed on when it ran in the same script (job-store.ts), or ARGV[6].
local id, placement = ARGV[5], handed or ARGV[6]
index_write(KEYS[1], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), { id })
if ARGV[16] ~= '' then redis.call('HSET', Q .. id, '${OWN_FIELDS.webhookUrl}', ARGV[16]) end
if placement == 'park' then
  if not bull_parked(Q, id) then return 0 end
  fair_park(ARGV[7], id, ARGV[8])
  return fair_idle(0)
end
if placement == 'solo' then bull_lower(Q, id)
elseif placement == 'direct' then bull_raise(Q, id) end
return 0`,
);

/**
 * A slot frees (`fair_freed`): the job leaves its tenant's share when it ended (ARGV[10] = '1'),
 * then a dispatch. With no job, a dispatch alone.
 */
const FREED = `${fairLua(1)}
return fair_freed(ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11]))`;

/**
 * A worker's heartbeat: its slots count for another TTL, `slots` is summed again from the live
 * workers, capped tenants are repaired, and stale shares too when ARGV[11] is '1', then a dispatch
 * when a tenant waits for a turn. With concurrency 0 the worker leaves.
 */
const HEARTBEAT = `${fairLua(1)}
local worker, concurrency, ttl, repair = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11] == '1'
if concurrency > 0 then
  redis.call('HSET', FP .. 'workers', worker, concurrency .. ':' .. (now + ttl))
else
  redis.call('HDEL', FP .. 'workers', worker)
end
local total = 0
local entries = redis.call('HGETALL', FP .. 'workers')
for i = 1, #entries, 2 do
  local c, expires = string.match(entries[i + 1], '^(%d+):(%d+)$')
  if c and tonumber(expires) > now then total = total + tonumber(c)
  else redis.call('HDEL', FP .. 'workers', entries[i]) end
end
redis.call('SET', FP .. 'slots', total, 'PX', ttl)
for _, t in ipairs(redis.call('ZRANGE', FP .. 'capped', 0, 31)) do fair_uncap(t) end
if repair then
  for _, t in ipairs(redis.call('SRANDMEMBER', FP .. 'busy', 16)) do
    fair_repair(t)
    if redis.call('ZCARD', fair_running(t)) == 0 then redis.call('SREM', FP .. 'busy', t) end
  end
end
-- With no tenant waiting for a turn a dispatch moves nothing: skipped, as fair_freed does, so an
-- idle worker's heartbeat costs a few commands, not a dispatch's dozen.
if redis.call('ZCARD', FP .. 'ready') == 0 then return 0 end
return fair_dispatch(0)`;

/**
 * Each tenant with jobs running or waiting: tenant, running, parked, queued (for the tenant alone
 * in the queue, its jobs in the solo band), and the id of its next parked job for the first 100
 * tenants with one ('' otherwise); at most 1000 tenants.
 */
const TENANT_COUNTS = `${BULL_BANDS}
local FP, Q = ARGV[1], ARGV[2]
local solo = redis.call('GET', FP .. 'solo')
local seen, out, heads = {}, {}, 0
local function add(t)
  if seen[t] or #out >= 5000 then return end
  seen[t] = true
  local parked = redis.call('ZCARD', FP .. 'lane:' .. t)
  local head = ''
  if parked > 0 and heads < 100 then
    heads = heads + 1
    head = redis.call('ZRANGE', FP .. 'lane:' .. t, 0, 0)[1]
  end
  table.insert(out, t)
  table.insert(out, redis.call('ZCARD', FP .. 'running:' .. t))
  table.insert(out, parked)
  table.insert(out, t == solo and bull_solo_count(Q) or 0)
  table.insert(out, head)
end
if solo then add(solo) end
for _, t in ipairs(redis.call('SMEMBERS', FP .. 'busy')) do add(t) end
for _, t in ipairs(redis.call('ZRANGE', FP .. 'ready', 0, 999)) do add(t) end
for _, t in ipairs(redis.call('ZRANGE', FP .. 'capped', 0, 999)) do add(t) end
return out`;

export type FairLimits = Pick<Config['limits'], 'tenantMaxActive'>;

/**
 * The ARGV of `fair_freed(t, id, release, freed)` after the context, for a slot that frees:
 * `ended`, the job finished for good (or waits for children), so it leaves its tenant's share;
 * `stillActive`, the job is still in BullMQ's active list (its completion follows on the same
 * connection), so its slot counts as free.
 */
export function freedArgs(tenant: string, id: string, { ended, stillActive }: SlotFreed): string[] {
  return [tenant, id, ended ? '1' : '0', stillActive ? '1' : '0'];
}

export interface SlotFreed {
  ended: boolean;
  stillActive: boolean;
}

/** The ARGV the fair-share functions read (`fairLua(o)`), in order. */
export function fairArgs(layout: Layout, limits: FairLimits, eventsMaxLen: number, now = Date.now()): string[] {
  return [
    layout.fair,
    `${layout.queueKey(QUEUES.analyses)}:`,
    String(now),
    String(limits.tenantMaxActive.jobs),
    capsJson(limits),
    String(SETTLE_MS),
    String(eventsMaxLen),
  ];
}

const capsCache = new WeakMap<FairLimits['tenantMaxActive'], string>();

/** The per-tenant caps as the scripts read them; `{}` encodes as an empty Lua table either way. */
function capsJson(limits: FairLimits): string {
  let json = capsCache.get(limits.tenantMaxActive);
  if (json === undefined) {
    json = JSON.stringify(Object.fromEntries(limits.tenantMaxActive.overrides));
    capsCache.set(limits.tenantMaxActive, json);
  }
  return json;
}

export interface TenantShare {
  tenant: string;
  /** Jobs handed to workers and not finished. */
  running: number;
  /**
   * Jobs waiting: parked for the tenant's turn, its cap or a free slot, and, for the tenant alone
   * in the queue, its jobs queued in BullMQ.
   */
  waiting: number;
}

/** The fair share as metrics read it, in one script. */
export interface FairShares {
  tenants: TenantShare[];
  /** Jobs parked (in BullMQ's waiting-children set, out of its queue), all tenants together. */
  parked: number;
  /** The next parked job of each tenant that has one (the first 100 tenants). */
  laneHeads: string[];
}

/** The dispatcher's entry points: see the comment at the top of this file. */
export function createFairShare({
  redis,
  layout,
  limits,
  eventsMaxLen,
}: {
  redis: RedisConnection;
  layout: Layout;
  limits: FairLimits;
  eventsMaxLen: number;
}) {
  const args = () => fairArgs(layout, limits, eventsMaxLen);
  // Every script names one key under the queue's hash tag, so a Redis Cluster routes it to the
  // node that holds them all; the rest are built in Lua, in the same slot.
  const anchor = layout.fairReady;
  /** Each tenant's running and waiting jobs, the parked total and the lanes' heads, for metrics. */
  async function shares(): Promise<FairShares> {
    const flat = (await evalScript(
      redis,
      TENANT_COUNTS,
      1,
      anchor,
      layout.fair,
      `${layout.queueKey(QUEUES.analyses)}:`,
    )) as (string | number)[];
    const out: FairShares = { tenants: [], parked: 0, laneHeads: [] };
    for (let i = 0; i + 4 < flat.length; i += 5) {
      const [parked, queued, head] = [Number(flat[i + 2]), Number(flat[i + 3]), String(flat[i + 4])];
      out.tenants.push({ tenant: String(flat[i]), running: Number(flat[i + 1]), waiting: parked + queued });
      out.parked += parked;
      if (head) out.laneHeads.push(head);
    }
    return out;
  }

  return {
    /**
     * The script that enters a job in `tenant`'s index (kept `index.ttlSeconds`, trimmed with
     * `index.trim`) and places it (see `ENTER`), run after BullMQ's add of the job in the same
     * script (`addWith`, bullmq-layout.ts), with its key and arguments. Its reply is the number of
     * free slots when the job is parked: dispatch when it is > 0.
     */
    enter(
      job: {
        tenant: string;
        id: string;
        placement: 'park' | 'direct' | 'solo' | '';
        priority: number;
        webhookUrl?: string | undefined;
      },
      index: { ttlSeconds: number; trim: IndexTrim },
    ): [AddScript, string, ...string[]] {
      return [
        ENTER,
        layout.tenantIndex(job.tenant),
        String(index.ttlSeconds),
        index.trim.cutoff,
        index.trim.jobPrefix,
        String(index.trim.draw ?? Math.random()),
        job.id,
        job.placement,
        job.tenant,
        String(job.priority),
        ...args(),
        job.webhookUrl ?? '',
      ];
    },
    /** Fills free slots, in fair order; the number of jobs promoted. */
    async dispatch(): Promise<number> {
      return Number(await evalScript(redis, FREED, 1, anchor, ...args(), '', '', '0', '0'));
    },
    /**
     * Registers (or refreshes) a worker's slots; concurrency 0 unregisters it. Repairs the shares
     * of up to 16 busy tenants unless `repair` is false (see {@link FAIR_REPAIR_EVERY}). Dispatches.
     */
    async heartbeat(workerId: string, concurrency: number, { repair = true } = {}): Promise<number> {
      return Number(
        await evalScript(
          redis,
          HEARTBEAT,
          1,
          anchor,
          ...args(),
          workerId,
          String(concurrency),
          String(FAIR_WORKER_TTL_MS),
          repair ? '1' : '0',
        ),
      );
    },
    shares,
  };
}

export type FairShare = ReturnType<typeof createFairShare>;
