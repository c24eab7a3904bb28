import type { Queue } from 'bullmq';
import type { AnalysisContract } from '../analysis.ts';
import type { RedisConnection } from '../redis.ts';
import { type Layout, layoutFor, OWN_FIELDS, QUEUES } from './bullmq-layout.ts';
import { jobData, jobOptionsFor } from './job-store.ts';

/**
 * A schedule's state has two homes. BullMQ holds the job scheduler (id = schedule id), which adds
 * each run as an ordinary job of the tenant, exactly once whatever the number of replicas. Our
 * small hash `lh:schedule:{id}` holds what BullMQ does not: the owner, the timing and template
 * (so a paused schedule, which has no scheduler, keeps them), the overlap policy and the counters
 * the workers keep. This module is the only reader and writer of both.
 */

export type Overlap = 'skip' | 'queue';

/** When a schedule fires: a cron expression or a fixed interval, with optional bounds. */
export interface ScheduleTiming {
  cron?: string | undefined;
  everyMs?: number | undefined;
  timezone?: string | undefined;
  /** Epoch ms. */
  startAt?: number | undefined;
  /** Epoch ms. */
  endAt?: number | undefined;
  /** Runs at most, counted from creation (or from the last change of timing). */
  limit?: number | undefined;
}

export interface ScheduleDef {
  type: string;
  input: unknown;
  timing: ScheduleTiming;
  priority?: number | undefined;
  overlap: Overlap;
  paused: boolean;
}

export interface ScheduleRecord extends ScheduleDef {
  id: string;
  tenant: string;
  createdAt: number;
  runs: number;
  skipped: number;
  lastRun: { id: string; startedAt: number } | null;
  /** Due time of the next run, from BullMQ's scheduler; null when paused or finished. */
  nextRunAt: number | null;
}

/** Claims a place under the tenant's schedule quota and writes the schedule's hash, atomically. */
const CREATE = `
local quota = tonumber(ARGV[1])
if quota > 0 and redis.call('ZCARD', KEYS[1]) >= quota then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
return 1`;

/**
 * The start of a run, in one step: a run already started (a retry, or a stalled run picked up
 * again) runs on; a run of a deleted schedule is skipped; with overlap `skip`, a run whose
 * schedule's last started run still holds its lock is skipped and counted; a run that would take
 * the tenant past its backlog quota is skipped and counted (finished entries among the 200 oldest
 * are dropped first, as the API's admission does); otherwise the run takes a backlog place, is
 * counted, recorded as the schedule's last, and added to its run list. The run list's two oldest
 * entries are dropped on the way when retention removed their job, so it stays bounded.
 */
const START_RUN = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
local active = redis.call('HGET', KEYS[1], 'active')
if active == ARGV[1] then return 'run' end
local jobs = ARGV[3]
local old = redis.call('ZRANGE', KEYS[2], 0, 1)
for _, id in ipairs(old) do
  if redis.call('EXISTS', jobs .. id) == 0 then redis.call('ZREM', KEYS[2], id) end
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
if active and redis.call('HGET', KEYS[1], 'overlap') == 'skip'
  and redis.call('EXISTS', jobs .. active .. ':lock') == 1 then
  redis.call('HINCRBY', KEYS[1], 'skipped', 1)
  return 'skip'
end
local quota = tonumber(ARGV[4])
if quota > 0 then
  if redis.call('ZCARD', KEYS[3]) >= quota then
    local oldest = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[6]), 'LIMIT', 0, 200)
    for _, id in ipairs(oldest) do
      local k = jobs .. id
      if redis.call('EXISTS', k) == 0 or redis.call('HEXISTS', k, 'finishedOn') == 1
        or redis.call('HEXISTS', k, '${OWN_FIELDS.cancelledAt}') == 1 then
        redis.call('ZREM', KEYS[3], id)
      end
    end
  end
  if redis.call('ZCARD', KEYS[3]) >= quota then
    redis.call('HINCRBY', KEYS[1], 'skipped', 1)
    return 'full'
  end
  redis.call('ZADD', KEYS[3], 'NX', ARGV[2], ARGV[1])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
