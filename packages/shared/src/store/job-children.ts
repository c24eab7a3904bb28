import type { JobsOptions, Queue } from 'bullmq';
import { Job } from 'bullmq';
import type { RedisConnection } from '../redis.ts';
import { decodeReturnValue } from '../result-codec.ts';
import { addToMulti, BULL_LUA, execQueueMulti, type Layout, OWN_FIELDS, QUEUES } from './bullmq-layout.ts';
import { indexOnMulti } from './tenant-index.ts';

/**
 * Fan-out and fan-in (`ctx.spawn`): a parent job's children are ordinary analysis jobs added as
 * BullMQ children of the parent, so BullMQ itself tracks which are unfinished (the parent's
 * `:dependencies` set), stores each finished child's result (`:processed`) or failure (`:failed`)
 * with the parent, and moves the parent back to the queue in the script that finishes its last
 * child. We add one field, `lhC`: the child ids in spawn order, written in the MULTI that adds them.
 */

/** A parent's children by status, as the job view shows them. */
export interface ChildCounts {
  total: number;
  queued: number;
  active: number;
  completed: number;
  failed: number;
  cancelled: number;
}

/** What a status read learns of a parent's children. */
export interface ChildrenSummary {
  counts: ChildCounts;
  /** The children's progress together, 0 to 100: a finished child counts 100, a queued one 0. */
  percent: number;
  /** The parent sits in BullMQ's waiting-children set: it holds no worker while they run. */
  waiting: boolean;
}

/**
 * A Lua function for the status script: the parent's children counted from BullMQ's parent sets.
 * Finished children cost O(1) (`HLEN`), but for failures (their reasons tell failed from
 * cancelled); each unfinished one costs a lock check and, when active, a read of its progress. So a
 * parent's status read is O(unfinished + failed children), bounded by `MAX_CHILDREN_PER_JOB`.
 * Child keys come from the parent's own sets: they share its hash tag, so its Cluster slot.
 */
export const CHILD_SUMMARY_LUA = `
local function childSummary(deps, processed, failed, waitingChildren, id)
  local queued, active, cancelled, failedN, pct = 0, 0, 0, 0, 0
  for _, key in ipairs(redis.call('SMEMBERS', deps)) do
    if redis.call('HEXISTS', key, '${OWN_FIELDS.cancelledAt}') == 1 then cancelled = cancelled + 1
    elseif redis.call('EXISTS', key .. ':lock') == 1 then
      active = active + 1
      local p = redis.call('HGET', key, 'progress')
      local m = p and string.match(p, '"percent":(%-?[%d%.]+)')
      if m and tonumber(m) then pct = pct + tonumber(m) end
    else queued = queued + 1 end
  end
  for _, reason in ipairs(redis.call('HVALS', failed)) do
    if string.sub(reason, 1, 11) == 'cancelled: ' then cancelled = cancelled + 1 else failedN = failedN + 1 end
  end
  local completed = redis.call('HLEN', processed)
  local waiting = 0
  if redis.call('ZSCORE', waitingChildren, id) then waiting = 1 end
  return { completed + queued + active + cancelled + failedN, queued, active, completed, failedN, cancelled,
    math.floor(pct * 10), waiting }
end`;

/** The status script's keys for the child summary of job `id`, after its own five. */
export function childSummaryKeys(layout: Layout, id: string): string[] {
  const q = QUEUES.analyses;
  return [layout.dependencies(q, id), layout.processed(q, id), layout.failedChildren(q, id), layout.waitingChildren(q)];
}

/** Reads `childSummary`'s reply back; `undefined` for a job that never spawned. */
export function parseChildSummary(reply: unknown): ChildrenSummary | undefined {
  if (!Array.isArray(reply) || reply.length < 8) return undefined;
  const [total, queued, active, completed, failed, cancelled, activePercentTenths, waiting] = reply.map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const finished = completed + failed + cancelled;
  const percent = total > 0 ? Math.min(100, (finished * 100 + activePercentTenths / 10) / total) : 0;
  return {
    counts: { total, queued, active, completed, failed, cancelled },
    percent: Math.round(percent * 10) / 10,
    waiting: waiting === 1,
  };
}

/** The `lhC` field read back: one array of child ids per spawn. Never throws. */
export function parseChildBatches(json: string | null | undefined): string[][] {
  if (!json) return [];
  try {
    const parsed: unknown = JSON.parse(json);
    if (!Array.isArray(parsed)) return [];
    // Lua's cjson writes an empty array as `{}`; we never store one, but read it as empty.
    return parsed.map((batch) => (Array.isArray(batch) ? batch.filter((id) => typeof id === 'string') : []));
  } catch {
    return [];
  }
}

