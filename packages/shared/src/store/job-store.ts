import type { JobsOptions, Queue } from 'bullmq';
import { Job } from 'bullmq';
import { encodeTime } from 'ulid';
import { type AnalysisContract, MAX_STEPS_PER_JOB } from '../analysis.ts';
import { type Config, tenantMaxActive } from '../config.ts';
import { type JobFields, type JobSnapshot, parseStepRecords } from '../job-view.ts';
import type { RedisConnection } from '../redis.ts';
import { decodeReturnValue } from '../result-codec.ts';
import { traceMetadata } from '../telemetry.ts';
import { parseDeliveries, webhookJobOptions } from '../webhook-delivery.ts';
import {
  addGate,
  addToMulti,
  addWith,
  addWithOnMulti,
  BULL_LUA,
  completionScript,
  DATA_TENANT_LUA,
  execQueueMulti,
  gatedAddWith,
  type Layout,
  layoutFor,
  NO_RESULT_LENGTH,
  OWN_FIELDS,
  QUEUES,
  rideOnCompletion,
  STATUS_FIELDS,
  STEP_RESULT_FIELD_PREFIX,
  startOnTake,
  stepResultField,
  takeScriptOf,
} from './bullmq-layout.ts';
import { evalScript } from './eval-script.ts';
import { createFairShare, type FairLimits, fairArgs, fairLua, freedArgs, type SlotFreed } from './fair-share.ts';
import {
  CHILD_SUMMARY_LUA,
  cancelChildren,
  childSummaryKeys,
  parseChildSummary,
  readChildIds,
} from './job-children.ts';
import { INDEX_LUA, listIndexed } from './tenant-index.ts';

/**
 * Priorities as clients give them: 1 (most urgent) to 1000, 500 when not given. Every job carries a
 * BullMQ priority, so jobs with and without one are ordered together (BullMQ serves un-prioritised
 * jobs before all prioritised ones otherwise).
 */
export const DEFAULT_PRIORITY = 500;

/**
 * How long an Idempotency-Key is remembered: a day, or the tombstone's life when shorter, so a
 * replay always finds the job or its tombstone while it finds the key.
 */
export const IDEMPOTENCY_TTL_SECONDS = 86_400;

/** What a job's `data` holds. The tenant comes first: the status script reads it from there. */
export interface JobData {
  tenant: string;
  input: unknown;
  /** On runs of a schedule: the schedule (and BullMQ job scheduler) id. */
  scheduleId?: string;
}

/** The one way to build a job's data, so `tenant` is always its first key. */
export function jobData(tenant: string, input: unknown, extra: { scheduleId?: string } = {}): JobData {
  return { tenant, input, ...(extra.scheduleId ? { scheduleId: extra.scheduleId } : {}) };
}

/** BullMQ options of a new analysis job: retries with jittered exponential backoff. */
export function jobOptionsFor(
  contract: AnalysisContract,
  { priority, delayMs }: { priority?: number | undefined; delayMs?: number | undefined },
): Omit<JobsOptions, 'jobId'> {
  return {
    priority: priority ?? DEFAULT_PRIORITY,
    // Only when there is one: BullMQ keeps `opts` in every job hash, and `"delay":0` is 16 bytes of it.
    ...(delayMs ? { delay: delayMs } : {}),
    attempts: contract.defaults.attempts,
    backoff: { type: 'exponential', delay: contract.defaults.backoffMs, jitter: 0.5 },
  };
}

/** Retention of finished jobs, set on the Workers so every job gets it, however it was born. */
export function retentionOptions(retention: Config['retention']) {
  return {
    removeOnComplete: { age: retention.completedSeconds, count: retention.completedCount },
    removeOnFail: { age: retention.failedSeconds, count: retention.failedCount },
  };
}

/**
 * The status read: ownership, then the job's status fields, in one script. Ownership is the job's
 * own `data.tenant` (so a job born anywhere in Redis is its tenant's); a job that is gone but still
 * in the tenant's index answers `gone` (410). A job that spawned children also gets their counts
 * (see `CHILD_SUMMARY_LUA`: the one part whose cost grows, with the job's own children).
 */
const SNAPSHOT = `${CHILD_SUMMARY_LUA}${INDEX_LUA}
local data = redis.call('HGET', KEYS[1], 'data')
if not data then
  if index_has(KEYS[4], KEYS[12], ARGV[1]) then return 'gone' end
  return 'none'
end
if string.match(data, ${DATA_TENANT_LUA}) ~= ARGV[2] then return 'none' end
local f = redis.call('HMGET', KEYS[1], unpack(ARGV, 3))
local deliveries = {}
if f[${STATUS_FIELDS.indexOf(OWN_FIELDS.webhookUrl) + 1}] then deliveries = redis.call('LRANGE', KEYS[5], 0, -1) end
local children = {}
if redis.call('HEXISTS', KEYS[1], '${OWN_FIELDS.children}') == 1 then
  children = childSummary(KEYS[6], KEYS[7], KEYS[8], KEYS[9], ARGV[1])
end
return { f, redis.call('HSTRLEN', KEYS[1], 'returnvalue'), redis.call('EXISTS', KEYS[2]),
  redis.call('ZSCORE', KEYS[3], ARGV[1]) or false, deliveries, children, redis.call('ZCARD', KEYS[10]),
  redis.call('ZSCORE', KEYS[11], ARGV[1]) or false }`;

/**
 * Bytes of a job's input, and of its result, that its tenant's storage budget does not count
 * (see `STORAGE_LUA`); docs/tuning.md sizes Redis with them.
 */
export const STORAGE_FREE_BYTES = 512;

/**
 * A tenant's stored bytes (its storage budget), in one hash: field `total`, and one field per job
 * that holds counted bytes, `"{input},{result},{since}"` (bytes, bytes, seconds since the epoch
 * when it was first counted). The first {@link STORAGE_FREE_BYTES} of a job's input, and of its
 * result, are not counted: they are part of what a retained job costs anyway, which retention and
 * the backlog quota bound by count, not by tenant. So a small job keeps no field at all (a field
 * is about 100 bytes of Redis memory, as much as a small input) and counts nothing. The admit
 * script samples fields at random (`HRANDFIELD`) and drops those whose job is gone; `since` keeps
 * it off entries whose job may still be being added. `storage_count` sets the input or the
 * result figure (nil keeps it), so a retried attempt replaces its figure and never adds it twice;
 * it answers whether it wrote, and the hash's expiry is refreshed only then. `known` is the job's
 * field when the caller has read it already (false: it has none); nil reads it.
 */
