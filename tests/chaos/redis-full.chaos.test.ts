import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../support/http.ts';
import { type AppProcess, startApi, startWorker } from '../support/processes.ts';
import { uniquePrefix } from '../support/redis.ts';
import { type RedisServer, startRedisServer } from '../support/redis-server.ts';
import {
  chaosEnv,
  countBy,
  FAULT_TIMEOUT,
  leakedSecrets,
  recordFigures,
  SECRETS,
  submitJobs,
  waitAllFinal,
} from './chaos-support.ts';

async function countKeys(redis: Redis, pattern: string): Promise<number> {
  let n = 0;
  for await (const keys of redis.scanStream({ match: pattern, count: 1000 }) as AsyncIterable<string[]>)
    n += keys.length;
  return n;
}

describe('G5 Redis full (maxmemory with noeviction), real processes', () => {
  const prefix = uniquePrefix();
  let redis: RedisServer;
  let admin: Redis;
  const all: AppProcess[] = [];
  let apiProcess: AppProcess;

  beforeAll(async () => {
    redis = await startRedisServer({ maxmemory: '32mb' });
    admin = new Redis(redis.url);
    // The quota off: the submission's own writes are what must meet the full Redis.
    const env = chaosEnv(redis.url, prefix, { TENANT_BACKLOG_QUOTA: '0' });
    const [a, w] = await Promise.all([startApi(env), startWorker(env)]);
    apiProcess = a;
    all.push(a, w);
  });
  afterAll(async () => {
    admin?.disconnect();
    await Promise.all(all.map((p) => p.stop().catch(() => undefined)));
    await redis?.destroy();
  });

  it(
    'G5: when Redis is full, then submit answers a clear 503 within 1 s, leaves no partial job, and accepted jobs stay intact',
    async () => {
      const client = api(apiProcess.url, SECRETS.keyA);
      // Accepted before Redis fills up; delayed so they are still waiting while it is full.
      const accepted = await submitJobs(client, 10, { durationMs: 10, steps: 1 });
      const delayed = await Promise.all(
        Array.from({ length: 5 }, async () => {
          const res = await client.post('/v1/jobs', {
            type: 'simulate',
            input: { durationMs: 10, steps: 1 },
            delayMs: 1_500,
          });
          expect(res.status).toBe(202);
          return res.body.id as string;
        }),
      );
      const metaBefore = await countKeys(admin, `${prefix}:lh:meta:*`);

      // Fill Redis to its limit: filler keys, then maxmemory lowered below what is used, so every
      // write is refused (a write that only just crosses the limit would leave room for small ones).
      let filled = 0;
      for (;;) {
        try {
          await admin.set(`filler:${filled}`, 'x'.repeat(64 * 1024));
          filled++;
        } catch (err) {
          expect((err as Error).message).toMatch(/^OOM/);
          break;
        }
      }
      const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
      await admin.config('SET', 'maxmemory', String(used - 1024 * 1024));
      await expect(admin.set('probe', 'x')).rejects.toThrow(/^OOM/);

      const answers: number[] = [];
      for (let i = 0; i < 5; i++) {
        const started = Date.now();
        const res = await client.post(
          '/v1/jobs',
          { type: 'simulate', input: { durationMs: 10, steps: 1 } },
          { headers: i % 2 ? { 'idempotency-key': `full-${i}` } : {} },
        );
        answers.push(Date.now() - started);
        expect(res.status).toBe(503);
        expect(res.headers['retry-after']).toBeDefined();
        expect(res.body.error.code).toBe('redis_unavailable');
        expect(res.body.error.message).toMatch(/out of memory/);
        expect(Date.now() - started).toBeLessThan(1_000);
      }
      // No partial job: no new record, nothing new in the listing; reads still work.
      expect(await countKeys(admin, `${prefix}:lh:meta:*`)).toBe(metaBefore);
      const listed = (await client.get('/v1/jobs?limit=100')).body.jobs.map((j: { id: string }) => j.id);
      expect(new Set(listed)).toEqual(new Set([...accepted, ...delayed]));
      // Nothing crashed.
      for (const p of all) expect((await fetch(`${p.url}/healthz`)).status).toBe(200);

      // Room again: every accepted job completes.
      await admin.config('SET', 'maxmemory', '0');
      for (let i = 0; i < filled; i += 500) {
        await admin.del(...Array.from({ length: Math.min(500, filled - i) }, (_, k) => `filler:${i + k}`));
      }
      const final = await waitAllFinal(client, [...accepted, ...delayed], 30_000);
      expect(countBy(final.values())).toEqual({ completed: accepted.length + delayed.length });
      recordFigures('G5', {
        maxmemory: '32mb',
        fillerKeys: filled,
        worst503Ms: Math.max(...answers),
        acceptedIntact: 15,
      });
    },
    FAULT_TIMEOUT,
  );

  it('G12: when the run is over, then no API key, password, token or job input appears in any process log', () => {
    expect(leakedSecrets(all)).toEqual([]);
  });
});
