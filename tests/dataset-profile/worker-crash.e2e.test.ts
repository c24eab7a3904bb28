import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_A, systemEnv, waitForJob } from '../e2e/fixtures.ts';
import { api } from '../support/http.ts';
import { type AppProcess, startApi, startWorker } from '../support/processes.ts';
import { cleanupPrefix } from '../support/redis.ts';
import { generatedCsv, startDatasetServer } from './dataset-server.ts';

const ROWS = 100_000;
const MARKER = 'JOB-DATA-MARKER-7f3a';
const PRELOAD = fileURLToPath(new URL('./fault-on-signal.mjs', import.meta.url));

/** The worker's fatal log line, once it has exited. */
function fatalLine(worker: AppProcess): Record<string, unknown> | undefined {
  return worker.jsonLogs().find((line) => line.msg === 'uncaught exception; the worker exits');
}

describe('a worker that hits an uncaught exception', () => {
  const env: Record<string, string> = {
    ...systemEnv(),
    DATASET_ALLOW_PRIVATE: 'true',
    DATASET_CHECKPOINT_MS: '300',
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
  };
  const crashing = { ...env, NODE_OPTIONS: `--import ${PRELOAD}` };
  let datasets: Awaited<ReturnType<typeof startDatasetServer>>;
  let apiProcess: AppProcess;

  beforeAll(async () => {
    // ~2.5 MB at 250 kB/s: the profile is still running when the worker crashes.
    datasets = await startDatasetServer({ data: generatedCsv(ROWS), bytesPerSecond: 250_000 });
    apiProcess = await startApi(env);
  });
  afterAll(async () => {
    await apiProcess?.stop();
    await datasets?.close();
    await cleanupPrefix(env.REDIS_URL as string, env.QUEUE_PREFIX as string);
  });

  it('G14: when an uncaught exception hits a worker mid-job, then it is logged without job data, the process exits non-zero and another worker completes the job', async () => {
    const client = api(apiProcess.url, KEY_A);
    const first = await startWorker(crashing);
    let second: AppProcess | undefined;
    try {
      const res = await client.post('/v1/jobs', {
        type: 'dataset-profile',
        input: { source: { url: `${datasets.url}/data.csv` } },
      });
      expect(res.status).toBe(202);
      const id = res.body.id as string;
      await waitForJob(client, id, (v) => v.status === 'active' && (v.progress?.percent ?? 0) > 0);

      first.signal('SIGUSR2');
      const exit = await first.exited;
      expect(exit.code).toBe(1);
      const fatal = fatalLine(first);
      expect(fatal).toMatchObject({ origin: 'uncaughtException', err: { message: 'injected uncaught exception' } });
      expect(first.logs()).not.toContain(MARKER);

      second = await startWorker(env);
      const done = await waitForJob(client, id, (v) => v.status === 'completed' || v.status === 'failed', 60_000);
      expect(done.status).toBe('completed');
      expect((await client.get(`/v1/jobs/${id}/result`)).body.result.rowCount).toBe(ROWS);
    } finally {
      await first.kill();
      await second?.stop();
    }
  }, 120_000);

  it('when a rejection goes unhandled in a worker, then it is logged without job data and the process exits non-zero', async () => {
    const worker = await startWorker(crashing);
    try {
      worker.signal('SIGWINCH');
      expect((await worker.exited).code).toBe(1);
      expect(fatalLine(worker)).toMatchObject({
        origin: 'unhandledRejection',
        err: { message: 'injected unhandled rejection' },
      });
      expect(worker.logs()).not.toContain(MARKER);
    } finally {
      await worker.kill();
    }
  });
});