const STORAGE_LUA = `
local function storage_figures(v)
  if not v then return 0, 0, 0 end
  local input, result, since = string.match(v, '^(%-?%d+),(%-?%d+),(%d+)$')
  -- The earlier layout kept one figure a field: '{id}' the input's, '{id}:r' the result's.
  if not input then return tonumber(v) or 0, 0, 0 end
  return tonumber(input) or 0, tonumber(result) or 0, tonumber(since) or 0
end
-- The bytes of an input or a result that count against the budget.
local function storage_counted(bytes)
  return math.max(0, bytes - ${STORAGE_FREE_BYTES})
end
local function storage_count(key, id, input, result, nowMs, known)
  if input then input = storage_counted(input) end
  if result then result = storage_counted(result) end
  local v = known
  if v == nil then v = redis.call('HGET', key, id) end
  local oldInput, oldResult, since = storage_figures(v)
  if not v then
    if (input or 0) + (result or 0) == 0 then return false end
    since = math.floor(tonumber(nowMs) / 1000)
  end
  input, result = input or oldInput, result or oldResult
  if input + result == 0 then redis.call('HDEL', key, id)
  else redis.call('HSET', key, id, input .. ',' .. result .. ',' .. since) end
  local delta = input + result - oldInput - oldResult
  if delta ~= 0 then redis.call('HINCRBY', key, 'total', delta) end
  return true
end
`;

/**
 * A tenant's rate-limit window is one counter (`layout.rate`) holding its count and its end:
 * `end * RATE_HITS + count`, where `end` is in whole seconds since {@link RATE_EPOCH_MS}, rounded
 * up. INCR counts a submission and answers both. The window starts at the tenant's first
 * submission in it and the key expires with it (set on that submission, to the millisecond); the
 * end it reports is at most a second later, and never more than a window away. Lua reads the
 * counter as a double, exact below 2^53: 2^23 submissions a window (a minute), and ends until 2059.
 */
const RATE_HITS = 2 ** 23;
const RATE_EPOCH_MS = Date.UTC(2025, 0, 1);

/**
 * Admission of a submission, atomic: the tenant's rate limit counts it (one fixed window per
 * tenant, shared by every API replica) and refuses it past the limit; an Idempotency-Key already
 * used answers with the job it names; a tenant over its storage budget refuses; a full backlog
 * refuses; otherwise the key is claimed for the new id, the id is counted against the backlog and
 * its input bytes against the storage budget. Every answer carries the window's count and time
 * left (3rd and 4th). On one submission in four (ARGV[24], a random draw), the backlog's two
 * oldest entries are checked and dropped once their job has finished or gone, so the set follows
 * the real backlog; when it looks full, up to 200 of them are checked, whatever the draw. Storage
 * entries are repaired likewise, 2 (or 200) sampled at random, when the budget counts anything,
 * but only once their job is gone (its input and result stay in Redis until retention removes it).
 * Last, a job due now is placed (fair-share.ts): `solo` when its tenant is alone in the queue
 * (it queues in the solo band and takes its share at the gate when it starts); otherwise `direct`
 * when a worker slot is free, its tenant is under its cap and no tenant waits for a turn (it then
 * takes its share at once); `capped` when its tenant is at its cap; `park` otherwise.
 */
const ADMIT = `${fairLua(15)}
local function finished(id)
  local k = ARGV[8] .. id
  if redis.call('EXISTS', k) == 0 then return true end
  return redis.call('HEXISTS', k, 'finishedOn') == 1 or redis.call('HEXISTS', k, '${OWN_FIELDS.cancelledAt}') == 1
end
local function repair(n)
  local settled = tonumber(ARGV[5]) - tonumber(ARGV[9])
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', settled, 'LIMIT', 0, n)
  for _, id in ipairs(oldest) do
    if id ~= ARGV[1] and finished(id) then redis.call('ZREM', KEYS[2], id) end
  end
end
${STORAGE_LUA}
-- Answers the bytes it freed.
local function repairStorage(n)
  local settled = (tonumber(ARGV[5]) - tonumber(ARGV[9])) / 1000
  local sample = redis.call('HRANDFIELD', KEYS[3], n, 'WITHVALUES')
  local freed = 0
  for i = 1, #sample, 2 do
    local id, figures = sample[i], sample[i + 1]
    -- A result figure kept as '{id}:r' (the earlier layout) goes with its job.
    local jobId = string.match(id, '^(.*):r$') or id
    if id ~= 'total' and jobId ~= ARGV[1] then
      local input, result, since = storage_figures(figures)
      if since <= settled and redis.call('EXISTS', ARGV[8] .. jobId) == 0 then
        redis.call('HDEL', KEYS[3], id)
        if input + result ~= 0 then redis.call('HINCRBY', KEYS[3], 'total', -(input + result)) end
        freed = freed + input + result
      end
    end
  end
  return freed
end
-- This job's figures and the budget's total, as stored() last read them: false while it has none.
local mine, total = false, 0
local function stored()
  local f = redis.call('HMGET', KEYS[3], 'total', ARGV[1])
  mine, total = f[2], tonumber(f[1] or '0')
  local input, result = storage_figures(f[2] or nil)
  return total - input - result
end
local limit, hits, ttl = tonumber(ARGV[13]), 0, 0
if limit > 0 then
  -- The window's count and its end in one number (RATE_HITS, above), so no PTTL is needed to tell
  -- the client when it ends.
  local v, window, nowMs = redis.call('INCR', KEYS[4]), tonumber(ARGV[14]), tonumber(ARGV[5])
  local ends = math.floor(v / ${RATE_HITS})
  hits = v - ends * ${RATE_HITS}
  ttl = ends * 1000 + ${RATE_EPOCH_MS} - nowMs
  -- A new window (INCR made the key), or one left with no expiry: it ends a window from now.
  if ends == 0 or ttl < -window then
    ends = math.ceil((nowMs + window - ${RATE_EPOCH_MS}) / 1000)
    -- Formatted by hand: Lua writes a number this large in exponent notation, which INCR refuses.
    redis.call('SET', KEYS[4], string.format('%.0f', ends * ${RATE_HITS} + 1), 'PX', window)
    hits, ttl = 1, window
  end
  -- Never past a window from now (the end is rounded up to the second; the key expires on the
  -- millisecond), nor past its end: another API's clock may run ahead of the one that opened it.
  ttl = math.min(math.max(ttl, 1), window)
  if hits > limit then return { 'rate', limit, hits, ttl } end
end
if ARGV[6] == '1' then
  local v = redis.call('GET', KEYS[1])
  if v then return { 'replay', v, hits, ttl } end
end
local budget = tonumber(ARGV[10])
local bytes = storage_counted(tonumber(ARGV[11]))
if budget > 0 then
  local used = stored()
  -- A budget that counts nothing has no entry to repair.
  if total ~= 0 then used = used - repairStorage(2) end
  if used + bytes > budget then
    repairStorage(200)
    used = stored()
    if used + bytes > budget then return { 'storage_full', budget, hits, ttl, used } end
  end
end
local quota = tonumber(ARGV[4])
if quota > 0 then
  -- One submission in four checks the oldest entries and refreshes the set's expiry (a safety
  -- net for a tenant that goes away: FINISH and cancel remove entries). A set that looks full is
  -- checked below whatever the draw, and a set this entry creates gets its expiry at once.
  local sampled = tonumber(ARGV[24]) < 0.25
  if sampled then repair(2) end
  redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[1])
  local queued = redis.call('ZCARD', KEYS[2])
  if sampled or queued == 1 then redis.call('EXPIRE', KEYS[2], ARGV[7]) end
  if queued > quota then
    repair(200)
    if redis.call('ZCARD', KEYS[2]) > quota then
      redis.call('ZREM', KEYS[2], ARGV[1])
      return { 'full', quota, hits, ttl }
    end
  end
end
-- The job's field as the budget check read it: an input within the free bytes of a job with no
-- figures yet counts nothing, and sends no command.
if budget > 0 and storage_count(KEYS[3], ARGV[1], tonumber(ARGV[11]), nil, ARGV[5], mine) then
  redis.call('EXPIRE', KEYS[3], ARGV[12])
end
if ARGV[6] == '1' then
  redis.call('SET', KEYS[1], cjson.encode({ id = ARGV[1], bodyHash = ARGV[2] }), 'EX', ARGV[3])
end
local placement = ''
if ARGV[22] == '1' then
  local t = ARGV[23]
  fair_revoke(t)
  if fair_capped(t) then
    placement = 'capped'
  elseif fair_solo(t) then
    placement = 'solo'
  elseif redis.call('EXISTS', FP .. 'ready') == 0 and fair_free() > 0 then
    fair_take(t, ARGV[1])
    placement = 'direct'
  else
    placement = 'park'
  end
end
return { 'ok', '', hits, ttl, placement }`;