redis.call('HINCRBY', KEYS[1], 'runs', 1)
redis.call('HSET', KEYS[1], 'active', ARGV[1], 'lastRunId', ARGV[1], 'lastRunAt', ARGV[2])
return 'run'`;

function toHash(tenant: string, def: ScheduleDef): string[] {
  return [
    'tenant',
    tenant,
    'type',
    def.type,
    'input',
    JSON.stringify(def.input ?? null),
    'timing',
    JSON.stringify(def.timing),
    'priority',
    def.priority === undefined ? '' : String(def.priority),
    'overlap',
    def.overlap,
    'paused',
    def.paused ? '1' : '0',
  ];
}

function fromHash(id: string, h: Record<string, string>, next: string | null): ScheduleRecord {
  const paused = h.paused === '1';
  return {
    id,
    tenant: h.tenant ?? '',
    type: h.type ?? '',
    input: JSON.parse(h.input ?? 'null'),
    timing: JSON.parse(h.timing ?? '{}') as ScheduleTiming,
    priority: h.priority ? Number(h.priority) : undefined,
    overlap: h.overlap === 'queue' ? 'queue' : 'skip',
    paused,
    createdAt: Number(h.createdAt ?? 0),
    runs: Number(h.runs ?? 0),
    skipped: Number(h.skipped ?? 0),
    lastRun: h.lastRunId ? { id: h.lastRunId, startedAt: Number(h.lastRunAt ?? 0) } : null,
    nextRunAt: paused || next === null ? null : Number(next),
  };
}

export interface ScheduleStoreDeps {
  redis: RedisConnection;
  /** The analyses queue: its job schedulers make the runs. */
  queue: Queue;
  prefix: string;
  /** Schedules a tenant may have at once; 0 turns the quota off. */
  quota: number;
}

/** The API's side of schedules: create, read, change and delete, with the tenant check. */
export function createScheduleStore({ redis, queue, prefix, quota }: ScheduleStoreDeps) {
  const layout: Layout = layoutFor(prefix);
  const schedulers = layout.jobSchedulers(QUEUES.analyses);

  /** Adds or replaces the BullMQ job scheduler from the schedule's definition; removes it when paused. */
  async function syncScheduler(tenant: string, id: string, def: ScheduleDef, contract: AnalysisContract, done: number) {
    if (def.paused) {
      await queue.removeJobScheduler(id);
      return;
    }
    const { cron, everyMs, timezone, startAt, endAt, limit } = def.timing;
    // BullMQ counts iterations from the scheduler's creation; a resumed one gets what is left.
    const left = limit === undefined ? undefined : limit - done;
    if (left !== undefined && left <= 0) {
      await queue.removeJobScheduler(id);
      return;
    }
    // No delay: the scheduler decides when each run is due.
    const opts = jobOptionsFor(contract, { priority: def.priority });
    await queue.upsertJobScheduler(
      id,
      {
        ...(cron ? { pattern: cron } : { every: everyMs }),
        ...(timezone ? { tz: timezone } : {}),
        ...(startAt ? { startDate: startAt } : {}),
        ...(endAt ? { endDate: endAt } : {}),
        ...(left !== undefined ? { limit: left } : {}),
      },
      { name: def.type, data: jobData(tenant, def.input, { scheduleId: id }), opts },
    );
  }

  async function read(ids: string[]): Promise<(ScheduleRecord | null)[]> {
    if (ids.length === 0) return [];
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.hgetall(layout.schedule(id)).zscore(schedulers, id);
    const results = (await pipeline.exec()) ?? [];
    return ids.map((id, i) => {
      const [err, hash] = results[2 * i] ?? [new Error('no reply')];
      const [err2, next] = results[2 * i + 1] ?? [new Error('no reply')];
      if (err || err2) throw err ?? err2;
      const h = hash as Record<string, string>;
      return h.tenant ? fromHash(id, h, next as string | null) : null;
    });
  }

  async function own(tenant: string, id: string): Promise<ScheduleRecord | null> {
    const [record] = await read([id]);
    return record && record.tenant === tenant ? record : null;
  }

  return {
    layout,
    /** The schedule, if the tenant owns it (another tenant's answers like a missing one). */
    get: own,

    /** Creates the schedule and its scheduler; `full` when the tenant is at its quota. */
    async create(
      tenant: string,
      id: string,
      def: ScheduleDef,
      contract: AnalysisContract,
    ): Promise<ScheduleRecord | 'full'> {
      const now = Date.now();
      const created = await redis.eval(
        CREATE,
        2,
        layout.tenantSchedules(tenant),
        layout.schedule(id),
        String(quota),
        String(now),
        id,
        ...toHash(tenant, def),
        'createdAt',
        String(now),
      );
      if (Number(created) === 0) return 'full';
      try {
        await syncScheduler(tenant, id, def, contract, 0);
      } catch (err) {
        // No scheduler, no schedule: undo the claim, so the quota and the list stay true.
        await redis
          .multi()
          .del(layout.schedule(id))
          .zrem(layout.tenantSchedules(tenant), id)
          .exec()
          .catch(() => undefined);
        throw err;
      }
      return (await own(tenant, id)) ?? 'full';
    },

    /**
     * A page of the tenant's schedules, oldest first: up to `count` after `cursor` (a page's
     * `nextCursor`), and the cursor of the page after it, null on the last one. A cursor is the
     * last schedule's place in the tenant's set (`{score}:{id}`, ties ordered by id as Redis
     * orders them), so a page goes on where the last one ended even when that schedule is gone.
     */
    async list(
      tenant: string,
      cursor: string | undefined,
      count: number,
    ): Promise<{ records: ScheduleRecord[]; nextCursor: string | null }> {
      const key = layout.tenantSchedules(tenant);
      const after = cursor === undefined ? null : parseScheduleCursor(cursor);
      const entries: { id: string; score: number }[] = [];
      // One more than the page, to know whether another follows. Schedules created in the same
      // millisecond as the cursor's share its score: those up to it are skipped.
      for (let offset = 0; entries.length <= count; ) {
        const batch = await redis.zrangebyscore(
          key,
          after ? after.score : '-inf',
          '+inf',
          'WITHSCORES',
          'LIMIT',
          offset,
          count + 1,
        );
        for (let i = 0; i + 1 < batch.length; i += 2) {
          const id = batch[i] as string;
          const score = Number(batch[i + 1]);
          if (after && score === after.score && id <= after.id) continue;
          entries.push({ id, score });
        }
        if (batch.length < 2 * (count + 1)) break;
        offset += count + 1;
      }
      const page = entries.slice(0, count);
      const last = page.at(-1);
      const records = (await read(page.map((e) => e.id))).filter(
        (r): r is ScheduleRecord => r !== null && r.tenant === tenant,
      );
      return { records, nextCursor: entries.length > count && last ? `${last.score}:${last.id}` : null };
    },

    /**
     * Writes the new definition, then makes the scheduler follow it: replaced (new timing or
     * input), removed (paused) or added again (resumed).
     */
    async update(
      tenant: string,
      current: ScheduleRecord,
      def: ScheduleDef,
      contract: AnalysisContract,
    ): Promise<ScheduleRecord | null> {
      await redis.hset(layout.schedule(current.id), ...toHash(tenant, def));
      const timingChanged = JSON.stringify(def.timing) !== JSON.stringify(current.timing);
      await syncScheduler(tenant, current.id, def, contract, timingChanged ? 0 : current.runs + current.skipped);
      return own(tenant, current.id);
    },

    /** Removes the scheduler (and its next, not yet due, run), then the schedule's state. */
    async remove(tenant: string, id: string): Promise<void> {
      await queue.removeJobScheduler(id);
      await redis
        .multi()
        .del(layout.schedule(id), layout.scheduleRuns(id))
        .zrem(layout.tenantSchedules(tenant), id)
        .exec();
    },

    /** A page of a schedule's started runs, newest first, before `cursor` (a run id). */
    async listRunIds(scheduleId: string, cursor: string | undefined, count: number): Promise<string[]> {
      return redis.zrevrangebylex(layout.scheduleRuns(scheduleId), cursor ? `(${cursor}` : '+', '-', 'LIMIT', 0, count);
    },
  };
}

export type ScheduleStore = ReturnType<typeof createScheduleStore>;

/** A page cursor of the schedules list (`ScheduleStore.list`): `{score}:{schedule id}`. */
const SCHEDULE_CURSOR = /^(\d{1,16}):(sch_[0-9A-HJKMNP-TV-Z]{26})$/;

/** Whether `cursor` has the shape of a schedules list's `nextCursor`. */
export function isScheduleCursor(cursor: string): boolean {
  return SCHEDULE_CURSOR.test(cursor);
}

function parseScheduleCursor(cursor: string): { score: number; id: string } {
  const match = SCHEDULE_CURSOR.exec(cursor);
  if (!match) throw new Error(`not a schedules cursor: ${cursor}`);
  return { score: Number(match[1]), id: match[2] as string };
}

/**
 * What the worker does with a run when it starts: run it, or skip it because the previous run is
 * still active (`skip`), the tenant's backlog quota is full (`full`) or the schedule is gone.
 */
export type RunStart = 'run' | 'skip' | 'full' | 'gone';

export interface ScheduleRunStoreDeps {
  redis: RedisConnection;
  prefix: string;
  /** The tenant backlog quota runs count against (`TENANT_BACKLOG_QUOTA`); 0 turns it off. */
  backlogQuota?: number;
  /** How long a backlog set outlives its newest entry (the tombstone's life, as the API sets it). */
  backlogTtlSeconds?: number;
  /** Backlog entries younger than this are never dropped: their job may still be being added. */
  settleMs?: number;
}

/** The worker's side of schedules: the start of each run (overlap, backlog place, counters, run list). */
export function createScheduleRunStore({
  redis,
  prefix,
  backlogQuota = 0,
  backlogTtlSeconds = 86_400,
  settleMs = 10_000,
}: ScheduleRunStoreDeps) {
  const layout = layoutFor(prefix);
  return {
    async startRun(tenant: string, scheduleId: string, jobId: string): Promise<RunStart> {
      return (await redis.eval(
        START_RUN,
        3,
        layout.schedule(scheduleId),
        layout.scheduleRuns(scheduleId),
        layout.backlog(tenant),
        jobId,
        String(Date.now()),
        `${layout.queueKey(QUEUES.analyses)}:`,
        String(backlogQuota),
        String(backlogTtlSeconds),
        String(settleMs),
      )) as RunStart;
    },
  };
}

export type ScheduleRunStore = ReturnType<typeof createScheduleRunStore>;