/** A parent's child ids in spawn order, for `GET /v1/jobs/:id/children`. */
export async function readChildIds(redis: RedisConnection, layout: Layout, parentId: string): Promise<string[]> {
  const json = await redis.hget(layout.job(QUEUES.analyses, parentId), OWN_FIELDS.children);
  return parseChildBatches(json).flat();
}

/**
 * Flags every unfinished child of a parent cancelled, as the cancel script does for one job:
 * `lhc` set, a `cancelled` entry in the events stream for a child no worker holds. Answers the
 * children no worker holds (and which of them are delayed), those a worker runs, and those that
 * spawned children of their own.
 */
const CANCEL_CHILDREN = `${BULL_LUA}
local raw = redis.call('HGET', KEYS[1], '${OWN_FIELDS.children}')
local waiting, delayed, active, parents = {}, {}, {}, {}
if not raw then return { waiting, delayed, active, parents } end
local ok, batches = pcall(cjson.decode, raw)
if not ok or type(batches) ~= 'table' then return { waiting, delayed, active, parents } end
for _, batch in ipairs(batches) do
  for _, id in ipairs(batch) do
    local k = ARGV[2] .. id
    if redis.call('EXISTS', k) == 1 and redis.call('HEXISTS', k, 'finishedOn') == 0 then
      local fresh = redis.call('HSETNX', k, '${OWN_FIELDS.cancelledAt}', ARGV[1])
      if redis.call('HEXISTS', k, '${OWN_FIELDS.children}') == 1 then table.insert(parents, id) end
      if redis.call('EXISTS', k .. ':lock') == 1 then
        table.insert(active, id)
      else
        if fresh == 1 then
          redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', 'cancelled', 'jobId', id)
        end
        -- Parked for its tenant's turn (fair-share.ts): out of the lane and back in the queue.
        if redis.call('ZREM', KEYS[4], id) == 1 then bull_promote(ARGV[2], id, ARGV[3]) end
        table.insert(waiting, id)
        if redis.call('ZSCORE', KEYS[3], id) then table.insert(delayed, id) end
      end
    end
  end
end
return { waiting, delayed, active, parents }`;

/** How deep a cancel follows children that spawned children of their own. */
const MAX_CANCEL_DEPTH = 8;

export interface ChildCancelDeps {
  /** For our script and the cancel messages. */
  redis: RedisConnection;
  /** The analyses queue: BullMQ's own scripts move a cancelled child to the head of the queue. */
  queue: Queue;
  layout: Layout;
  eventsMaxLen: number;
  /** The parent's tenant, and so its children's: a parked child leaves its tenant's lane. */
  tenant: string;
}

/**
 * Cancels every unfinished child of `parentId` (and theirs, a few levels down), the way the store
 * cancels one job: the flag is the cancel; a child no worker holds is moved to the head of the
 * queue, where the next free worker fails it as `cancelled` without running it; one a worker runs
 * is told over pub/sub. Each cancelled child then finishes like any failed child, which releases
 * a waiting parent. Cost: one script, plus one BullMQ call per child no worker holds.
 */
export async function cancelChildren(deps: ChildCancelDeps, parentId: string, depth = 0): Promise<void> {
  const { redis, queue, layout, eventsMaxLen, tenant } = deps;
  const analyses = QUEUES.analyses;
  const [waiting, delayed, active, parents] = (await redis.eval(
    CANCEL_CHILDREN,
    4,
    layout.job(analyses, parentId),
    layout.events(analyses),
    layout.delayed(analyses),
    layout.fairLane(tenant),
    String(Date.now()),
    `${layout.queueKey(analyses)}:`,
    String(eventsMaxLen),
  )) as [string[], string[], string[], string[]];
  const delayedIds = new Set(delayed);
  await Promise.all([
    ...waiting.map(async (id) => {
      const job = new Job(queue, '', {}, {}, id);
      if (delayedIds.has(id)) await job.promote().catch(() => undefined);
      // A child in waiting-children (it spawned too) only gets the priority, for when it is released.
      await job.changePriority({ priority: 0, lifo: true }).catch(() => undefined);
    }),
    ...active.map((id) => redis.publish(layout.cancelChannel, id)),
  ]);
  if (depth + 1 < MAX_CANCEL_DEPTH) {
    for (const id of parents) await cancelChildren(deps, id, depth + 1);
  }
}

/** A child of `ctx.spawn`, ready to add: its analysis, data and BullMQ options. */
export interface NewChild {
  id: string;
  name: string;
  /** Built with `jobData(tenant, input)`: the tenant first, as for every job. */
  data: unknown;
  opts: Omit<JobsOptions, 'jobId'>;
}