/**
 * The end of an attempt, sent just before BullMQ's own completion (or failure) on the same
 * connection, in one script: the result's bytes counted against the tenant's storage budget when
 * ARGV[12] is not empty (idempotently: a retried attempt replaces the figure; BullMQ stores the
 * result just after, and the admit script drops the figure once the job is gone, so a figure for a
 * result that never landed cannot outlive its job); the job's place in its tenant's backlog freed
 * when ARGV[14] is '1' (it completed or failed for good), so a finished job neither counts against
 * the quota nor keeps an entry until a later admission finds it; then the worker slot handed on
 * (`fair_freed`, fair-share.ts).
 */
const FINISH = `${fairLua(1)}${STORAGE_LUA}
if ARGV[14] == '1' then redis.call('ZREM', KEYS[3], ARGV[9]) end
if ARGV[12] ~= '' and storage_count(KEYS[2], ARGV[9], nil, tonumber(ARGV[12]), now) then
  redis.call('EXPIRE', KEYS[2], ARGV[13])
end
return fair_freed(ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11]))`;

/** `FINISH` inside BullMQ's completion of the job, in one script (`finishOnCompletion`). */
const FINISH_RIDE = completionScript('finish', 3, FINISH);

/**
 * Flags a job cancelled, unless it is gone or already finished, and frees its backlog place and
 * its place in its tenant's lane, if parked. A job no worker holds gets a `cancelled` entry in the
 * queue's events stream (live streams end on it).
 */
const CANCEL = `${BULL_LUA}
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('HEXISTS', KEYS[1], 'finishedOn') == 1 then return 'finished' end
redis.call('HSETNX', KEYS[1], '${OWN_FIELDS.cancelledAt}', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then return 'active' end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'event', 'cancelled', 'jobId', ARGV[2])
-- Parked for its tenant's turn: out of the lane and into the queue, where a worker drains it.
if redis.call('ZREM', KEYS[5], ARGV[2]) == 1 then bull_promote(ARGV[4], ARGV[2], ARGV[3]) end
return 'waiting'`;

/** The tenant's rate-limit window after this submission was counted. */
export interface RateWindow {
  limit: number;
  hits: number;
  /** Time left in the window. */
  resetMs: number;
}

interface AdmitParams {
  tenant: string;
  /** Place the job in the fair share (a submission due now); absent: a delayed job, or a charge. */
  fair?: { limits: FairLimits; eventsMaxLen: number } | undefined;
  id: string;
  idempotency?: { keyHash: string; bodyHash: string } | undefined;
  idempotencyTtlSeconds: number;
  /** 0: no backlog quota. */
  backlogQuota: number;
  backlogTtlSeconds: number;
  settleMs: number;
  /** 0: no storage budget. */
  storageBudget: number;
  inputBytes: number;
  /** 0: the rate limit neither counts nor refuses. */
  rateLimit: number;
  rateWindowMs: number;
}

/** The `ADMIT` script's four keys, then its arguments: the one place they are laid out. */
function admitKeysAndArgs(layout: Layout, p: AdmitParams): string[] {
  const fair = p.fair ?? { limits: NO_CAPS, eventsMaxLen: 1 };
  return [
    p.idempotency ? layout.idempotency(p.tenant, p.idempotency.keyHash) : layout.backlog(p.tenant),
    layout.backlog(p.tenant),
    layout.storageBytes(p.tenant),
    layout.rate(p.tenant),
    p.id,
    p.idempotency?.bodyHash ?? '',
    String(p.idempotencyTtlSeconds),
    String(p.backlogQuota),
    String(Date.now()),
    p.idempotency ? '1' : '0',
    String(p.backlogTtlSeconds),
    `${layout.queueKey(QUEUES.analyses)}:`,
    String(p.settleMs),
    String(p.storageBudget),
    String(p.inputBytes),
    String(STORAGE_KEYS_TTL_SECONDS),
    String(p.rateLimit),
    String(p.rateWindowMs),
    ...fairArgs(layout, fair.limits, fair.eventsMaxLen),
    p.fair ? '1' : '0',
    p.tenant,
    String(Math.random()),
  ];
}

/** What `ADMIT` answers: its kind, a value, the rate window's count and time left, and one more. */
type AdmitReply = [string, string | number, number, number, (number | string)?];

/** Runs `ADMIT` alone. */
async function runAdmit(redis: RedisConnection, layout: Layout, p: AdmitParams): Promise<AdmitReply> {
  return (await evalScript(redis, ADMIT, 4, ...admitKeysAndArgs(layout, p))) as AdmitReply;
}

/**
 * `ADMIT` before BullMQ's add, in the same script (`addGate`, bullmq-layout.ts), when the add was
 * built for the place admission chooses: parked (ARGV[25] = '1', added waiting for its turn) or
 * not (into the queue, or delayed). The job is added only when admitted there, and `ENTER` after
 * it is handed the place; otherwise its answer comes back alone, and a job admitted elsewhere is
 * added by a second round trip (`accept`), as if `ADMIT` had been sent alone.
 */
const ADMIT_GATE = addGate(
  'admit',
  4,
  `local function admit()
${ADMIT}
end
local reply = admit()
if reply[1] ~= 'ok' then return false, reply end
local parked = reply[5] == 'park' or reply[5] == 'capped'
if parked ~= (ARGV[25] == '1') then return false, reply end
return true, reply, parked and 'park' or reply[5]`,
);

export type Admission =
  /**
   * `direct`: the job may start at once; `solo`: its tenant is alone in the queue, and it queues
   * there; `park`: it waits for its tenant's turn (fair-share.ts); `capped`: for one of its
   * tenant's jobs to end.
   */
  (
    | { kind: 'new'; placement: Placement }
    | { kind: 'replay'; id: string; bodyHash: string }
    | { kind: 'backlog_full'; quota: number }
    | { kind: 'storage_full'; budget: number; stored: number }
    | { kind: 'rate_limited' }
  ) & {
    /** Absent when the rate limit is off, or the submission was not counted. */
    rate?: RateWindow;
  };

