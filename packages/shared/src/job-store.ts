import type { Config } from './config.ts';
import {
  JOB_HASH_FIELDS,
  type JobSnapshot,
  type JobView,
  parseJobFields,
  parseMeta,
  statusOf,
  toJobView,
} from './job-view.ts';
import { type Keys, QUEUES } from './keys.ts';
import type { RedisConnection } from './redis.ts';
import { decodeResult, isStoredResult } from './result-codec.ts';
import { parseDeliveries } from './webhook-delivery.ts';

export interface JobReaderDeps {
  redis: RedisConnection;
  keys: Keys;
  retention: Config['retention'];
}

/**
 * Reads jobs for the API, the SSE stream and webhooks. A status read is one pipeline of O(1)
 * commands whatever the backlog (never `getState()`, which walks the wait list), and it transfers
 * neither the job's input nor its result.
 */
export function createJobReader({ redis, keys, retention }: JobReaderDeps) {
  const queue = QUEUES.analyses;

  function queueSnapshots(pipeline: ReturnType<RedisConnection['pipeline']>, id: string) {
    pipeline
      .hgetall(keys.meta(id))
      .hmget(keys.job(queue, id), ...JOB_HASH_FIELDS)
      .hstrlen(keys.job(queue, id), 'returnvalue')
      .exists(keys.lock(queue, id))
      .zscore(keys.delayed(queue), id)
      // Capped at MAX_DELIVERY_RECORDS entries, so still O(1); empty for jobs without a webhook.
      .lrange(keys.webhookDeliveries(id), 0, -1);
  }
  const PER_JOB = 6;

  /** Snapshots of many jobs in one round trip. */
  async function snapshots(ids: string[]): Promise<JobSnapshot[]> {
    if (ids.length === 0) return [];
    const pipeline = redis.pipeline();
    for (const id of ids) queueSnapshots(pipeline, id);
    const results = (await pipeline.exec()) ?? [];
    return ids.map((id, i) => {
      const r = results.slice(i * PER_JOB, (i + 1) * PER_JOB);
      for (const [err] of r) if (err) throw err;
      const value = (k: number) => r[k]?.[1];
      return {
        id,
        meta: parseMeta((value(0) as Record<string, string> | null) ?? {}),
        job: parseJobFields((value(1) as (string | null)[] | null) ?? [], Number(value(2) ?? 0)),
        locked: value(3) === 1,
        delayed: value(4) !== null && value(4) !== undefined,
        deliveries: parseDeliveries((value(5) as string[] | null) ?? []),
      };
    });
  }

  return {
    snapshots,
    async snapshot(id: string): Promise<JobSnapshot> {
      const [s] = await snapshots([id]);
      if (!s) throw new Error('unreachable: one id, one snapshot');
      return s;
    },
    /** The stored result of a completed job, decompressed. */
    async result(id: string): Promise<unknown> {
      const raw = await redis.hget(keys.job(queue, id), 'returnvalue');
      if (raw === null) return undefined;
      const stored: unknown = JSON.parse(raw);
      return isStoredResult(stored) ? decodeResult(stored) : stored;
    },
    view(s: JobSnapshot, now?: number): JobView {
      return toJobView(s, retention, now);
    },
    status: statusOf,
  };
}

export type JobReader = ReturnType<typeof createJobReader>;
