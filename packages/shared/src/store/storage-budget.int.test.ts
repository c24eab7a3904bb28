import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix, watchCommands } from '../../../../tests/support/redis.ts';
import { loadConfig, tenantStorageBudget } from '../config.ts';
import { newJobId } from '../ids.ts';
import { createRedisConnection, type RedisConnection } from '../redis.ts';
import { getContract } from '../registry.ts';
import { QUEUES } from './bullmq-layout.ts';
import { createJobRunStore, createJobStore, type JobStore, STORAGE_FREE_BYTES } from './job-store.ts';

/** An input of about `pad` bytes (`accept` stores it as given; the schema is not checked here). */
const input = (pad: number) => ({ durationMs: 1, note: 'x'.repeat(pad) });
const bytesOf = (value: unknown) => Buffer.byteLength(JSON.stringify(value));
/** What the budget counts of an input or a result of `bytes`: all but its free allowance. */
const counted = (bytes: number) => Math.max(0, bytes - STORAGE_FREE_BYTES);

describe('the per-tenant storage budget (real Redis)', () => {
  const prefix = uniquePrefix();
  let redis: RedisConnection;
  let queue: Queue;
  let store: JobStore;
  const config = loadConfig(
    {
      REDIS_URL: redisUrl(),
      QUEUE_PREFIX: prefix,
      TENANT_STORAGE_BYTES: '4000',
      TENANT_STORAGE_OVERRIDES: 'big:100000,free:0',
    },
    'worker',
  );

  beforeAll(async () => {
    redis = createRedisConnection(redisUrl(), 'worker');
    queue = new Queue(QUEUES.analyses, { connection: redis, prefix });
    store = createJobStore({
      redis,
      queue,
      config,
      // Entries are checked at once: a test's job is either added or deliberately gone.
      settleMs: 0,
      storageBudget: (tenant) => tenantStorageBudget(config.limits, tenant),
    });
  });
  afterAll(async () => {
    await queue.close();
    await redis.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  /** Admits and, when admitted, adds one job: what a submit does. */
  async function submit(tenant: string, value: unknown) {
    const id = newJobId();
    const admission = await store.admit(tenant, id, undefined, bytesOf(value));
    if (admission.kind === 'new') {
      await store.accept({ tenant, id, contract: getContract('simulate'), input: value });
    }
    return { id, admission };
  }

  const total = async (tenant: string) => Number((await redis.hget(store.layout.storageBytes(tenant), 'total')) ?? 0);

  it('G25: when a tenant reaches its budget, then admission refuses it with the budget, and another tenant is still admitted', async () => {
    const first = await submit('full', input(2000));
    const second = await submit('full', input(2000));
    expect(first.admission.kind).toBe('new');
    expect(second.admission.kind).toBe('new');
    expect(await total('full')).toBe(counted(bytesOf(input(2000))) * 2);

    const third = await submit('full', input(2000));
    expect(third.admission).toMatchObject({ kind: 'storage_full', budget: 4000 });
    // Refused: nothing counted, no job added, no backlog place held.
    expect(await total('full')).toBe(counted(bytesOf(input(2000))) * 2);
    expect(await redis.exists(store.layout.job(QUEUES.analyses, third.id))).toBe(0);

    expect((await submit('other', input(2000))).admission.kind).toBe('new');
  });

  it('G25: when the jobs that hold the bytes are gone, then their bytes are freed by the next admissions that need them', async () => {
    const a = await submit('gone', input(2000));
    const b = await submit('gone', input(2000));
    expect((await submit('gone', input(2000))).admission.kind).toBe('storage_full');
    // Retention (or a crash that lost the completion) removes jobs behind the counter's back.
    await queue.remove(a.id);
    await queue.remove(b.id);
    // Each admission checks two entries at random; one that would not fit checks up to 200.
    expect((await submit('gone', input(2000))).admission.kind).toBe('new');
    expect((await submit('gone', input(2000))).admission.kind).toBe('new');
    expect(await total('gone')).toBe(counted(bytesOf(input(2000))) * 2);
  });

  it('when a result is counted twice (a retried attempt), then it is counted once, and it frees with its job', async () => {
    const runStore = createJobRunStore({ redis, prefix });
    const job = await submit('results', input(100));
    const ended = { ended: true, stillActive: false };
    await runStore.finish('results', job.id, ended, { resultBytes: 3500 });
    await runStore.finish('results', job.id, ended, { resultBytes: 3500 });
    expect(await total('results')).toBe(counted(3500));
    expect((await submit('results', input(2000))).admission.kind).toBe('storage_full');

    await queue.remove(job.id);
    expect((await submit('results', input(2000))).admission.kind).toBe('new');
    expect(await total('results')).toBe(counted(bytesOf(input(2000))));
  });

  it('when a job of the earlier layout (one figure a field) is gone, then both its figures are freed', async () => {
    const key = store.layout.storageBytes('upgraded');
    const old = newJobId();
    await redis.hset(key, old, '1500', `${old}:r`, '2000', 'total', '3500');
    const fresh = await submit('upgraded', input(100));
    expect(fresh.admission.kind).toBe('new');
    // Sampled at random, two fields a submit; this one would not fit beside either, so up to 200.
    expect((await submit('upgraded', input(2500))).admission.kind).toBe('new');
    expect(await redis.hexists(key, old)).toBe(0);
    expect(await redis.hexists(key, `${old}:r`)).toBe(0);
    expect(await total('upgraded')).toBe(counted(bytesOf(input(2500))));
  });

  it('when a job is counted, then its one field holds its input, its result and when it was first counted', async () => {
    const runStore = createJobRunStore({ redis, prefix });
    const job = await submit('fields', input(600));
    await runStore.finish('fields', job.id, { ended: true, stillActive: false }, { resultBytes: 600 });
    const [inputBytes, result, since] = String(await redis.hget(store.layout.storageBytes('fields'), job.id)).split(
      ',',
    );
    expect(Number(inputBytes)).toBe(counted(bytesOf(input(600))));
    expect(Number(result)).toBe(counted(600));
    expect(Math.abs(Number(since) - Date.now() / 1000)).toBeLessThan(60);
    expect(await redis.hlen(store.layout.storageBytes('fields'))).toBe(2);
    expect(await total('fields')).toBe(counted(bytesOf(input(600))) + counted(600));
  });

  it("when a job's input and result are within the free allowance, then nothing is counted and no field is kept", async () => {
    const runStore = createJobRunStore({ redis, prefix });
    const job = await submit('small', input(10));
    expect(job.admission.kind).toBe('new');
    await runStore.finish('small', job.id, { ended: true, stillActive: false }, { resultBytes: STORAGE_FREE_BYTES });
    expect(await redis.hlen(store.layout.storageBytes('small'))).toBe(0);
    // One byte past the allowance counts that byte, in the job's own field.
    await runStore.finish(
      'small',
      job.id,
      { ended: true, stillActive: false },
      { resultBytes: STORAGE_FREE_BYTES + 1 },
    );
    expect(await total('small')).toBe(1);
    expect(await redis.hexists(store.layout.storageBytes('small'), job.id)).toBe(1);
    // A retried attempt that stores a small result again frees the byte and the field.
    await runStore.finish('small', job.id, { ended: true, stillActive: false }, { resultBytes: 10 });
    expect(await total('small')).toBe(0);
    expect(await redis.hexists(store.layout.storageBytes('small'), job.id)).toBe(0);
  });

  it("when a job's input and result are within the free allowance, then its admission and end leave the budget's hash as it was", async () => {
    const runStore = createJobRunStore({ redis, prefix });
    const key = store.layout.storageBytes('untouched');
    expect((await submit('untouched', input(1000))).admission.kind).toBe('new');
    const before = await redis.hgetall(key);
    // A mark on the hash's expiry: any write of the budget refreshes it to the budget's full life.
    await redis.pexpire(key, 100_000);
    const job = await submit('untouched', input(10));
    expect(job.admission.kind).toBe('new');
    await runStore.finish('untouched', job.id, { ended: true, stillActive: false }, { resultBytes: 10 });
    expect(await redis.pttl(key)).toBeLessThanOrEqual(100_000);
    expect(await redis.hgetall(key)).toEqual(before);
  });

  it("when a tenant's budget counts nothing, then its admissions sample no entries to repair; once it counts bytes, they do", async () => {
    const key = store.layout.storageBytes('sampled');
    const samples = async (value: unknown) => {
      const watch = await watchCommands(redisUrl(), prefix);
      expect((await submit('sampled', value)).admission.kind).toBe('new');
      return (await watch.stop()).filter(([name, k]) => name === 'HRANDFIELD' && k === key).length;
    };
    expect(await samples(input(10))).toBe(0);
    expect(await samples(input(1000))).toBe(0);
    // The hash now counts that input: each admission checks two of its entries.
    expect(await samples(input(10))).toBe(1);
  });

  it('when a tenant has an override, then its own budget applies; 0 turns the budget off for it', async () => {
    for (let i = 0; i < 3; i++) expect((await submit('big', input(1500))).admission.kind).toBe('new');
    for (let i = 0; i < 3; i++) expect((await submit('free', input(1500))).admission.kind).toBe('new');
    expect(await redis.exists(store.layout.storageBytes('free'))).toBe(0);
  });

  it('when an admitted id is admitted again (a replay finishing its first request), then its bytes are not counted twice', async () => {
    const id = newJobId();
    const value = input(1000);
    expect((await store.admit('replay', id, undefined, bytesOf(value))).kind).toBe('new');
    expect((await store.admit('replay', id, undefined, bytesOf(value))).kind).toBe('new');
    expect(await total('replay')).toBe(counted(bytesOf(value)));
  });

  it("G25: when a schedule's runs start past the budget, then their inputs are refused, and a retried run is counted once", async () => {
    const runs = createJobRunStore({ redis, prefix });
    const tenant = 'scheduled';
    const budget = tenantStorageBudget(config.limits, tenant);
    const first = newJobId();
    expect(await runs.chargeInput(tenant, first, 3000, budget)).toBe(true);
    // The same run started again (a retry) replaces its figure.
    expect(await runs.chargeInput(tenant, first, 3000, budget)).toBe(true);
    expect(await total(tenant)).toBe(counted(3000));
    // Runs are jobs in Redis: keep the first one there, so its bytes are not freed as gone.
    await store.accept({ tenant, id: first, contract: getContract('simulate'), input: input(10) });
    expect(await runs.chargeInput(tenant, newJobId(), 2500, budget)).toBe(false);
    expect(await total(tenant)).toBe(counted(3000));
    // Admission sees the same budget: a submission is refused too.
    expect((await submit(tenant, input(2500))).admission.kind).toBe('storage_full');
  });
});