/** The admission `ADMIT` answered; `limit`: the rate limit it counted against (0: none). */
function admissionOf([kind, value, hits, ttl, extra]: AdmitReply, limit: number): Admission {
  const rate = limit > 0 ? { rate: { limit, hits: Number(hits), resetMs: Number(ttl) } } : {};
  if (kind === 'rate') return { kind: 'rate_limited', ...rate };
  if (kind === 'replay') {
    const earlier = JSON.parse(String(value)) as { id?: string; bodyHash?: string };
    return { kind: 'replay', id: earlier.id ?? '', bodyHash: earlier.bodyHash ?? '', ...rate };
  }
  if (kind === 'storage_full') {
    return { kind: 'storage_full', budget: Number(value), stored: Number(extra), ...rate };
  }
  if (kind === 'full') return { kind: 'backlog_full', quota: Number(value), ...rate };
  const placement: Placement = extra === 'park' || extra === 'capped' || extra === 'solo' ? extra : 'direct';
  return { kind: 'new', placement, ...rate };
}

/** Where an admitted job goes: into BullMQ's queue (`direct`, `solo`), or parked for its turn (fair-share.ts). */
export type Placement = 'direct' | 'solo' | 'park' | 'capped';

/** Whether a job so placed waits parked (for its tenant's turn, or for its cap). */
const parks = (placement: Placement | undefined) => placement === 'park' || placement === 'capped';

/** No per-tenant caps: fair order only. */
const NO_CAPS: FairLimits = { tenantMaxActive: { jobs: 0, overrides: new Map() } };

export type Owned = { kind: 'job'; snapshot: JobSnapshot } | { kind: 'gone' } | { kind: 'none' };

export interface Accepted {
  tenant: string;
  id: string;
  contract: AnalysisContract;
  input: unknown;
  priority?: number | undefined;
  delayMs?: number | undefined;
  webhookUrl?: string | undefined;
  /**
   * From `admit`: a parked job is added in BullMQ's waiting-children set and entered in its
   * tenant's lane; a `direct` or `solo` one is placed in its band of the prioritized set.
   */
  placement?: Placement | undefined;
}

export interface JobStoreDeps {
  /** A connection for reads and our scripts (the API's producer role fails fast). */
  redis: RedisConnection;
  /** The analyses queue; submissions go in a MULTI on its connection, which has BullMQ's scripts. */
  queue: Queue;
  /** The webhooks queue, on the same connection as `queue` (deliveries are the jobs' parents). */
  webhooks?: Queue;
  config: Pick<Config, 'queuePrefix' | 'retention' | 'webhooks' | 'eventsMaxLen'>;
  /** Unfinished jobs a tenant may have at once; 0 turns the quota off. */
  backlogQuota?: number;
  /** Submissions a tenant may make per window, counted by `admit`; 0 (the default) turns it off. */
  ratePerWindow?: number;
  /** The rate limit's window. @defaultValue 60 000 ms */
  rateWindowMs?: number;
  /** Backlog entries younger than this are never dropped: their job may still be being added. */
  settleMs?: number;
  /** A tenant's storage budget in bytes (inline inputs and results); 0 turns it off. */
  storageBudget?: (tenant: string) => number;
  /** Caps on each tenant's active jobs (`TENANT_MAX_ACTIVE`); none by default. */
  fairLimits?: FairLimits;
}

function num(v: string | null | undefined): number | null {
  return v ? Number(v) : null;
}

/** Where BullMQ's `ats` is among the status read's fields. */
const ATS_AT = STATUS_FIELDS.indexOf('ats');

function parseFields(values: (string | null)[], resultLength: number): JobFields {
  const [name, timestamp, processedOn, finishedOn, failedReason, atm, progress, opts, , stc, rjk, lhc, lhw, lhS] =
    values;
  const ats = values[ATS_AT];
  let parsedProgress: unknown = null;
  let parsedOpts: { attempts?: number; priority?: number } = {};
  try {
    parsedProgress = progress ? JSON.parse(progress) : null;
    parsedOpts = opts ? JSON.parse(opts) : {};
  } catch {
    // A status read never fails on a field it cannot parse.
  }
  return {
    name: name ?? 'unknown',
    timestamp: Number(timestamp ?? 0),
    processedOn: num(processedOn),
    finishedOn: num(finishedOn),
    failedReason: failedReason || null,
    attemptsMade: Number(atm ?? 0),
    attemptsMax: Math.max(1, parsedOpts.attempts ?? 1),
    priority: parsedOpts.priority ?? DEFAULT_PRIORITY,
    progress: parsedProgress,
    stalledCount: Number(stc ?? 0),
    timesTaken: Number(ats ?? 0),
    cancelledAt: num(lhc),
    webhookUrl: lhw || null,
    hasResult: resultLength > NO_RESULT_LENGTH,
    steps: parseStepRecords(lhS),
    scheduleId: rjk || null,
  };
}

type SnapshotReply =
  | 'gone'
  | 'none'
  | [(string | null)[], number, number, string | null, string[], unknown[], number, string | null];

