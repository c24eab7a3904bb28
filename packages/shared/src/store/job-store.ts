import { createHash } from 'node:crypto';
import type { JobsOptions, Queue } from 'bullmq';
import { Job } from 'bullmq';
import { encodeTime } from 'ulid';
import type { AnalysisContract } from '../analysis.ts';
import type { Config } from '../config.ts';
import type { JobFields, JobSnapshot } from '../job-view.ts';
import type { RedisConnection } from '../redis.ts';
import { decodeResult, isStoredResult } from '../result-codec.ts';
import { traceMetadata } from '../telemetry.ts';
import { parseDeliveries, webhookJobOptions } from '../webhook-delivery.ts';
import {
  addToMulti,
  hsetOnMulti,
  type Layout,
  layoutFor,
  NO_RESULT_LENGTH,
  OWN_FIELDS,
  QUEUES,
  queueMulti,
  STATUS_FIELDS,
} from './bullmq-layout.ts';

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
}

/** The one way to build a job's data, so `tenant` is always its first key. */
export function jobData(tenant: string, input: unknown): JobData {
  return { tenant, input };
}

/** BullMQ options of a new analysis job: retries with jittered exponential backoff. */
export function jobOptionsFor(
  contract: AnalysisContract,
  { priority, delayMs }: { priority?: number | undefined; delayMs?: number | undefined },
): Omit<JobsOptions, 'jobId'> {
  return {
    priority: priority ?? DEFAULT_PRIORITY,
    delay: delayMs ?? 0,
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
 * in the tenant's index answers `gone` (410).
 */
const SNAPSHOT = `
local data = redis.call('HGET', KEYS[1], 'data')
if not data then
  if redis.call('ZSCORE', KEYS[4], ARGV[1]) then return 'gone' end
  return 'none'
end
if string.match(data, '^{"tenant":"([%w_%-]*)"') ~= ARGV[2] then return 'none' end
local f = redis.call('HMGET', KEYS[1], unpack(ARGV, 3))
local deliveries = {}
if f[#f] then deliveries = redis.call('LRANGE', KEYS[5], 0, -1) end
return { f, redis.call('HSTRLEN', KEYS[1], 'returnvalue'), redis.call('EXISTS', KEYS[2]),
  redis.call('ZSCORE', KEYS[3], ARGV[1]) or false, deliveries }`;

/**
 * Admission of a submission, atomic: the tenant's rate limit counts it (one fixed window per
 * tenant, shared by every API replica) and refuses it past the limit; an Idempotency-Key already
 * used answers with the job it names; a full backlog refuses; otherwise the key is claimed for the
 * new id. Every answer ends with the window's count and time left. The backlog's oldest
 * entries are checked on the way and dropped once their job has finished or gone, so the set
 * follows the real backlog; when it looks full, up to 200 of them are checked.
 */
const ADMIT = `
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
local limit, hits, ttl = tonumber(ARGV[10]), 0, 0
if limit > 0 then
  hits = redis.call('INCR', KEYS[3])
  if hits == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[11]) end
  ttl = redis.call('PTTL', KEYS[3])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[3], ARGV[11]); ttl = tonumber(ARGV[11]) end
  if hits > limit then return { 'rate', limit, hits, ttl } end
end
if ARGV[6] == '1' then
  local v = redis.call('GET', KEYS[1])
  if v then return { 'replay', v, hits, ttl } end
end
local quota = tonumber(ARGV[4])
if quota > 0 then
  repair(2)
  redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  if redis.call('ZCARD', KEYS[2]) > quota then
    repair(200)
    if redis.call('ZCARD', KEYS[2]) > quota then
      redis.call('ZREM', KEYS[2], ARGV[1])
      return { 'full', quota, hits, ttl }
    end
  end
end
if ARGV[6] == '1' then
  redis.call('SET', KEYS[1], cjson.encode({ id = ARGV[1], bodyHash = ARGV[2] }), 'EX', ARGV[3])
end
return { 'ok', '', hits, ttl }`;

/**
 * Drops index entries older than the tombstone's life, but only those whose job is gone: an
 * entry never expires while its job exists, whatever its delay and retention.
 */
const TRIM_INDEX = `
local old = redis.call('ZRANGEBYLEX', KEYS[1], '-', ARGV[1], 'LIMIT', 0, 4)
for _, id in ipairs(old) do
  if redis.call('EXISTS', ARGV[2] .. id) == 0 then redis.call('ZREM', KEYS[1], id) end
end
return 0`;

/**
 * Flags a job cancelled, unless it is gone or already finished, and frees its backlog place. A job
 * no worker holds gets a `cancelled` entry in the queue's events stream (live streams end on it).
 */
const CANCEL = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('HEXISTS', KEYS[1], 'finishedOn') == 1 then return 'finished' end
redis.call('HSETNX', KEYS[1], '${OWN_FIELDS.cancelledAt}', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then return 'active' end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'event', 'cancelled', 'jobId', ARGV[2])
return 'waiting'`;

/** The tenant's rate-limit window after this submission was counted. */
export interface RateWindow {
  limit: number;
  hits: number;
  /** Time left in the window. */
  resetMs: number;
}

/** SHA-1 of each script, computed once. */
const scriptShas = new Map<string, string>();

/**
 * EVALSHA, falling back to EVAL when Redis does not know the script (after a restart or SCRIPT
 * FLUSH): our scripts run on every submit and status read, and sending their text each time costs
 * bytes on the wire and a SHA-1 in Redis per call. Not ioredis' `defineCommand`: it would add the
 * scripts to every pipeline this connection builds.
 */
async function evalScript(
  redis: RedisConnection,
  script: string,
  numKeys: number,
  ...args: string[]
): Promise<unknown> {
  let sha = scriptShas.get(script);
  if (!sha) {
    sha = createHash('sha1').update(script).digest('hex');
    scriptShas.set(script, sha);
  }
  try {
    return await redis.evalsha(sha, numKeys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return redis.eval(script, numKeys, ...args);
  }
}

export type Admission = (
  | { kind: 'new' }
  | { kind: 'replay'; id: string; bodyHash: string }
  | { kind: 'backlog_full'; quota: number }
  | { kind: 'rate_limited' }
) & {
  /** Absent when the rate limit is off, or the submission was not counted. */
  rate?: RateWindow;
};

export type Owned = { kind: 'job'; snapshot: JobSnapshot } | { kind: 'gone' } | { kind: 'none' };

export interface Accepted {
  tenant: string;
  id: string;
  contract: AnalysisContract;
  input: unknown;
  priority?: number | undefined;
  delayMs?: number | undefined;
  webhookUrl?: string | undefined;
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
}

function num(v: string | null | undefined): number | null {
  return v ? Number(v) : null;
}

function parseFields(values: (string | null)[], resultLength: number): JobFields {
  const [name, timestamp, processedOn, finishedOn, failedReason, atm, progress, opts, , stc, lhc, lhw] = values;
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
    cancelledAt: num(lhc),
    webhookUrl: lhw || null,
    hasResult: resultLength > NO_RESULT_LENGTH,
  };
}

type SnapshotReply = 'gone' | 'none' | [(string | null)[], number, number, string | null, string[]];

/** Reads of a job's state, for the API, the event stream and webhook deliveries. */
export function createJobReads({ redis, prefix }: { redis: RedisConnection; prefix: string }) {
  const layout: Layout = layoutFor(prefix);
  const analyses = QUEUES.analyses;

  function ownedFrom(id: string, reply: SnapshotReply): Owned {
    if (reply === 'gone' || reply === 'none') return { kind: reply };
    const [values, resultLength, locked, delayed, deliveries] = reply;
    const job = parseFields(values, Number(resultLength));
    return {
      kind: 'job',
      snapshot: {
        id,
        job,
        locked: Number(locked) === 1,
        delayed: delayed !== null,
        ...(job.webhookUrl ? { deliveries: parseDeliveries(deliveries) } : {}),
      },
    };
  }

  function snapshotArgs(tenant: string, id: string): (string | number)[] {
    return [
      5,
      layout.job(analyses, id),
      layout.lock(analyses, id),
      layout.delayed(analyses),
      layout.tenantJobs(tenant),
      layout.webhookDeliveries(id),
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
      return ownedFrom(id, reply as SnapshotReply);
    });
  }

  return {
    layout,
    /** The job if the tenant owns it; `gone` once retention removed it (410); `none` otherwise (404). */
    async snapshot(tenant: string, id: string): Promise<Owned> {
      const [numKeys, ...args] = snapshotArgs(tenant, id) as [number, ...string[]];
      const reply = (await evalScript(redis, SNAPSHOT, numKeys, ...args)) as SnapshotReply;
      return ownedFrom(id, reply);
    },
    snapshots,

    /** The stored result of a completed job, decompressed. */
    async result(id: string): Promise<unknown> {
      const raw = await redis.hget(layout.job(analyses, id), 'returnvalue');
      if (raw === null) return undefined;
      const stored: unknown = JSON.parse(raw);
      return isStoredResult(stored) ? decodeResult(stored) : stored;
    },

    /** The stored result of a completed job as BullMQ keeps it (JSON bytes), for streaming. */
    async storedResult(id: string): Promise<Buffer | null> {
      return redis.hgetBuffer(layout.job(analyses, id), 'returnvalue');
    },

    /** A page of the tenant's job ids, newest first, before `cursor` (an id). */
    async listIds(tenant: string, cursor: string | undefined, count: number): Promise<string[]> {
      return redis.zrevrangebylex(layout.tenantJobs(tenant), cursor ? `(${cursor}` : '+', '-', 'LIMIT', 0, count);
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
  ratePerWindow = 0,
  rateWindowMs = 60_000,
}: JobStoreDeps) {
  const reads = createJobReads({ redis, prefix: config.queuePrefix });
  const { layout } = reads;
  const analyses = QUEUES.analyses;
  const jobPrefix = `${layout.queueKey(analyses)}:`;
  const tombstoneSeconds = config.retention.tombstoneSeconds;
  const eventsMaxLen = config.eventsMaxLen;

  return {
    ...reads,

    /**
     * First round trip of a submission: the rate limit, the Idempotency-Key and the backlog quota,
     * atomically. `new` means the id is claimed (and counted); `accept` must follow. With
     * `countRate: false` the rate limit neither counts nor refuses (a replay finishing its job).
     */
    async admit(
      tenant: string,
      id: string,
      idempotency?: { keyHash: string; bodyHash: string },
      { countRate = true }: { countRate?: boolean } = {},
    ): Promise<Admission> {
      const idemKey = idempotency ? layout.idempotency(tenant, idempotency.keyHash) : layout.backlog(tenant);
      const limit = countRate ? ratePerWindow : 0;
      const reply = (await evalScript(
        redis,
        ADMIT,
        3,
        idemKey,
        layout.backlog(tenant),
        layout.rate(tenant),
        id,
        idempotency?.bodyHash ?? '',
        String(Math.min(IDEMPOTENCY_TTL_SECONDS, tombstoneSeconds)),
        String(backlogQuota),
        String(Date.now()),
        idempotency ? '1' : '0',
        String(tombstoneSeconds),
        jobPrefix,
        String(settleMs),
        String(limit),
        String(rateWindowMs),
      )) as [string, string | number, number, number];
      const [kind, value, hits, ttl] = reply;
      const rate = limit > 0 ? { rate: { limit, hits: Number(hits), resetMs: Number(ttl) } } : {};
      if (kind === 'rate') return { kind: 'rate_limited', ...rate };
      if (kind === 'replay') {
        const earlier = JSON.parse(String(value)) as { id?: string; bodyHash?: string };
        return { kind: 'replay', id: earlier.id ?? '', bodyHash: earlier.bodyHash ?? '', ...rate };
      }
      if (kind === 'full') return { kind: 'backlog_full', quota: Number(value), ...rate };
      return { kind: 'new', ...rate };
    },

    /**
     * Second round trip: the job, its webhook delivery (as the job's BullMQ parent), its index
     * entry and flags, in one MULTI. Either all of it is stored or none: no orphan, no phantom,
     * whatever fails or times out. Adding an id that exists is a no-op (BullMQ keeps the first).
     */
    async accept(a: Accepted): Promise<JobSnapshot> {
      const now = Date.now();
      const multi = await queueMulti(queue);
      const opts = jobOptionsFor(a.contract, { priority: a.priority, delayMs: a.delayMs });
      const parentId = `${a.id}.webhook`;
      // The submit request's trace travels in the job and its delivery: the worker's spans join it.
      const metadata = traceMetadata();
      const telemetry = metadata ? { telemetry: { metadata } } : {};
      Object.assign(opts, telemetry);
      if (a.webhookUrl) {
        if (!webhooks) throw new Error('a webhook needs the webhooks queue');
        opts.ignoreDependencyOnFailure = true;
        await addToMulti(
          multi,
          webhooks,
          {
            name: 'deliver',
            data: { jobId: a.id, tenant: a.tenant, type: a.contract.name, url: a.webhookUrl },
            opts: { ...webhookJobOptions(config.webhooks.backoffMs), ...telemetry },
            id: parentId,
          },
          { asParent: true },
        );
      }
      await addToMulti(
        multi,
        queue,
        { name: a.contract.name, data: jobData(a.tenant, a.input), opts, id: a.id },
        webhooks && a.webhookUrl ? { parent: { queue: webhooks, id: parentId } } : {},
      );
      if (a.webhookUrl) hsetOnMulti(multi, layout.job(analyses, a.id), OWN_FIELDS.webhookUrl, a.webhookUrl);
      const index = layout.tenantJobs(a.tenant);
      const cutoff = `(job_${encodeTime(Math.max(0, now - tombstoneSeconds * 1000), 10)}`;
      multi
        .zadd(index, 0, a.id)
        // The index outlives its newest entry by the tombstone's life and the longest delay.
        .expire(index, tombstoneSeconds + MAX_DELAY_SECONDS)
        .eval(TRIM_INDEX, 1, index, cutoff, jobPrefix);
      const results = (await multi.exec()) ?? [];
      for (const [err] of results) if (err) throw err;
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
        ...(a.webhookUrl ? { deliveries: [] } : {}),
      };
    },

    /**
     * Cancels a job the tenant owns: flags it (the flag is the cancel; every reader sees it) and
     * frees its backlog place. A waiting or delayed job is then moved to the head of the queue,
     * where the next free worker fails it as `cancelled` without running it, so its webhook and
     * retention take the same path as every other finished job. An active job is told over
     * pub/sub; its worker also re-reads the flag.
     */
    async cancel(tenant: string, id: string): Promise<'cancelled' | 'finished' | 'gone'> {
      const outcome = (await redis.eval(
        CANCEL,
        4,
        layout.job(analyses, id),
        layout.backlog(tenant),
        layout.lock(analyses, id),
        layout.events(analyses),
        String(Date.now()),
        id,
        String(eventsMaxLen),
      )) as 'active' | 'waiting' | 'finished' | 'gone';
      if (outcome === 'finished' || outcome === 'gone') return outcome;
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

/** The longest `delayMs` a submission may ask for (the index outlives it). */
export const MAX_DELAY_SECONDS = 30 * 86_400;

/** What an attempt starts from: the cancel flag and the checkpoint, in one read. */
export interface AttemptStart {
  cancelled: boolean;
  /** The checkpoint an earlier attempt saved (JSON text), if any. */
  checkpoint: string | null;
}

/**
 * The worker's side of the job store: what an attempt reads when it starts, its checkpoints and
 * the cancel flag. The checkpoint is a field of BullMQ's job hash, so it can never outlive the job.
 */
export function createJobRunStore({ redis, prefix }: { redis: RedisConnection; prefix: string }) {
  const layout = layoutFor(prefix);
  const key = (id: string) => layout.job(QUEUES.analyses, id);
  return {
    layout,
    async start(id: string): Promise<AttemptStart> {
      const [cancelledAt, checkpoint] = await redis.hmget(key(id), OWN_FIELDS.cancelledAt, OWN_FIELDS.checkpoint);
      return { cancelled: Boolean(cancelledAt), checkpoint: checkpoint ?? null };
    },
    async isCancelled(id: string): Promise<boolean> {
      return (await redis.hexists(key(id), OWN_FIELDS.cancelledAt)) === 1;
    },
    async saveCheckpoint(id: string, json: string): Promise<void> {
      await redis.hset(key(id), OWN_FIELDS.checkpoint, json);
    },
    /** Drops the checkpoint of a job that ended; a no-op when retention already removed the job. */
    async clearCheckpoint(id: string): Promise<void> {
      await redis.hdel(key(id), OWN_FIELDS.checkpoint);
    },
  };
}

export type JobRunStore = ReturnType<typeof createJobRunStore>;
