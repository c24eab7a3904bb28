import { FINAL_STATUSES, type JobReader, type RedisConnection } from '@longhaul/shared';
import { HttpError } from '../http/http-error.ts';

export interface BacklogQuotaOptions {
  redis: RedisConnection;
  reader: JobReader;
  /** Key prefix (the queue prefix), so the set lives beside the tenant's jobs. */
  prefix: string;
  /** Unfinished jobs a tenant may have at once; `0` turns the quota off. */
  quota: number;
  /** Entries one repair inspects when the set looks full. @defaultValue 500 */
  repairBatch?: number;
  /** Oldest entries every submission checks, in the background, to keep the set near the real backlog. @defaultValue 4 */
  trimBatch?: number;
  /** Entries younger than this are never repaired away: their job may still be being added. @defaultValue 10 000 ms */
  settleMs?: number;
  /** How long the set outlives a tenant's last submission. @defaultValue 30 days */
  ttlSeconds?: number;
}

export interface BacklogQuota {
  /**
   * Counts job `id` against the tenant's backlog, or throws `429 backlog_quota_exceeded` when the
   * backlog is full. Idempotent for one id (an Idempotency-Key replay is not counted twice).
   */
  reserve(tenant: string, id: string): Promise<void>;
  /** Gives back a reservation whose job was never added. */
  release(tenant: string, id: string): Promise<void>;
}

/**
 * A per-tenant quota on unfinished jobs, O(1) per submission: a sorted set of the tenant's job ids
 * (scored by reservation time) whose size is the backlog. Finished jobs are removed lazily, in
 * bounded batches: each submission checks the few oldest entries in the background (so the set
 * tracks a first-in-first-out backlog and its memory stays bounded), and when the set looks full
 * a submission inspects a larger batch (the oldest entries and a random window, so jobs finishing
 * out of order are found too) before it refuses. A cancelled queued job is released at once.
 */
export function createBacklogQuota({
  redis,
  reader,
  prefix,
  quota,
  repairBatch = 500,
  trimBatch = 4,
  settleMs = 10_000,
  ttlSeconds = 30 * 86_400,
}: BacklogQuotaOptions): BacklogQuota {
  const key = (tenant: string) => `${prefix}:lh:tenant:${tenant}:backlog`;

  /** Drops finished or removed jobs from a batch of entries; returns how many it dropped. */
  async function repairBatchFrom(tenant: string, start: number, batch = repairBatch, except = ''): Promise<number> {
    const flat = await redis.zrange(key(tenant), start, start + batch - 1, 'WITHSCORES');
    const settledBefore = Date.now() - settleMs;
    const ids: string[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      if (Number(flat[i + 1]) <= settledBefore && flat[i] !== except) ids.push(flat[i] as string);
    }
    if (ids.length === 0) return 0;
    const snaps = await reader.snapshots(ids);
    const done = snaps
      .filter((s) => {
        const status = reader.status(s);
        return status === 'gone' || (FINAL_STATUSES as string[]).includes(status);
      })
      .map((s) => s.id);
    return done.length > 0 ? redis.zrem(key(tenant), ...done) : 0;
  }

  /** Repairs, then counts again (a background trim may have removed entries meanwhile). */
  async function repair(tenant: string, count: number, reserving: string): Promise<number> {
    const removed = await repairBatchFrom(tenant, 0, repairBatch, reserving);
    if (count - removed > quota && count > repairBatch) {
      const start = repairBatch + Math.floor(Math.random() * Math.max(1, count - 2 * repairBatch));
      await repairBatchFrom(tenant, start, repairBatch, reserving);
    }
    return redis.zcard(key(tenant));
  }

  return {
    async reserve(tenant, id) {
      if (quota <= 0) return;
      const [[addErr, added] = [], [countErr, counted] = []] =
        (await redis
          .multi()
          .zadd(key(tenant), 'NX', Date.now(), id)
          .zcard(key(tenant))
          .expire(key(tenant), ttlSeconds)
          .exec()) ?? [];
      if (addErr || countErr) throw addErr ?? countErr;
      if (added === 0) return;
      let count = Number(counted);
      if (count <= quota) {
        // Not awaited: the submission does not wait for housekeeping, and a failure is harmless.
        void repairBatchFrom(tenant, 0, trimBatch).catch(() => undefined);
        return;
      }
      count = await repair(tenant, count, id);
      if (count <= quota) return;
      await redis.zrem(key(tenant), id);
      throw new HttpError(
        429,
        'backlog_quota_exceeded',
        `this tenant already has ${quota} unfinished jobs, its quota; submit more once some finish`,
        { quota },
        { 'Retry-After': '30' },
      );
    },
    async release(tenant, id) {
      if (quota <= 0) return;
      await redis.zrem(key(tenant), id);
    },
  };
}
