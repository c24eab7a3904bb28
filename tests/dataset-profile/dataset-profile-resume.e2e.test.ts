import { layoutFor, OWN_FIELDS } from '@longhaul/shared';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_A, systemEnv, waitForJob } from '../e2e/fixtures.ts';
import { api } from '../support/http.ts';
import { startApi, startWorker } from '../support/processes.ts';
import { cleanupPrefix } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';
import { generatedCsv, startDatasetServer } from './dataset-server.ts';
import { expectedStats } from './expected.ts';

const ROWS = 600_000;

describe('dataset-profile resumes after its worker is killed', () => {
  const env: Record<string, string> = {
    ...systemEnv(),
    DATASET_ALLOW_PRIVATE: 'true',
    DATASET_CHECKPOINT_MS: '300',
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
  };
  const csv = generatedCsv(ROWS);
  let datasets: Awaited<ReturnType<typeof startDatasetServer>>;
  let apiProcess: Awaited<ReturnType<typeof startApi>>;
  let redis: Redis;

  beforeAll(async () => {
    // ~15 MB served at 1.5 MB/s: long enough to kill the worker mid-profile.
    datasets = await startDatasetServer({ data: csv, bytesPerSecond: 1.5e6 });
    apiProcess = await startApi(env);
    redis = new Redis(env.REDIS_URL as string);
  });
  afterAll(async () => {
    redis?.disconnect();
    await apiProcess?.stop();
    await datasets?.close();
    await cleanupPrefix(env.REDIS_URL as string, env.QUEUE_PREFIX as string);
  });

  it('when the worker is killed -9 mid-profile, then another worker resumes from the checkpoint and counts every row once', async () => {
    const client = api(apiProcess.url, KEY_A);
    const first = await startWorker(env);
    const res = await client.post('/v1/jobs', {
      type: 'dataset-profile',
      input: { source: { url: `${datasets.url}/data.csv` } },
    });
    expect(res.status).toBe(202);
    const id = res.body.id as string;
    const jobKey = layoutFor(env.QUEUE_PREFIX as string).job('analyses', id);
    const readCheckpoint = () => redis.hget(jobKey, OWN_FIELDS.checkpoint);
    // Killed once a checkpoint exists and the profile is well under way, but far from done.
    await waitFor(
      async () => {
        const saved = await readCheckpoint();
        return saved && (JSON.parse(saved) as { offset: number }).offset > csv.length * 0.2;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'a checkpoint past 20% of the dataset' },
    );
    await first.kill();
    const saved = JSON.parse((await readCheckpoint()) as string) as { offset: number; rows: number };
    expect(saved.offset).toBeLessThan(csv.length);

    const second = await startWorker(env);
    try {
      const done = await waitForJob(client, id, (v) => v.status === 'completed' || v.status === 'failed', 120_000);
      expect(done.status).toBe('completed');
      const result = (await client.get(`/v1/jobs/${id}/result`)).body.result;
      const expected = expectedStats(ROWS);
      expect(result.resumedFrom).toBeGreaterThanOrEqual(saved.offset);
      expect(result.resumedFrom).toBeGreaterThan(0);
      // Rows counted exactly once: the count, and sums that double-counting would shift.
      expect(result.rowCount).toBe(ROWS);
      const byName = Object.fromEntries(result.columns.map((c: { name: string }) => [c.name, c]));
      expect(byName.id).toMatchObject({ count: ROWS, mean: expected.idMean, min: 0, max: ROWS - 1 });
      expect(byName.value.mean).toBeCloseTo(expected.value.mean, 6);
      expect(byName.flag.topK).toContainEqual({ value: 'true', count: expected.flags });
      expect(byName.group.topK).toContainEqual({ value: 'g0', count: expected.groups.get('g0') });
    } finally {
      await second.stop();
    }
  }, 240_000);
});
