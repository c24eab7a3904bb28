import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { analyses, comparableStatistics, type DatasetProfileResult } from '@longhaul/shared';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnalysisContext } from '../define-analysis.ts';
import { createDatasetProfile } from './dataset-profile.ts';
import { createDatasetProfilePart } from './dataset-profile-part.ts';

const files = new Map<string, Buffer>();
let server: Server;
let base: string;

/** Serves `files` with Range support (`bytes=a-b` and `bytes=a-`), except under /plain/, which ignores ranges. */
beforeAll(async () => {
  server = createServer((req, res) => {
    const path = (req.url ?? '').replace(/^\/plain/, '');
    const data = files.get(path);
    if (!data) return void res.writeHead(404).end();
    const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
    const headers = { etag: '"e1"', 'content-type': path.endsWith('.csv') ? 'text/csv' : 'application/x-ndjson' };
    if (!range || req.url?.startsWith('/plain/')) {
      res.writeHead(200, { ...headers, 'content-length': data.length });
      return void res.end(data);
    }
    const from = Number(range[1]);
    const to = Math.min(range[2] ? Number(range[2]) : data.length - 1, data.length - 1);
    res.writeHead(206, { ...headers, 'content-range': `bytes ${from}-${to}/${data.length}` });
    res.end(data.subarray(from, to + 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const limits = { allowPrivate: true, fetchTimeoutMs: 5_000 };
const profile = createDatasetProfile(limits);
const part = createDatasetProfilePart(limits);
const log = pino({ level: 'silent' });

/** A context whose durable steps are kept in memory, and which cannot spawn; `spawned` records each spawn's size. */
function contextOf(): AnalysisContext & { spawned: number[] } {
  const steps = new Map<string, unknown>();
  return {
    jobId: 'job_test',
    attempt: 1,
    run: 1,
    progress: () => undefined,
    checkpoint: async () => undefined,
    restored: undefined,
    signal: new AbortController().signal,
    log,
    spawned: [],
    spawn: (async () => {
      throw new Error('this context cannot spawn');
    }) as AnalysisContext['spawn'],
    async step(name, fn) {
      if (!steps.has(name)) steps.set(name, JSON.parse(JSON.stringify(await fn())));
      return steps.get(name) as never;
    },
  };
}

/**
 * A context whose `spawn` runs each child in-process, one after the other, as a worker would run
 * it (its input parsed by the contract, its result through JSON), and reports each one's outcome
 * as `continueOnFailure` does; a child listed in `failing` fails.
 */
function withSpawn(failing: number[] = []) {
  const ctx = contextOf();
  return Object.assign(ctx, {
    async spawn(children: { type: string; input: unknown }[]) {
      ctx.spawned.push(children.length);
      const results: unknown[] = [];
      for (const [k, child] of children.entries()) {
        expect(child.type).toBe('dataset-profile-part');
        const input = analyses['dataset-profile-part'].input.parse(JSON.parse(JSON.stringify(child.input)));
        const outcome = failing.includes(k)
          ? { status: 'failed', error: { code: 'invalid_input', message: 'the dataset changed' } }
          : await part
              .run(input, { ...contextOf(), jobId: `job_child_${k}` })
              .then((result) => ({ status: 'completed', result }))
              .catch((err: Error) => ({ status: 'failed', error: { code: 'analysis_failed', message: err.message } }));
        results.push(JSON.parse(JSON.stringify({ id: `job_child_${k}`, ...outcome })));
      }
      return results;
    },
  });
}

const run = (input: Record<string, unknown>, ctx: AnalysisContext) =>
  profile.run(analyses['dataset-profile'].input.parse(input), ctx) as Promise<DatasetProfileResult>;

function csvOf(rows: number): Buffer {
  const lines = ['id,amount,city,paid,at,note'];
  for (let i = 0; i < rows; i++) {
    const amount = i % 11 === 0 ? 'NA' : ((i * 7919) % 900) / 4;
    const note = i % 5 === 0 ? `"a, ""quoted"" note ${i % 9}"` : `note ${i % 40}`;
    lines.push(
      `${i % 700},${amount},city${i % 60},${i % 3 === 0},2024-01-${String(1 + (i % 28)).padStart(2, '0')},${note}`,
    );
  }
  return Buffer.from(`${lines.join('\n')}\n`);
}

describe('dataset-profile in parallel parts', () => {
  it('when a URL CSV with Range support is profiled with parallelism 4, then 4 parts give the one-pass statistics exactly', async () => {
    files.set('/data.csv', csvOf(40_000));
    const single = await run({ source: { url: `${base}/data.csv` }, parallelism: 1 }, withSpawn());
    expect(single).toMatchObject({ parallel: false, parts: 1, reason: 'parallelism is 1' });

    const ctx = withSpawn();
    const parallel = await run({ source: { url: `${base}/data.csv` }, parallelism: 4 }, ctx);
    expect(ctx.spawned).toEqual([4]);
    expect(parallel).toMatchObject({ parallel: true, parts: 4 });
    expect(parallel.reason).toBeUndefined();
    expect(comparableStatistics(parallel)).toEqual(comparableStatistics(single));
    expect(parallel.attempts).toBe(single.attempts);
    expect(parallel.rowCount).toBe(40_000);
  }, 60_000);

  it('when NDJSON is profiled in parts, then the statistics equal one pass', async () => {
    const lines = Array.from({ length: 40_000 }, (_, i) =>
      JSON.stringify({ id: i % 500, v: i % 9 === 0 ? null : i / 8, tag: i % 4 ? 'x' : ['y', i % 3] }),
    );
    files.set('/data.ndjson', Buffer.from(`${lines.join('\n')}\n`));
    const single = await run({ source: { url: `${base}/data.ndjson` }, parallelism: 1 }, withSpawn());
    const parallel = await run({ source: { url: `${base}/data.ndjson` }, parallelism: 3 }, withSpawn());
    expect(parallel).toMatchObject({ parallel: true, parts: 3, format: 'ndjson' });
    expect(comparableStatistics(parallel)).toEqual(comparableStatistics(single));
    expect(parallel.attempts).toBe(single.attempts);
  }, 60_000);

  it('when a quoted field with newlines spans a split point, then the parts detect it and the dataset is read in one pass', async () => {
    const long = Array.from({ length: 100_000 }, (_, i) => `line ${i}`).join('\n');
    const head = Array.from({ length: 2000 }, (_, i) => `${i},short`).join('\n');
    files.set('/quoted.csv', Buffer.from(`k,text\n${head}\nbig,"${long}"\n${head}\n`));
    const ctx = withSpawn();
    const result = await run({ source: { url: `${base}/quoted.csv` }, parallelism: 2 }, ctx);
    expect(ctx.spawned).toEqual([2]);
    expect(result).toMatchObject({ parallel: false, parts: 1, rowCount: 4001 });
    expect(result.reason).toMatch(
      /^a quoted field holds a newline across byte \d+, where the dataset was split; the dataset was read in one pass instead$/,
    );
    expect(result.parseErrors.count).toBe(0);
  }, 60_000);

  it('when the server ignores Range requests, or the source is inline, then it is one pass with the reason', async () => {
    files.set('/small.csv', csvOf(20_000));
    const ctx = withSpawn();
    const plain = await run({ source: { url: `${base}/plain/small.csv` }, parallelism: 4 }, ctx);
    expect(plain).toMatchObject({
      parallel: false,
      parts: 1,
      reason: 'the dataset cannot be split: its server ignores Range requests',
    });
    expect(ctx.spawned).toEqual([]);
    const inline = await run({ source: { inline: 'a,b\n1,2\n' }, parallelism: 4 }, withSpawn());
    expect(inline).toMatchObject({ parallel: false, reason: 'an inline dataset is read in one pass' });
    // Without parallelism, the size decides: one part per 64 MiB, so a small file is one pass.
    const byDefault = await run({ source: { url: `${base}/small.csv` } }, withSpawn());
    expect(byDefault).toMatchObject({ parallel: false, reason: 'the dataset is smaller than 64 MiB' });
  }, 60_000);

  it('when a part fails for good, then the dataset is read in one pass and says which part', async () => {
    files.set('/data.csv', csvOf(40_000));
    const result = await run({ source: { url: `${base}/data.csv` }, parallelism: 3 }, withSpawn([1]));
    expect(result).toMatchObject({ parallel: false, rowCount: 40_000 });
    expect(result.reason).toBe('part 2 of 3 failed: the dataset changed; the dataset was read in one pass instead');
  }, 60_000);
});
