import { Queue } from 'bullmq';
import { encodeTime } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix, watchCommands } from '../../../../tests/support/redis.ts';
import { newJobId } from '../ids.ts';
import { createRedisConnection, type RedisConnection } from '../redis.ts';
import { layoutFor, QUEUES, queueMulti } from './bullmq-layout.ts';
import {
  INDEX_BUCKET,
  type IndexTrim,
  indexKeys,
  indexOnMulti,
  isIndexed,
  listIndexed,
  TRIM_EVERY,
} from './tenant-index.ts';

const TTL = 3_600;
const HOUR = 3_600_000;

describe('the tenant index (real Redis)', () => {
  const prefix = uniquePrefix();
  const layout = layoutFor(prefix);
  const jobPrefix = `${prefix}:jobs:`;
  let redis: RedisConnection;
  let queue: Queue;

  beforeAll(() => {
    redis = createRedisConnection(redisUrl(), 'worker');
    queue = new Queue(QUEUES.analyses, { connection: redis, prefix });
  });
  afterAll(async () => {
    await queue.close();
    await redis.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  async function add(tenant: string, ids: string[], trim?: IndexTrim) {
    const multi = await queueMulti(queue, redis);
    indexOnMulti(multi, layout, tenant, ids, TTL, trim);
    for (const [err] of (await multi.exec()) ?? []) if (err) throw err;
  }

  /** Every page of the listing, `size` ids at a time, following the cursor. */
  async function listAll(tenant: string, size: number) {
    const all: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await listIndexed(redis, layout, tenant, cursor, size);
      all.push(...page);
      if (page.length < size) return all;
      cursor = page.at(-1);
    }
  }

  const buckets = async (tenant: string) => (await indexKeys(redis, layout, tenant)).slice(1);

  it('when ids arrive out of order, then the listing returns each once, newest first, page by page, in compact buckets', async () => {
    const now = Date.now();
    // 1,000 ids over a minute, each batch of 40 shuffled, and a few far older ones among them.
    const ids = Array.from({ length: 1_000 }, (_, i) => newJobId(now - 60_000 + i * 60));
    const arrivals: string[] = [];
    for (let i = 0; i < ids.length; i += 40) {
      arrivals.push(...ids.slice(i, i + 40).sort(() => Math.random() - 0.5));
      if (i % 200 === 0) {
        const old = newJobId(now - HOUR - i);
        ids.push(old);
        arrivals.push(old);
      }
    }
    for (let i = 0; i < arrivals.length; i += 7) await add('a', arrivals.slice(i, i + 7));

    const newestFirst = [...ids].sort().reverse();
    expect(await listAll('a', 100)).toEqual(newestFirst);
    expect(await listAll('a', 33)).toEqual(newestFirst);
    expect(await listIndexed(redis, layout, 'a', newestFirst[10], 5)).toEqual(newestFirst.slice(11, 16));
    for (const id of ids.slice(0, 50)) expect(await isIndexed(redis, layout, 'a', id)).toBe(true);
    expect(await isIndexed(redis, layout, 'a', newJobId(now))).toBe(false);
    expect(await isIndexed(redis, layout, 'other', ids[0] as string)).toBe(false);

    const keys = await buckets('a');
    expect(keys.length).toBeGreaterThanOrEqual(Math.ceil(ids.length / INDEX_BUCKET));
    for (const key of keys) {
      expect(await redis.zcard(key)).toBeLessThanOrEqual(INDEX_BUCKET);
      expect(await redis.object('ENCODING', key)).toBe('listpack');
      expect(await redis.ttl(key)).toBeGreaterThan(TTL - 60);
    }
  });

  it('when old entries’ jobs are gone, then adding trims them, keeps those whose job exists and drops emptied buckets', async () => {
    const now = Date.now();
    const cutoff = `(job_${encodeTime(now - HOUR, 10)}`;
    const old = Array.from({ length: 300 }, (_, i) => newJobId(now - 2 * HOUR + i));
    await add('b', old);
    // The oldest 100 jobs still exist (a long delay): their entries must stay, ahead of the rest.
    const alive = old.slice(0, 100);
    for (const id of alive) await redis.hset(`${jobPrefix}${id}`, 'data', '{}');
    // Ids in order fill buckets of 128: the second holds old[128..255], all of them gone.
    expect(await redis.zscore(layout.tenantIndex('b'), old[INDEX_BUCKET] as string)).toBe('0');

    const recent: string[] = [];
    for (let i = 0; i < 2_000 && (await listAll('b', 500)).length > alive.length + recent.length; i++) {
      const id = newJobId();
      recent.push(id);
      await add('b', [id], { cutoff, jobPrefix });
    }
    const listed = await listAll('b', 500);
    expect(listed).toEqual([...alive, ...recent].sort().reverse());
    for (const id of alive) expect(await isIndexed(redis, layout, 'b', id)).toBe(true);
    expect(await isIndexed(redis, layout, 'b', old[150] as string)).toBe(false);
    expect(await redis.zscore(layout.tenantIndex('b'), old[INDEX_BUCKET] as string)).toBeNull();
    for (const key of await buckets('b')) expect(await redis.exists(key)).toBe(1);
  });

  it('when an index write is not drawn to trim, then it sends none of the trim’s commands; one drawn does', async () => {
    const cutoff = `(job_${encodeTime(Date.now() - HOUR, 10)}`;
    const dir = layout.tenantIndex('d');
    const trimsOf = async (draw: number) => {
      const watch = await watchCommands(redisUrl(), prefix);
      await add('d', [newJobId()], { cutoff, jobPrefix, draw });
      return (await watch.stop()).filter(([name, key]) => name === 'ZLEXCOUNT' && key === dir).length;
    };
    expect(await trimsOf(1 / TRIM_EVERY)).toBe(0);
    expect(await trimsOf(0.99)).toBe(0);
    expect(await trimsOf(1 / TRIM_EVERY - 0.01)).toBe(1);
    expect(await trimsOf(0)).toBe(1);
  });

  it('when a tenant still has entries in the earlier single sorted set, then they are listed in order with the new ones and found', async () => {
    const now = Date.now();
    const legacy = Array.from({ length: 30 }, (_, i) => newJobId(now - 10_000 + i * 200));
    await redis.zadd(layout.legacyTenantJobs('c'), ...legacy.flatMap((id) => [0, id]));
    // New entries interleave with them in time (a rolling deploy writes both layouts at once).
    const current = Array.from({ length: 30 }, (_, i) => newJobId(now - 10_000 + i * 200 + 100));
    await add('c', current);

    expect(await listAll('c', 7)).toEqual([...legacy, ...current].sort().reverse());
    expect(await isIndexed(redis, layout, 'c', legacy[3] as string)).toBe(true);
    expect(await isIndexed(redis, layout, 'c', current[3] as string)).toBe(true);
  });
});