/** Reads of a job's state, for the API, the event stream and webhook deliveries. */
export function createJobReads({
  redis,
  prefix,
  fairLimits = NO_CAPS,
}: {
  redis: RedisConnection;
  prefix: string;
  /** Tells a job parked by its tenant's cap from one parked for a free slot. */
  fairLimits?: FairLimits;
}) {
  const layout: Layout = layoutFor(prefix);
  const analyses = QUEUES.analyses;
  const analysesKeyPrefix = `${layout.queueKey(analyses)}:`;

  function ownedFrom(tenant: string, id: string, reply: SnapshotReply): Owned {
    if (reply === 'gone' || reply === 'none') return { kind: reply };
    const [values, resultLength, locked, delayedScore, deliveries, childReply, running, laneScore] = reply;
    const job = parseFields(values, Number(resultLength));
    const parked = laneScore !== null;
    const cap = tenantMaxActive(fairLimits, tenant);
    // A child of `ctx.spawn` has an analysis job as its BullMQ parent (a webhook delivery is not one).
    const parentKey = values[STATUS_FIELDS.indexOf('parentKey')];
    if (parentKey?.startsWith(analysesKeyPrefix)) job.parentId = parentKey.slice(analysesKeyPrefix.length);
    const children = parseChildSummary(childReply);
    return {
      kind: 'job',
      snapshot: {
        id,
        job,
        locked: Number(locked) === 1,
        delayed: delayedScore !== null,
        ...(parked ? { parked: cap > 0 && Number(running) >= cap ? 'tenant_concurrency' : 'queue' } : {}),
        ...(job.webhookUrl ? { deliveries: parseDeliveries(deliveries) } : {}),
        ...(children ? { children } : {}),
      },
    };
  }

  function snapshotArgs(tenant: string, id: string): (string | number)[] {
    return [
      12,
      layout.job(analyses, id),
      layout.lock(analyses, id),
      layout.delayed(analyses),
      layout.tenantIndex(tenant),
      layout.webhookDeliveries(id),
      ...childSummaryKeys(layout, id),
      layout.fairRunning(tenant),
      layout.fairLane(tenant),
      layout.legacyTenantJobs(tenant),
      id,
      tenant,
      ...STATUS_FIELDS,
    ];
  }

  /** A tenant's jobs in one round trip, each with the same answer `snapshot` gives. */
  async function snapshots(tenant: string, ids: string[]): Promise<Owned[]> {
    if (ids.length === 0) return [];
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.eval(SNAPSHOT, ...(snapshotArgs(tenant, id) as [number, ...string[]]));
    const results = (await pipeline.exec()) ?? [];
    return ids.map((id, i) => {
      const [err, reply] = results[i] ?? [new Error('no reply')];
      if (err) throw err;
      return ownedFrom(tenant, id, reply as SnapshotReply);
    });
  }

  return {
    layout,
    /** The job if the tenant owns it; `gone` once retention removed it (410); `none` otherwise (404). */
    async snapshot(tenant: string, id: string): Promise<Owned> {
      const [numKeys, ...args] = snapshotArgs(tenant, id) as [number, ...string[]];
      const reply = (await evalScript(redis, SNAPSHOT, numKeys, ...args)) as SnapshotReply;
      return ownedFrom(tenant, id, reply);
    },
    snapshots,

    /** The stored result of a completed job, decompressed. */
    async result(id: string): Promise<unknown> {
      const raw = await redis.hget(layout.job(analyses, id), 'returnvalue');
      if (raw === null) return undefined;
      const stored: unknown = JSON.parse(raw);
      return decodeReturnValue(stored);
    },

    /** The stored result of a completed job as BullMQ keeps it (JSON bytes), for streaming. */
    async storedResult(id: string): Promise<Buffer | null> {
      return redis.hgetBuffer(layout.job(analyses, id), 'returnvalue');
    },

    /** The ids of the children a job spawned (`ctx.spawn`), in spawn order; read after its snapshot. */
    childIds(parentId: string): Promise<string[]> {
      return readChildIds(redis, layout, parentId);
    },

    /** A page of the tenant's job ids, newest first, before `cursor` (an id). */
    listIds(tenant: string, cursor: string | undefined, count: number): Promise<string[]> {
      return listIndexed(redis, layout, tenant, cursor, count);
    },
  };
}

export type JobReads = ReturnType<typeof createJobReads>;

/**
 * The one owner of a job's storage: our keys and BullMQ's, every read and write of a job's state.
 * The API service and the worker's processor speak only to it.
 */
