import type { Queue } from 'bullmq';
import type { AnalysisContract } from '../analysis.ts';
import type { RedisConnection } from '../redis.ts';
import { type Layout, layoutFor, OWN_FIELDS, QUEUES, SCHEDULER_RUN_ID } from './bullmq-layout.ts';
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
  /**
   * Due time of the last run the schedule made: the latest a worker started (run or skipped), or
   * one already due when the schedule was paused (it starts all the same). Null before any.
   */
  lastDueAt: number | null;
  /** Due time of the next run, from BullMQ's scheduler; null when paused or finished. */
  nextRunAt: number | null;
}

/** Records ARGV[1] as the schedule's last due time, unless a later one is there already. */
const RECORD_DUE_LUA = `
local function record_due(key, due)
  if due and (tonumber(redis.call('HGET', key, 'lastDueAt')) or 0) < due then
    redis.call('HSET', key, 'lastDueAt', due)
  end
end
`;

const RECORD_DUE = `${RECORD_DUE_LUA}
if redis.call('EXISTS', KEYS[1]) == 1 then record_due(KEYS[1], tonumber(ARGV[1])) end
return 0`;

/** Claims a place under the tenant's schedule quota and writes the schedule's hash, atomically. */
const CREATE = `
local quota = tonumber(ARGV[1])
if quota > 0 and redis.call('ZCARD', KEYS[1]) >= quota then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
return 1`;

/**
 * The start of a run, in one step: its due time (ARGV[7], from its id) becomes the schedule's last;
 * a run already started (a retry, or a stalled run picked up again) runs on; a run of a deleted
 * schedule is skipped; a run due after the schedule's `endAt` is refused (`ended`): BullMQ makes
 * the next run of an `every` scheduler before it checks the end date (it compares the time the
 * current run starts, not the next one's due time), so one more run than wanted may come due,
 * not counted and not listed. With overlap `skip`, a run whose
 * schedule's last started run still holds its lock is skipped and counted; a run that would take
 * the tenant past its backlog quota is skipped and counted (finished entries among the 200 oldest
 * are dropped first, as the API's admission does); otherwise the run takes a backlog place, is
 * counted, recorded as the schedule's last, and added to its run list. The run list's two oldest
 * entries are dropped on the way when retention removed their job, so it stays bounded.
 */
