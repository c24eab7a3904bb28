import { layoutFor, listIndexed, QUEUES } from '@longhaul/shared';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countBy, mapLimit, recordFigures, sleep } from '../chaos/chaos-support.ts';
import { api } from '../support/http.ts';
import { type AppProcess, startApi } from '../support/processes.ts';
import { type RedisServer, startRedisServer } from '../support/redis-server.ts';
import { waitFor } from '../support/wait.ts';
import { KEY_A, simulate, systemEnv } from './fixtures.ts';

const SUBMITS = 200;
const LANES = 8;

/** The ids of BullMQ job hashes under `prefix` (SCAN, never KEYS): every job that exists in Redis. */
async function jobHashIds(redis: Redis, prefix: string): Promise<string[]> {
  const base = layoutFor(prefix).job(QUEUES.analyses, '');
  const escaped = base.replace(/[*?[\]\\]/g, '\\$&');
  const ids: string[] = [];
  const stream = redis.scanStream({ match: `${escaped}job_*`, count: 1000 });
  for await (const keys of stream as AsyncIterable<string[]>) {
    for (const key of keys) {
      const id = key.slice(base.length);
      // `<id>:lock`, `<id>:logs` and the like are not job hashes.
      if (/^job_[0-9A-Z]{26}$/.test(id)) ids.push(id);
    }
  }
  return ids;
}

/** Clients Redis still holds a script or transaction of (postponed by a pause), blocking reads aside. */
async function heldWrites(redis: Redis): Promise<string[]> {
  const list = (await redis.call('CLIENT', 'LIST')) as string;
  return list.split('\n').filter((line) => /\bflags=\S*b/.test(line) && /\bcmd=(eval|evalsha|exec|multi)\b/.test(line));
}

