import { layoutFor } from '@longhaul/shared';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSystem, waitForJob } from '../e2e/fixtures.ts';
import { generatedCsv, startDatasetServer } from './dataset-server.ts';
import { expectedStats } from './expected.ts';

const profile = (input: Record<string, unknown>) => ({ type: 'dataset-profile', input });
type Column = { name: string; type: string; count: number; nulls: number; [k: string]: unknown };

describe('dataset-profile through the real api and worker', () => {
  let sys: Awaited<ReturnType<typeof startSystem>>;
  let datasets: Awaited<ReturnType<typeof startDatasetServer>>;
  let redis: Redis;
  const csv = generatedCsv(3000);

  beforeAll(async () => {
    datasets = await startDatasetServer({ data: csv });
    sys = await startSystem({
      DATASET_ALLOW_PRIVATE: 'true',
      DATASET_FETCH_TIMEOUT_MS: '2000',
      RESULT_COMPRESS_BYTES: '1024',
      RESULT_MAX_BYTES: '32768',
      BODY_LIMIT_BYTES: String(4 * 1024 * 1024),
    });
    redis = new Redis(sys.env.REDIS_URL as string);
  });
  afterAll(async () => {
    redis?.disconnect();
    await sys?.stop();
    await datasets?.close();
  });

  const run = async (input: Record<string, unknown>) => {
    const res = await sys.a.post('/v1/jobs', profile(input));
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const steps = new Set<string>();
    const view = await waitForJob(
      sys.a,
      res.body.id,
      (v) => {
        if (v.progress) steps.add(v.progress.step);
        return v.status === 'completed' || v.status === 'failed';
      },
      60_000,
    );
    return { id: res.body.id as string, view, steps };
  };

  const checkAgainstIndependentStats = (result: { rowCount: number; columns: Column[] }) => {
    const expected = expectedStats(3000);
    expect(result.rowCount).toBe(3000);
    const byName = Object.fromEntries(result.columns.map((c) => [c.name, c]));
    expect(byName.id).toMatchObject({
      type: 'integer',
      count: 3000,
      nulls: 0,
      mean: expected.idMean,
      min: 0,
      max: 2999,
    });
    expect(byName.value).toMatchObject({ type: 'integer', min: expected.value.min, max: expected.value.max });
    expect(byName.value?.mean as number).toBeCloseTo(expected.value.mean, 9);
    expect(byName.value?.stdDev as number).toBeCloseTo(expected.value.std, 9);
    // 3000 distinct values, above the exact limit (1000): a HyperLogLog estimate, 0.81% standard error.
    const distinct = byName.value?.distinct as { value: number; estimated: boolean };
    expect(distinct.estimated).toBe(true);
    expect(Math.abs(distinct.value - expected.value.distinct) / expected.value.distinct).toBeLessThan(0.0325);
    expect(byName.group).toMatchObject({ type: 'string', distinct: { value: 13, estimated: false } });
    expect(byName.flag?.topK).toContainEqual({ value: 'true', count: expected.flags });
  };

  it('when an inline CSV is submitted, then it completes through the named steps with exact statistics, stored compressed', async () => {
    const { id, view, steps } = await run({ source: { inline: csv.toString() }, topK: 5 });
    expect(view.status).toBe('completed');
    expect(view.attempts.made).toBe(1);
    expect(steps.has('finalizing') || steps.has('aggregating')).toBe(true);
    const res = await sys.a.get(`/v1/jobs/${id}/result`);
    expect(res.status).toBe(200);
    checkAgainstIndependentStats(res.body.result);
    expect(res.body.result).toMatchObject({ format: 'csv', resumedFrom: 0, parseErrors: { count: 0 } });
    // Above RESULT_COMPRESS_BYTES: gzipped in Redis, served decompressed above.
    const stored = JSON.parse(
      (await redis.hget(layoutFor(sys.env.QUEUE_PREFIX as string).job('analyses', id), 'returnvalue')) ?? '{}',
    );
    expect(stored.encoding).toBe('gzip');
  });

  it('when a URL is submitted, then the worker streams it and profiles the same statistics', async () => {
    const { id, view } = await run({ source: { url: `${datasets.url}/data.csv` } });
    expect(view.status).toBe('completed');
    const res = await sys.a.get(`/v1/jobs/${id}/result`);
    checkAgainstIndependentStats(res.body.result);
    expect(res.body.result.bytes).toBe(csv.length);
  });

  it('when the input is invalid, then the API answers 400 with the fields at fault', async () => {
    const res = await sys.a.post('/v1/jobs', profile({ source: { url: 'ftp://example.com/a.csv' }, topK: 1000 }));
    expect(res.status).toBe(400);
    const text = JSON.stringify(res.body.error.details);
    expect(text).toContain('topK');
    expect(text).toContain('source');
  });

  it('when the dataset is blank, unreachable or gone, then the job fails at once with a clear reason', async () => {
    const blank = await run({ source: { inline: '\n\n' } });
    expect(blank.view.status).toBe('failed');
    expect(blank.view.attempts.made).toBe(1);
    expect(blank.view.error).toEqual({ code: 'invalid_input', message: 'the dataset is empty (only blank lines)' });

    const gone = await run({ source: { url: `${datasets.url}/missing.csv` } });
    expect(gone.view.error).toEqual({ code: 'invalid_input', message: 'the dataset URL answered HTTP 404' });
    expect(gone.view.attempts.made).toBe(1);
  });

  it('when malformed rows are mixed in, then the job completes with a partial profile listing them', async () => {
    const { id, view } = await run({ source: { inline: 'a,b\n1,2\n3\n4,5\n' } });
    expect(view.status).toBe('completed');
    const res = await sys.a.get(`/v1/jobs/${id}/result`);
    expect(res.body.result.rowCount).toBe(2);
    expect(res.body.result.parseErrors).toEqual({
      count: 1,
      first: [{ line: 3, message: 'expected 2 fields, found 1; the row is skipped' }],
    });
  });

  it('when the profile is larger than RESULT_MAX_BYTES once compressed, then the job fails as result_too_large', async () => {
    const cols = 100;
    const lines = [Array.from({ length: cols }, (_, c) => `c${c}`).join(',')];
    for (let r = 0; r < 200; r++) {
      lines.push(
        Array.from(
          { length: cols },
          (_, c) => `${((r * 2654435761 + c * 40503) >>> 0).toString(36).padStart(8, 'q')}x${r}y${c}`,
        ).join(','),
      );
    }
    const { view } = await run({ source: { inline: lines.join('\n') }, topK: 100 });
    expect(view.status).toBe('failed');
    expect(view.error?.code).toBe('result_too_large');
    expect(view.error?.message).toMatch(/the cap is 32768/);
  });
});