const START_RUN = `${RECORD_DUE_LUA}
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
local due = tonumber(ARGV[7])
record_due(KEYS[1], due)
local active = redis.call('HGET', KEYS[1], 'active')
if active == ARGV[1] then return 'run' end
local endAt = cjson.decode(redis.call('HGET', KEYS[1], 'timing') or '{}').endAt
if due and type(endAt) == 'number' and due > endAt then return 'ended' end
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

/** The due time in a run id (`repeat:{sch}:{due}`), or null for an id BullMQ did not make. */
function dueOf(runId: string | undefined): number | null {
  const match = runId ? SCHEDULER_RUN_ID.exec(runId) : null;
  return match ? Number(match[2]) : null;
}

/**
 * The next run's due time, or null when none is left. BullMQ leaves a scheduler that made its last
 * run (limit used up, cron past its end date) at that run's due time, and an `every` one at the
 * run it made past `endAt` (refused when it starts): neither is a run to come.
 */
function nextRun(timing: ScheduleTiming, paused: boolean, lastDueAt: number | null, next: string | null) {
  if (paused || next === null) return null;
  const due = Number(next);
  if (timing.endAt !== undefined && due > timing.endAt) return null;
  if (lastDueAt !== null && due <= lastDueAt) return null;
  return due;
}

function fromHash(id: string, h: Record<string, string>, next: string | null): ScheduleRecord {
  const paused = h.paused === '1';
  const timing = JSON.parse(h.timing ?? '{}') as ScheduleTiming;
  // Schedules whose runs started before lastDueAt was kept have their last run's id to go by.
  const lastDueAt = h.lastDueAt ? Number(h.lastDueAt) : dueOf(h.lastRunId);
  return {
    id,
    tenant: h.tenant ?? '',
    type: h.type ?? '',
    input: JSON.parse(h.input ?? 'null'),
    timing,
    priority: h.priority ? Number(h.priority) : undefined,
    overlap: h.overlap === 'queue' ? 'queue' : 'skip',
    paused,
    createdAt: Number(h.createdAt ?? 0),
    runs: Number(h.runs ?? 0),
    skipped: Number(h.skipped ?? 0),
    lastRun: h.lastRunId ? { id: h.lastRunId, startedAt: Number(h.lastRunAt ?? 0) } : null,
    lastDueAt,
    nextRunAt: nextRun(timing, paused, lastDueAt, next),
  };
}

export interface ScheduleStoreDeps {
  redis: RedisConnection;
  /** The analyses queue: its job schedulers make the runs. */
  queue: Queue;
  prefix: string;
  /** Schedules a tenant may have at once; 0 turns the quota off. */
  quota: number;
  /**
   * How long a deleted schedule's run list (and its owner) stays, so its runs remain listable as
   * long as retention keeps them: the tombstone's life (`TOMBSTONE_TTL_SECONDS`).
   */
  runsTtlSeconds: number;
}

/**
 * When an `every` scheduler BullMQ does not hold yet (a resumed schedule, or a new interval) may
 * first run. BullMQ would run it at once (or at `startAt`): each pause and resume, or each change
 * of interval, would add a run, more often than the interval. After a run due at `lastDueAt`, the
 * first is the next slot of its cadence: `every` after it, or a whole number of `every` later, not
 * in the past.
 */
export function everyFirstRun(
  everyMs: number,
  startAt: number | undefined,
  lastDueAt: number | null,
  now: number,
): number | undefined {
  if (lastDueAt === null) return startAt;
  const slots = Math.max(1, Math.ceil((now - lastDueAt) / everyMs));
  return Math.max(startAt ?? 0, lastDueAt + slots * everyMs);
}

/** The API's side of schedules: create, read, change and delete, with the tenant check. */
export function createScheduleStore({ redis, queue, prefix, quota, runsTtlSeconds }: ScheduleStoreDeps) {
  const layout: Layout = layoutFor(prefix);
  const schedulers = layout.jobSchedulers(QUEUES.analyses);

  /**
   * Removes the scheduler, and its pending run if that is not due yet. A run already due stays
   * and starts all the same: its due time becomes the last one, so a resume keeps its cadence.
   */
  async function pauseScheduler(id: string): Promise<void> {
    const next = await redis.zscore(schedulers, id);
    await queue.removeJobScheduler(id);
    if (next !== null && (await redis.exists(layout.job(QUEUES.analyses, `repeat:${id}:${next}`))) === 1) {
      await redis.eval(RECORD_DUE, 1, layout.schedule(id), next);
    }
  }

  /**
   * Adds or replaces the BullMQ job scheduler from the schedule's definition; removes it when
   * paused, or when no run is left (limit used up, or `endAt` before the first run to come).
   */
  async function syncScheduler(
    tenant: string,
    id: string,
    def: ScheduleDef,
    contract: AnalysisContract,
    done: number,
    lastDueAt: number | null,
  ) {
    if (def.paused) {
      await pauseScheduler(id);
      return;
    }
    const { cron, everyMs, timezone, endAt, limit } = def.timing;
    // BullMQ counts iterations from the scheduler's creation; a resumed one gets what is left.
    const left = limit === undefined ? undefined : limit - done;
    const now = Date.now();
    // BullMQ keeps the cadence of an `every` scheduler it holds with the same interval, and ignores
    // startDate then; otherwise it starts from startDate (see everyFirstRun).
    const startAt =
      everyMs === undefined ? def.timing.startAt : everyFirstRun(everyMs, def.timing.startAt, lastDueAt, now);
    const ended = endAt !== undefined && endAt < Math.max(startAt ?? 0, now);
    if ((left !== undefined && left <= 0) || ended) {
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
        await syncScheduler(tenant, id, def, contract, 0, null);
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
      await syncScheduler(
        tenant,
        current.id,
        def,
        contract,
        timingChanged ? 0 : current.runs + current.skipped,
        current.lastDueAt,
      );
      return own(tenant, current.id);
    },

    /**
     * Removes the scheduler (and its next, not yet due, run), then the schedule's state. Its run
     * list stays, with its owner, for as long as retention may keep the runs, then expires: no
     * worker adds to it or trims it any more.
     */
    async remove(tenant: string, id: string): Promise<void> {
      await queue.removeJobScheduler(id);
      await redis
        .multi()
        .del(layout.schedule(id))
        .expire(layout.scheduleRuns(id), runsTtlSeconds)
        .set(layout.deletedSchedule(id), tenant, 'EX', runsTtlSeconds)
        .zrem(layout.tenantSchedules(tenant), id)
        .exec();
    },

    /** Whether the tenant may list the schedule's runs: it owns the schedule, or did until it deleted it. */
    async ownsRuns(tenant: string, id: string): Promise<boolean> {
      const [owner, former] = await Promise.all([
        redis.hget(layout.schedule(id), 'tenant'),
        redis.get(layout.deletedSchedule(id)),
      ]);
      return owner === tenant || former === tenant;
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
 * still active (`skip`), the tenant's backlog quota is full (`full`), the schedule is gone, or the
 * run is due after the schedule's `endAt` (`ended`).
 */
export type RunStart = 'run' | 'skip' | 'full' | 'gone' | 'ended';

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
        String(dueOf(jobId) ?? ''),
      )) as RunStart;
    },
  };
}

export type ScheduleRunStore = ReturnType<typeof createScheduleRunStore>;
