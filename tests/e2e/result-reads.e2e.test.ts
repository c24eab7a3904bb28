import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_A, simulate, startSystem, waitForJob } from './fixtures.ts';

const MiB = 1024 * 1024;
/** The largest result `simulate` makes (SIMULATE_MAX_RESULT_BYTES in its contract). */
const SIMULATE_MAX_RESULT_BYTES = 8 * MiB;

/** A process' resident set (`VmRSS`) and its peak so far (`VmHWM`), in bytes, from /proc. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kB = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rss: kB('VmRSS') * 1024, peak: kB('VmHWM') * 1024 };
}

/** GET, counting the body's bytes without keeping them (50 bodies of 8 MiB would weigh on the test). */
function readLength(url: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    get(url, { headers: { authorization: `Bearer ${KEY_A}` } }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

describe.skipIf(process.platform !== 'linux')('result reads of the largest result, real processes', () => {
  let system: Awaited<ReturnType<typeof startSystem>>;
  let id: string;
  let fullBytes: number;

  beforeAll(async () => {
    // The result cap just above the largest result `simulate` makes: the largest allowed result.
    system = await startSystem({
      RESULT_MAX_BYTES: String(SIMULATE_MAX_RESULT_BYTES + MiB),
      RATE_LIMIT_PER_MINUTE: '0',
    });
    const res = await system.a.post(
      '/v1/jobs',
      simulate({ durationMs: 0, steps: 1, resultBytes: SIMULATE_MAX_RESULT_BYTES }),
    );
    expect(res.status).toBe(202);
    id = res.body.id;
    await waitForJob(system.a, id, (v) => v.status === 'completed', 30_000);
  });
  afterAll(async () => {
    await system?.stop();
  });

  it('when the result is read, then the body is the envelope with the whole result, byte for byte valid JSON', async () => {
    const res = await system.a.get(`/v1/jobs/${id}/result`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(Object.keys(res.body)).toEqual(['id', 'type', 'completedAt', 'expiresAt', 'result']);
    expect(res.body).toMatchObject({ id, type: 'simulate' });
    expect(typeof res.body.completedAt).toBe('string');
    expect(res.body.result.payload).toHaveLength(SIMULATE_MAX_RESULT_BYTES);
    fullBytes = (await readLength(`${system.api.url}/v1/jobs/${id}/result`)).bytes;
    expect(fullBytes).toBeGreaterThan(SIMULATE_MAX_RESULT_BYTES);
  });

  it('when 50 clients read the largest allowed result at once, then every read succeeds and the API resident memory stays bounded', async () => {
    const before = memoryOf(system.api.pid);
    const reads = await Promise.all(
      Array.from({ length: 50 }, () => readLength(`${system.api.url}/v1/jobs/${id}/result`)),
    );
    const after = memoryOf(system.api.pid);
    for (const read of reads) expect(read).toEqual({ status: 200, bytes: fullBytes });
    // Re-parsing and re-serialising each 8 MiB result grew the API by ~200 MB; streaming a few at
    // a time costs a few zlib windows and socket buffers. The bound leaves generous headroom.
    const grown = after.peak - Math.max(before.rss, 0);
    expect(grown).toBeLessThan(96 * MiB);
  });
});