describe('atomic submit: a stream of submits while Redis pauses (real API, private redis-server)', () => {
  let redis: RedisServer;
  let apiProcess: AppProcess;
  let env: Record<string, string>;

  beforeAll(async () => {
    redis = await startRedisServer();
    // No worker: every accepted job stays in Redis to be counted.
    env = { ...systemEnv(redis.url), RATE_LIMIT_PER_MINUTE: '0', WEBHOOK_SECRETS: 'a:whsec-pause-0123456789abcdef' };
    apiProcess = await startApi(env);
  });
  afterAll(async () => {
    await apiProcess?.stop();
    await redis?.destroy();
  });

  it('when Redis pauses (everything, or writes) for 700–900 ms every second during 200 submits, then no job is an orphan or a phantom and each Idempotency-Key ends with exactly one job', async () => {
    const client = api(apiProcess.url, KEY_A);
    const admin = new Redis(redis.url);
    const prefix = env.QUEUE_PREFIX ?? '';
    const layout = layoutFor(prefix);
    let pausing = true;
    let pauses = 0;
    // Alternately every command and writes only. While everything is paused the API's liveness
    // PING goes unanswered for longer than REDIS_COMMAND_TIMEOUT_MS (500 ms; 900 ms makes sure a
    // PING sent late in the pause trips it too), so waiting submits answer 503 while their
    // commands are still held by Redis, to land when the pause ends. While only writes are paused,
    // the API waits: scripts and MULTIs are held back, then land.
    const pauser = (async () => {
      while (pausing) {
        const all = pauses % 2 === 0;
        await admin.call('CLIENT', 'PAUSE', all ? '900' : '700', all ? 'ALL' : 'WRITE');
        pauses++;
        await sleep(1_000);
      }
    })();

    const answers: number[] = [];
    const finalIds = new Map<string, string>();
    try {
      const keys = Array.from({ length: SUBMITS }, (_, i) => `pause-stream-${i}-${prefix}`);
      await mapLimit(keys, LANES, async (key, i) => {
        // Every other job has a webhook: its delivery job (the job's BullMQ parent) is in the same MULTI.
        const webhook = i % 2 === 0 ? { webhook: { url: `https://example.com/hook/${i}` } } : {};
        const body = simulate({ durationMs: 10, steps: 1 }, { priority: 1 + (i % 5), ...webhook });
        for (let attempt = 1; ; attempt++) {
          const res = await client.post('/v1/jobs', body, { headers: { 'idempotency-key': key } });
          answers.push(res.status);
          if (res.status === 202 || res.status === 200) {
            finalIds.set(key, res.body.id as string);
            return;
          }
          if (res.status !== 503 || attempt >= 60) {
            throw new Error(`submit answered ${res.status}: ${JSON.stringify(res.body)}`);
          }
          // A well-behaved client retries a 503 with the same Idempotency-Key.
          await sleep(50);
        }
      });
    } finally {
      pausing = false;
      await pauser;
      await admin.call('CLIENT', 'UNPAUSE');
    }
    // Writes held back by the last pause land once it ends; count only after they did.
    await waitFor(async () => (await heldWrites(admin)).length === 0, { what: 'held writes to land' });

    const inRedis = await jobHashIds(admin, prefix);
    const indexed = new Set(await listIndexed(admin, layout, 'a', undefined, 1_000_000));
    const queued = new Set([
      ...(await admin.lrange(layout.wait(QUEUES.analyses), 0, -1)),
      ...(await admin.zrange(layout.prioritized(QUEUES.analyses), 0, -1)),
      ...(await admin.zrange(layout.delayed(QUEUES.analyses), 0, -1)),
      // Parked for the tenant's turn (no worker runs here): waiting-children, and in the lane.
      ...(await admin.zrange(layout.waitingChildren(QUEUES.analyses), 0, -1)),
    ]);
    const lane = new Set(await admin.zrange(layout.fairLane('a'), 0, -1));
    const parked = await admin.zrange(layout.waitingChildren(QUEUES.analyses), 0, -1);
    // A parked job is never stranded: its lane entry landed in the same transaction.
    expect(parked.filter((id) => !lane.has(id))).toEqual([]);
    expect([...lane].filter((id) => !parked.includes(id))).toEqual([]);
    const reads = await mapLimit(inRedis, 8, async (id) => (await client.get(`/v1/jobs/${id}`)).status);
    const counts = countBy(answers.map(String));
    recordFigures('G19', { submits: SUBMITS, lanes: LANES, pauses, answers: counts, jobs: inRedis.length });

    // Orphans: a job in Redis its tenant cannot read or list.
    const orphans = inRedis.filter((id, i) => reads[i] !== 200 || !indexed.has(id));
    expect(orphans).toEqual([]);
    // Phantoms: an accepted or listed id without its job, or a queue entry without its hash.
    const jobs = new Set(inRedis);
    expect([...finalIds.values()].filter((id) => !jobs.has(id))).toEqual([]);
    expect([...indexed].filter((id) => !jobs.has(id))).toEqual([]);
    expect([...queued].filter((id) => !jobs.has(id))).toEqual([]);
    // Each webhook's delivery waits for its job, as the job's BullMQ parent.
    const withHook = [...finalIds].filter(([key]) => Number(key.split('-')[2]) % 2 === 0).map(([, id]) => id);
    const parents = await mapLimit(withHook, 8, async (id) => {
      const [state, dependency] = await Promise.all([
        admin.zscore(`${layout.queueKey(QUEUES.webhooks)}:waiting-children`, `${id}.webhook`),
        admin.smembers(`${layout.job(QUEUES.webhooks, `${id}.webhook`)}:dependencies`),
      ]);
      return state !== null && dependency.length === 1 && dependency[0] === layout.job(QUEUES.analyses, id);
    });
    expect(withHook.filter((_, i) => !parents[i])).toEqual([]);
    // One job per Idempotency-Key: as many jobs as keys, each the one its key answers with.
    expect(finalIds.size).toBe(SUBMITS);
    expect(new Set(finalIds.values()).size).toBe(SUBMITS);
    expect(inRedis.length).toBe(SUBMITS);
    expect(queued.size).toBe(SUBMITS);
    // The pauses did make submits fail after their commands were sent: the case under test. (The
    // first pause stops everything, with submits in flight, for longer than the liveness bound.)
    expect(counts['503'] ?? 0).toBeGreaterThan(0);
    // Only accepted jobs, replays and 503s while Redis was paused: never a 500.
    expect(Object.keys(counts).filter((s) => !['200', '202', '503'].includes(s))).toEqual([]);
    admin.disconnect();
  });
});