export function createJobStore({
  redis,
  queue,
  webhooks,
  config,
  backlogQuota = 0,
  settleMs = 10_000,
  storageBudget = () => 0,
  ratePerWindow = 0,
  rateWindowMs = 60_000,
  fairLimits = NO_CAPS,
}: JobStoreDeps) {
  const reads = createJobReads({ redis, prefix: config.queuePrefix, fairLimits });
  const { layout } = reads;
  const analyses = QUEUES.analyses;
  const jobPrefix = `${layout.queueKey(analyses)}:`;
  const tombstoneSeconds = config.retention.tombstoneSeconds;
  const eventsMaxLen = config.eventsMaxLen;
  const fair = createFairShare({ redis, layout, limits: fairLimits, eventsMaxLen });

  function admitParams(
    tenant: string,
    id: string,
    idempotency: { keyHash: string; bodyHash: string } | undefined,
    inputBytes: number,
    { countRate, delayed }: { countRate: boolean; delayed: boolean },
  ): AdmitParams {
    return {
      tenant,
      id,
      idempotency,
      idempotencyTtlSeconds: Math.min(IDEMPOTENCY_TTL_SECONDS, tombstoneSeconds),
      backlogQuota,
      backlogTtlSeconds: tombstoneSeconds,
      settleMs,
      storageBudget: storageBudget(tenant),
      inputBytes,
      rateLimit: countRate ? ratePerWindow : 0,
      rateWindowMs,
      fair: delayed ? undefined : { limits: fairLimits, eventsMaxLen },
    };
  }

  /**
   * The add of an accepted job: BullMQ's job and its links, and `ENTER` with its key and arguments
   * (fair-share.ts), which enters it in its tenant's index, and a parked one in its tenant's lane,
   * in the script that adds it, so it is never stranded. With `placement` undefined, `ENTER` is
   * handed its place by admission in the same script (`submit`).
   */
  function additionOf(a: Omit<Accepted, 'placement'>, placement: Placement | undefined, now: number) {
    const parked = parks(placement) && !a.delayMs;
    const opts = jobOptionsFor(a.contract, { priority: a.priority, delayMs: a.delayMs });
    // The submit request's trace travels in the job and its delivery: the worker's spans join it.
    const metadata = traceMetadata();
    const telemetry = metadata ? { telemetry: { metadata } } : {};
    Object.assign(opts, telemetry);
    if (a.webhookUrl) opts.ignoreDependencyOnFailure = true;
    const job = { name: a.contract.name, data: jobData(a.tenant, a.input), opts, id: a.id, timestamp: now };
    const link = {
      ...(webhooks && a.webhookUrl ? { parent: { queue: webhooks, id: `${a.id}.webhook` } } : {}),
      // Parked: born in waiting-children, which only the fair-share dispatcher releases.
      ...(parked ? { asParent: true } : {}),
    };
    // Ids carry the time of the API that made them, keys expire on Redis' clock: trim a few
    // minutes late, so a replay never finds its key alive but its tombstone gone.
    const cutoff = `(job_${encodeTime(Math.max(0, now - tombstoneSeconds * 1000 - CLOCK_SKEW_MS), 10)}`;
    // The index outlives its newest entry by the tombstone's life and the longest delay.
    const enterAs = parked ? 'park' : (placement === 'solo' || placement === 'direct') && !a.delayMs ? placement : '';
    const enter = fair.enter(
      {
        tenant: a.tenant,
        id: a.id,
        placement: enterAs,
        priority: opts.priority ?? DEFAULT_PRIORITY,
        webhookUrl: a.webhookUrl,
      },
      { ttlSeconds: tombstoneSeconds + MAX_DELAY_SECONDS, trim: { cutoff, jobPrefix } },
    );
    return { job, link, enter, telemetry, parked };
  }

  /** What a job just accepted looks like, with no read: as `addition` stored it. */
  function acceptedSnapshot(
    a: Omit<Accepted, 'placement'>,
    placement: Placement | undefined,
    { job, parked }: ReturnType<typeof additionOf>,
    now: number,
  ): JobSnapshot {
    const { opts } = job;
    return {
      id: a.id,
      job: {
        name: a.contract.name,
        timestamp: now,
        processedOn: null,
        finishedOn: null,
        failedReason: null,
        attemptsMade: 0,
        attemptsMax: opts.attempts ?? 1,
        priority: opts.priority ?? DEFAULT_PRIORITY,
        progress: null,
        stalledCount: 0,
        cancelledAt: null,
        webhookUrl: a.webhookUrl ?? null,
        hasResult: false,
      },
      locked: false,
      delayed: (a.delayMs ?? 0) > 0,
      ...(parked ? { parked: placement === 'capped' ? ('tenant_concurrency' as const) : ('queue' as const) } : {}),
      ...(a.webhookUrl ? { deliveries: [] } : {}),
    };
  }

  /**
   * Whether each tenant's last job was parked: a submission's add is built for the place its
   * tenant's last one got, which admission in the same script most often chooses again. Bounded:
   * forgotten whole past 10,000 tenants.
   */
  const parkedLast = new Map<string, boolean>();

  async function accept(a: Accepted): Promise<JobSnapshot> {
    const now = Date.now();
    const addition = additionOf(a, a.placement, now);
    const { job, link, enter, telemetry, parked } = addition;
    let free: unknown;
    if (!a.webhookUrl) {
      free = await addWith(redis, queue, job, link, ...enter);
    } else {
      if (!webhooks) throw new Error('a webhook needs the webhooks queue');
      const delivery = {
        name: 'deliver',
        data: { jobId: a.id, tenant: a.tenant, type: a.contract.name, url: a.webhookUrl },
        opts: { ...webhookJobOptions(config.webhooks.backoffMs), ...telemetry },
        id: `${a.id}.webhook`,
      };
      const results = await execQueueMulti(queue, redis, async (multi) => {
        await addToMulti(multi, webhooks, delivery, { asParent: true });
        await addWithOnMulti(multi, queue, job, link, ...enter);
      });
      free = results[1]?.[1];
    }
    // A slot is free although someone waits (a job ended meanwhile): fill it now.
    if (parked && Number(free ?? 0) > 0) await fair.dispatch();
    return acceptedSnapshot(a, a.placement, addition, now);
  }

  return {
    ...reads,
    /** The fair-share dispatcher (fair-share.ts): each tenant's running and parked jobs, for metrics. */
    fair,

    /**
     * Admission alone: the rate limit, the Idempotency-Key, the storage budget and the backlog
     * quota, atomically (`ADMIT`). `new` means the id is claimed (and counted, with `inputBytes`
     * of storage); `accept` must follow. With `countRate: false` the rate limit neither counts nor
     * refuses (a replay finishing its job).
     */
    async admit(
      tenant: string,
      id: string,
      idempotency?: { keyHash: string; bodyHash: string },
      inputBytes = 0,
      { countRate = true, delayed = false }: { countRate?: boolean; delayed?: boolean } = {},
    ): Promise<Admission> {
      const params = admitParams(tenant, id, idempotency, inputBytes, { countRate, delayed });
      return admissionOf(await runAdmit(redis, layout, params), params.rateLimit);
    },

    /**
     * The job, its index entry and its place, in one script (BullMQ's add and ours: `addWith`,
     * bullmq-layout.ts), after `admit`; with a webhook, in one MULTI with its delivery (added as
     * the job's BullMQ parent) and its URL. Either all of it is stored or none: no orphan, no
     * phantom, whatever fails or times out. Adding an id that exists is a no-op (BullMQ keeps the
     * first).
     */
    accept,

    /**
     * A submission: `admit`, then, when it admits the job, `accept`. With no webhook, both run in
     * one script (`ADMIT_GATE`), one round trip, when the add was built for the place admission
     * chose; a job admitted elsewhere is added by a second. With a webhook (its delivery is added
     * in a MULTI), always two. The job is added only when admitted; `accepted` is absent otherwise.
     * With `countRate: false` the rate limit neither counts nor refuses (a replay finishing its job).
     */
    async submit(
      a: Omit<Accepted, 'placement'>,
      idempotency: { keyHash: string; bodyHash: string } | undefined,
      inputBytes: number,
      { countRate = true }: { countRate?: boolean } = {},
    ): Promise<{ admission: Admission; accepted?: JobSnapshot }> {
      const delayed = (a.delayMs ?? 0) > 0;
      const params = admitParams(a.tenant, a.id, idempotency, inputBytes, { countRate, delayed });
      let admission: Admission;
      if (a.webhookUrl) {
        admission = admissionOf(await runAdmit(redis, layout, params), params.rateLimit);
      } else {
        const now = Date.now();
        const guess: Placement | undefined = parkedLast.get(a.tenant) ? 'park' : undefined;
        const addition = additionOf(a, guess, now);
        const { job, link, enter, parked } = addition;
        // ENTER is handed its place by admission in the script: the one `additionOf` gave it is not read.
        const gated = await gatedAddWith(
          redis,
          [ADMIT_GATE, ...admitKeysAndArgs(layout, params), parked ? '1' : '0'],
          queue,
          job,
          link,
          ...enter,
        );
        admission = admissionOf(gated.gated as AdmitReply, params.rateLimit);
        // A delayed job is placed when it falls due: it says nothing of its tenant's next place.
        if (admission.kind === 'new' && !delayed) {
          if (parkedLast.size >= 10_000) parkedLast.clear();
          parkedLast.set(a.tenant, parks(admission.placement));
        }
        if (gated.added && admission.kind === 'new') {
          if (parked && Number(gated.reply ?? 0) > 0) await fair.dispatch();
          return { admission, accepted: acceptedSnapshot(a, admission.placement, addition, now) };
        }
      }
      if (admission.kind !== 'new') return { admission };
      return { admission, accepted: await accept({ ...a, placement: admission.placement }) };
    },

    /**
     * Cancels a job the tenant owns: flags it (the flag is the cancel; every reader sees it) and
     * frees its backlog place. A waiting or delayed job is then moved to the head of the queue,
     * where the next free worker fails it as `cancelled` without running it, so its webhook and
     * retention take the same path as every other finished job. An active job is told over
     * pub/sub; its worker also re-reads the flag.
     */
    async cancel(tenant: string, id: string): Promise<'cancelled' | 'finished' | 'gone'> {
      const outcome = (await evalScript(
        redis,
        CANCEL,
        5,
        layout.job(analyses, id),
        layout.backlog(tenant),
        layout.lock(analyses, id),
        layout.events(analyses),
        layout.fairLane(tenant),
        String(Date.now()),
        id,
        String(eventsMaxLen),
        jobPrefix,
      )) as 'active' | 'waiting' | 'finished' | 'gone';
      if (outcome === 'finished' || outcome === 'gone') return outcome;
      // A parent's unfinished children are cancelled with it (`ctx.spawn`).
      await cancelChildren({ redis, queue, layout, eventsMaxLen, tenant }, id);
      if (outcome === 'waiting') {
        const job = new Job(queue, '', {}, {}, id);
        await job.promote().catch(() => undefined); // not delayed: nothing to promote
        await job.changePriority({ priority: 0, lifo: true }).catch(() => undefined);
      }
      // Active, or taken by a worker meanwhile: its worker aborts it.
      await redis.publish(layout.cancelChannel, id);
      return 'cancelled';
    },
  };
}

export type JobStore = ReturnType<typeof createJobStore>;

/** Clock skew tolerated between API replicas and Redis when trimming tombstones. */
const CLOCK_SKEW_MS = 5 * 60_000;

