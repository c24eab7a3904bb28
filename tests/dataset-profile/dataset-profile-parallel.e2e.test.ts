import { comparableStatistics } from '@longhaul/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSystem, waitForJob } from '../e2e/fixtures.ts';
import { startWorker } from '../support/processes.ts';
import { generatedCsv, startDatasetServer } from './dataset-server.ts';
import { expectedStats } from './expected.ts';

type Column = {
  name: string;
  stdDev: number | null;
  distinct: { value: number; estimated: boolean };
  [k: string]: unknown;
};
type Result = { rowCount: number; columns: Column[]; parallel: boolean; parts: number; reason?: string };

describe('dataset-profile in parallel through the real api and two workers', () => {
  let sys: Awaited<ReturnType<typeof startSystem>>;
  let second: Awaited<ReturnType<typeof startWorker>>;
  let datasets: Awaited<ReturnType<typeof startDatasetServer>>;
  // About 3 MB: four parts of 0.7 MB, small enough for a loaded 2-core machine.
  const rows = 150_000;

  beforeAll(async () => {
    datasets = await startDatasetServer({ data: generatedCsv(rows) });
    sys = await startSystem({ DATASET_ALLOW_PRIVATE: 'true', DATASET_FETCH_TIMEOUT_MS: '10000' });
    second = await startWorker(sys.env);
  });
  afterAll(async () => {
    await second?.stop();
    await sys?.stop();
    await datasets?.close();
  });

  const profile = async (parallelism: number) => {
    const res = await sys.a.post('/v1/jobs', {
      type: 'dataset-profile',
      input: { source: { url: `${datasets.url}/data.csv` }, parallelism },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const view = await waitForJob(
      sys.a,
      res.body.id,
      (v) => v.status === 'completed' || v.status === 'failed',
      120_000,
    );
    expect(view.status, JSON.stringify(view.error)).toBe('completed');
    const result = await sys.a.get(`/v1/jobs/${res.body.id}/result`);
    return { id: res.body.id as string, result: result.body.result as Result & Record<string, unknown> };
  };

  it('when a URL CSV with Range support is profiled with parallelism 4, then 4 child jobs give the exact statistics of parallelism 1', async () => {
    const one = await profile(1);
    expect(one.result).toMatchObject({ parallel: false, parts: 1, reason: 'parallelism is 1', rowCount: rows });

    const four = await profile(4);
    expect(four.result).toMatchObject({ parallel: true, parts: 4, rowCount: rows });
    expect(comparableStatistics(four.result)).toEqual(comparableStatistics(one.result));

    // The statistics are also the right ones, computed independently.
    const expected = expectedStats(rows);
    const value = four.result.columns.find((c) => c.name === 'value') as Column;
    expect(value).toMatchObject({ min: expected.value.min, max: expected.value.max, count: rows });
    expect(value.mean as number).toBeCloseTo(expected.value.mean, 9);

    // The parts were real jobs, children of the profile, each of them completed.
    const children = await sys.a.get(`/v1/jobs/${four.id}/children`);
    expect(children.status).toBe(200);
    const views = children.body.children as { type: string; status: string; parentId: string }[];
    expect(views).toHaveLength(4);
    for (const child of views)
      expect(child).toMatchObject({ type: 'dataset-profile-part', status: 'completed', parentId: four.id });
  }, 240_000);
});