/** How a child ended, as its parent reads it back; `pending` while it has not. */
export type ChildOutcome =
  | { id: string; status: 'completed'; result: unknown }
  | { id: string; status: 'failed'; reason: string }
  | { id: string; status: 'pending' };

/**
 * The state a spawn starts from: the parent's lock must still be this worker's (a worker that
 * lost the job must not spawn for it), and the children an earlier run recorded.
 */
const SPAWN_STATE = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return { 'lost' } end
return { 'ok', redis.call('HGET', KEYS[1], '${OWN_FIELDS.children}') or '' }`;

/** The children's outcomes from the parent's sets, and the parent's cancel flag, in one read. */
const OUTCOMES = `
local n = #ARGV
local done = redis.call('HMGET', KEYS[2], unpack(ARGV))
local failed = redis.call('HMGET', KEYS[3], unpack(ARGV))
return { redis.call('HEXISTS', KEYS[1], '${OWN_FIELDS.cancelledAt}'), done, failed }`;

export interface ChildRunStoreDeps {
  /** A worker-role connection, with BullMQ's scripts defined (the queue's own). */
  redis: RedisConnection;
  /** The analyses queue, on `redis`: children are added with BullMQ's own add script. */
  queue: Queue;
  layout: Layout;
  eventsMaxLen: number;
  /** How long the tenant's index outlives its newest entry (as the API sets it on submit). */
  indexTtlSeconds: number;
}

/** The worker's side of fan-out: record and add children, read how they ended, cancel them. */
export function createChildRunStore(deps: ChildRunStoreDeps) {
  const { redis, queue, layout, indexTtlSeconds } = deps;
  const analyses = QUEUES.analyses;
  const key = (id: string) => layout.job(analyses, id);

  return {
    /** The child batches recorded by earlier spawns, or `lost` when the lock is no longer `token`'s. */
    async state(parentId: string, token: string): Promise<{ kind: 'lost' } | { kind: 'ok'; batches: string[][] }> {
      const [kind, json] = (await redis.eval(
        SPAWN_STATE,
        2,
        key(parentId),
        layout.lock(analyses, parentId),
        token,
      )) as [string, string?];
      if (kind === 'lost') return { kind: 'lost' };
      return { kind: 'ok', batches: parseChildBatches(json) };
    },

    /**
     * Adds `children` as BullMQ children of `parentId`, their tenant index entries, and the parent's
     * `lhC` (now `batches`), in one MULTI: a worker killed at any point leaves either all of it or
     * none, so a later run finds the children recorded exactly when they exist.
     */
    async add(parentId: string, tenant: string, batches: string[][], children: NewChild[]): Promise<void> {
      await execQueueMulti(queue, redis, async (multi) => {
        for (const child of children) {
          await addToMulti(
            multi,
            queue,
            { name: child.name, data: child.data, opts: child.opts, id: child.id },
            { parent: { queue, id: parentId } },
          );
        }
        indexOnMulti(
          multi,
          layout,
          tenant,
          children.map((child) => child.id),
          indexTtlSeconds,
        );
        multi.hset(key(parentId), OWN_FIELDS.children, JSON.stringify(batches));
      });
    },

    /** How each child ended (in the order of `ids`), and whether the parent was cancelled. */
    async outcomes(parentId: string, ids: string[]): Promise<{ parentCancelled: boolean; children: ChildOutcome[] }> {
      const keys = ids.map(key);
      const [cancelled, done, failed] = (await redis.eval(
        OUTCOMES,
        3,
        key(parentId),
        layout.processed(analyses, parentId),
        layout.failedChildren(analyses, parentId),
        ...keys,
      )) as [number, (string | null)[], (string | null)[]];
      const children = ids.map((id, i): ChildOutcome => {
        const raw = done[i];
        if (raw !== null && raw !== undefined) {
          const stored: unknown = JSON.parse(raw);
          return { id, status: 'completed', result: decodeReturnValue(stored) };
        }
        const reason = failed[i];
        if (reason !== null && reason !== undefined) return { id, status: 'failed', reason };
        return { id, status: 'pending' };
      });
      return { parentCancelled: Number(cancelled) === 1, children };
    },

    /** Cancels every unfinished child of the parent (of `tenant`): see {@link cancelChildren}. */
    cancelAll(tenant: string, parentId: string): Promise<void> {
      return cancelChildren({ ...deps, tenant }, parentId);
    },
  };
}

export type ChildRunStore = ReturnType<typeof createChildRunStore>;