/** The longest `delayMs` a submission may ask for (the index outlives it). */
export const MAX_DELAY_SECONDS = 30 * 86_400;

/**
 * How long a tenant's storage keys outlive their last write: past the longest a job can live
 * (retention is at most a year, the delay at most 30 days), so they never expire under a job.
 */
const STORAGE_KEYS_TTL_SECONDS = 366 * 86_400 + MAX_DELAY_SECONDS;

/** What an attempt starts from: the cancel flag, the checkpoint and the steps done, in one read. */
export interface AttemptStart {
  cancelled: boolean;
  /**
   * The job waits for its tenant's turn (fair-share.ts): it is parked already, in its tenant's
   * lane; the worker throws `WaitingChildrenError` and takes another job. Also set when the
   * worker no longer holds the job's lock (nothing was done then).
   */
  park: boolean;
  /** The checkpoint an earlier attempt saved (JSON text), if any. */
  checkpoint: string | null;
  /** The stored result (JSON text) of every step an earlier attempt completed, by step name. */
  steps: Map<string, string>;
}

/**
 * The start of an attempt: the cancel flag, the fair-share gate, the checkpoint, and the stored
 * result of every completed step (named by the step summary), in one round trip.
 *
 * The gate (fair-share.ts): a job the dispatcher handed out holds its tenant's share already and
 * runs. One that reached the wait list another way (a delay ran out, a schedule's run, a parent
 * whose children finished, a child of a fan-out) takes a share if its tenant is under its cap and
 * no tenant waits for a turn; otherwise it is parked, moved from active to waiting-children in
 * this same script (its worker then throws `WaitingChildrenError`, and BullMQ leaves it be). A
 * cancelled job runs nothing, so it passes.
 *
 * `fields` is the Lua expression of the job's cancel flag, checkpoint and steps, in that order,
 * each `false` when the job has none.
 */
const startLua = (fields: string) => `${fairLua(2)}
local f = ${fields}
local t, id = ARGV[9], ARGV[10]
-- Whether the job holds its share already (handed out by the dispatcher, or placed direct at its
-- admission), and its share taken if not, in one command: the entry is undone below if it must not be.
local held = redis.call('ZADD', fair_running(t), 'NX', now, id) == 0
-- Only a job handed out can be a spare: the dispatcher enters both, fair_revoke drops both.
if held then redis.call('ZREM', FP .. 'spares', fair_spare(t, id)) end
if f[1] then
  if not held then redis.call('ZREM', fair_running(t), id) end
  return { f[1], false, {}, 'run' }
end
if not held then
  -- A cap counts the shares in use without this one.
  local cap = fair_cap(t) > 0
  if cap then redis.call('ZREM', fair_running(t), id) end
  if fair_others_wait(t) or fair_capped(t) then
    if not cap then redis.call('ZREM', fair_running(t), id) end
    if not bull_park_active(Q, id, ARGV[12], now, maxlen) then return { false, false, {}, 'lost' } end
    fair_park(t, id, ARGV[11])
    return { false, false, {}, 'park' }
  end
  if cap then fair_take(t, id) else fair_served(t) end
end
local done = {}
if f[3] then
  local ok, steps = pcall(cjson.decode, f[3])
  if ok and type(steps) == 'table' then
    for _, step in ipairs(steps) do
      if step.status == 'completed' then
        local result = redis.call('HGET', KEYS[1], ARGV[1] .. step.name)
        if result then
          table.insert(done, step.name)
          table.insert(done, result)
        end
      end
    end
  end
end
return { f[1], f[2], done, 'run' }`;
const START = startLua(
  `redis.call('HMGET', KEYS[1], '${OWN_FIELDS.cancelledAt}', '${OWN_FIELDS.checkpoint}', '${OWN_FIELDS.steps}')`,
);

/**
 * `START` in the script by which BullMQ takes the job for a Worker (`startOnTake`). Its fields
 * come from the job's hash as BullMQ's take read it in that script (`taken_job`), not from a
 * command of their own; a field not there is `false`, as HMGET answers it.
 */
const START_TAKE = takeScriptOf(
  'start',
  startLua(
    `{ ${[OWN_FIELDS.cancelledAt, OWN_FIELDS.checkpoint, OWN_FIELDS.steps].map((f) => `taken_job['${f}'] or false`).join(', ')} }`,
  ),
);

/** START's replies that came with their jobs, kept until the attempt reads them: at most this many. */
const TAKEN_STARTS_MAX = 1_000;

/**
 * One transition of a durable step, atomic with the step summary. ARGV: name, status (`running`,
 * `completed`, `failed`), attempt, now, step limit, result field, result JSON (when completed).
 * A step already completed stays as it is, and its stored result is returned: the first stored
 * result wins, whichever worker stored it, so a step's result is stored exactly once.
 */
const STEP = `
if redis.call('EXISTS', KEYS[1]) == 0 then return { 'gone' } end
local raw = redis.call('HGET', KEYS[1], '${OWN_FIELDS.steps}')
local steps = {}
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then steps = decoded end
end
local entry
for _, step in ipairs(steps) do
  if step.name == ARGV[1] then entry = step end
end
if entry and entry.status == 'completed' then
  local stored = redis.call('HGET', KEYS[1], ARGV[6])
  if stored then return { 'completed', stored } end
end
if not entry then
  if #steps >= tonumber(ARGV[5]) then return { 'too_many' } end
  entry = { name = ARGV[1] }
  table.insert(steps, entry)
end
entry.status = ARGV[2]
entry.attempt = tonumber(ARGV[3])
if ARGV[2] == 'running' then
  entry.startedAt = tonumber(ARGV[4])
  entry.finishedAt = nil
else
  entry.startedAt = entry.startedAt or tonumber(ARGV[4])
  entry.finishedAt = tonumber(ARGV[4])
end
if ARGV[2] == 'completed' then redis.call('HSET', KEYS[1], ARGV[6], ARGV[7]) end
redis.call('HSET', KEYS[1], '${OWN_FIELDS.steps}', cjson.encode(steps))
return { 'ok' }`;

/** How an attempt ended, for `finish`. */
export interface AttemptEnd {
  /** The result's bytes, counted against the tenant's storage budget. */
  resultBytes?: number | undefined;
  /** The job completed or failed for good: it leaves its tenant's backlog. */
  done?: boolean;
}

/** What a step transition found: done, the job gone, the step limit reached, or a result already stored. */
export type StepWrite =
  | { kind: 'ok' }
  | { kind: 'gone' }
  | { kind: 'too_many' }
  | { kind: 'completed'; result: string };

/**
 * The worker's side of the job store: what an attempt reads when it starts, its checkpoints, its
 * durable steps and the cancel flag. Checkpoint and steps are fields of BullMQ's job hash, so they
 * can never outlive the job.
 */
export function createJobRunStore({
  redis,
  prefix,
  fairLimits = NO_CAPS,
  eventsMaxLen = 10_000,
}: {
  redis: RedisConnection;
  prefix: string;
  /** Caps on each tenant's active jobs (`TENANT_MAX_ACTIVE`); none by default. */
  fairLimits?: FairLimits;
  /** The length the fair-share dispatcher trims the events stream to, as BullMQ does. */
  eventsMaxLen?: number;
}) {
  const layout = layoutFor(prefix);
  const key = (id: string) => layout.job(QUEUES.analyses, id);
  const fair = createFairShare({ redis, layout, limits: fairLimits, eventsMaxLen });

  /** START's replies taken with their jobs, by job id, until the attempt reads them. */
  const taken = new Map<string, unknown>();
  const startArgs = () => [STEP_RESULT_FIELD_PREFIX, ...fairArgs(layout, fairLimits, eventsMaxLen)];

  /** `FINISH`'s keys and arguments. */
  function finishing(tenant: string, id: string, slot: SlotFreed, { resultBytes, done = false }: AttemptEnd) {
    return {
      keys: [layout.fairReady, layout.storageBytes(tenant), layout.backlog(tenant)],
      args: [
        ...fairArgs(layout, fairLimits, eventsMaxLen),
        ...freedArgs(tenant, id, slot),
        resultBytes === undefined ? '' : String(resultBytes),
        String(STORAGE_KEYS_TTL_SECONDS),
        done ? '1' : '',
      ],
    };
  }

  async function writeStep(
    id: string,
    name: string,
    status: 'running' | 'completed' | 'failed',
    attempt: number,
    resultJson = '',
  ): Promise<StepWrite> {
    const reply = (await evalScript(
      redis,
      STEP,
      1,
      key(id),
      name,
      status,
      String(attempt),
      String(Date.now()),
      String(MAX_STEPS_PER_JOB),
      stepResultField(name),
      resultJson,
    )) as [string, string?];
    if (reply[0] === 'completed') return { kind: 'completed', result: reply[1] ?? 'null' };
    if (reply[0] === 'gone' || reply[0] === 'too_many') return { kind: reply[0] };
    return { kind: 'ok' };
  }

  return {
    layout,
    /**
     * Counts the input of a job the API did not admit (a schedule's run) against its tenant's
     * storage budget, through the same `ADMIT` script as a submission; `false` when the budget
     * is full (nothing is counted then).
     */
    async chargeInput(tenant: string, id: string, bytes: number, budget: number): Promise<boolean> {
      if (budget <= 0) return true;
      const [kind] = await runAdmit(redis, layout, {
        tenant,
        id,
        idempotencyTtlSeconds: 0,
        backlogQuota: 0,
        backlogTtlSeconds: 0,
        settleMs: 10_000,
        storageBudget: budget,
        inputBytes: bytes,
        rateLimit: 0,
        rateWindowMs: 0,
      });
      return kind !== 'storage_full';
    },
    /**
     * An attempt ends: its worker slot is handed on (see `SlotFreed`); with `resultBytes` its
     * result is counted against the tenant's storage budget; with `done` (the job completed or
     * failed for good) its place in the tenant's backlog is freed. Not awaited by the caller when
     * BullMQ's completion must follow it in order on the connection.
     */
    finish(tenant: string, id: string, slot: SlotFreed, end: AttemptEnd = {}): Promise<unknown> {
      const { keys, args } = finishing(tenant, id, slot, end);
      return evalScript(redis, FINISH, keys.length, ...keys, ...args);
    },
    /**
     * As `finish`, sent inside BullMQ's completion of the job, in one script with it
     * (`rideOnCompletion`, bullmq-layout.ts): call as the processor returns a result. When BullMQ
     * does not complete the job within this turn of the event loop, `alone` is called instead,
     * and must call `finish`.
     */
    finishOnCompletion(tenant: string, id: string, slot: SlotFreed, end: AttemptEnd, alone: () => void): void {
      const { keys, args } = finishing(tenant, id, slot, end);
      rideOnCompletion(redis, FINISH_RIDE, id, keys, args, alone);
    },
    /**
     * Reads what the attempt of `id` (of `tenant`, at `priority`, held with the lock `token`)
     * starts from, and passes the fair-share gate.
     */
    async start(id: string, tenant: string, priority: number, token = '0'): Promise<AttemptStart> {
      const early = taken.get(id);
      if (early !== undefined) taken.delete(id);
      const [cancelledAt, checkpoint, done, gate] = (early ??
        (await evalScript(redis, START, 1, key(id), ...startArgs(), tenant, id, String(priority), token))) as [
        string | null,
        string | null,
        string[],
        string,
      ];
      const steps = new Map<string, string>();
      for (let i = 0; i + 1 < done.length; i += 2) steps.set(done[i] as string, done[i + 1] as string);
      return { cancelled: Boolean(cancelledAt), park: gate !== 'run', checkpoint: checkpoint ?? null, steps };
    },
    /**
     * From now on, `START` runs in the script by which BullMQ takes each job of the analyses
     * queue for the Worker on this connection (`startOnTake`, bullmq-layout.ts), and `start` reads
     * its reply instead of sending it: one round trip less before an attempt runs. `false` until
     * the Worker's connection is ready.
     */
    startOnTake(): boolean {
      return startOnTake(redis, layout.wait(QUEUES.analyses), START_TAKE, startArgs, (id, reply) => {
        taken.set(id, reply);
        // A job taken but never started (it stalled too often, and BullMQ failed it without
        // running it) leaves its reply here: the oldest go first.
        if (taken.size > TAKEN_STARTS_MAX) taken.delete(taken.keys().next().value ?? '');
      });
    },
    /** The fair-share dispatcher, for slots freed and worker heartbeats. */
    fair,
    /** Of `ids`, those whose cancel flag is set, read in one round trip. */
    async cancelledAmong(ids: readonly string[]): Promise<string[]> {
      const pipeline = redis.pipeline();
      for (const id of ids) pipeline.hexists(key(id), OWN_FIELDS.cancelledAt);
      const replies = (await pipeline.exec()) ?? [];
      return ids.filter((_, i) => replies[i]?.[1] === 1);
    },
    async saveCheckpoint(id: string, json: string): Promise<void> {
      await redis.hset(key(id), OWN_FIELDS.checkpoint, json);
    },
    /** Drops the checkpoint of a job that ended; a no-op when retention already removed the job. */
    async clearCheckpoint(id: string): Promise<void> {
      await redis.hdel(key(id), OWN_FIELDS.checkpoint);
    },
    /** Marks a step running in `attempt`; `completed` if an earlier run already stored its result. */
    stepStarted(id: string, name: string, attempt: number): Promise<StepWrite> {
      return writeStep(id, name, 'running', attempt);
    },
    /** Stores a step's result, unless one is stored already: then that one is returned, and wins. */
    stepCompleted(id: string, name: string, attempt: number, resultJson: string): Promise<StepWrite> {
      return writeStep(id, name, 'completed', attempt, resultJson);
    },
    /** Marks a step failed in `attempt` (a later attempt runs it again). */
    stepFailed(id: string, name: string, attempt: number): Promise<StepWrite> {
      return writeStep(id, name, 'failed', attempt);
    },
  };
}

export type JobRunStore = ReturnType<typeof createJobRunStore>;
