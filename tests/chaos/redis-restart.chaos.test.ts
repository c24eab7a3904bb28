import { QUEUES } from '@longhaul/shared';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../support/http.ts';
import { type AppProcess, startApi } from '../support/processes.ts';
import { uniquePrefix } from '../support/redis.ts';
import { type RedisServer, startRedisServer } from '../support/redis-server.ts';
import { waitFor } from '../support/wait.ts';
import {
  chaosEnv,
  countBy,
  executionCounts,
  executionLogFile,
  FAULT_TIMEOUT,
  leakedSecrets,
  readExecutions,
  recordFigures,
  SECRETS,
  size,
  sleep,
  startWorkers,
  submitJobs,
  waitAllFinal,
} from './chaos-support.ts';

/**
 * The jobs an outage can catch in flight: every job started before Redis was back whose
 * completion was not yet stored when Redis stopped. (The execution log's own "finish" line comes
 * a moment before BullMQ stores the completion; a run caught in between runs again, and was in
 * flight.)
 */
function inFlightDuring(log: string, completedAtStop: Set<string>, upAt: number): string[] {
  const started = new Set<string>();
  for (const e of readExecutions(log)) if (e.event === 'start' && e.at <= upAt) started.add(e.jobId);
  return [...started].filter((id) => !completedAtStop.has(id));
}

describe('G3/G4/G8 Redis restarted (AOF everysec) and down with idle workers, real processes', () => {
  const prefix = uniquePrefix();
  const log = executionLogFile();
  let redis: RedisServer;
  let env: Record<string, string>;
  const all: AppProcess[] = [];
  let apiProcess: AppProcess;

  beforeAll(async () => {
    redis = await startRedisServer({ appendonly: true, appendfsync: 'everysec' });
    env = chaosEnv(redis.url, prefix, {
      WORKER_CONCURRENCY: '4',
      LOCK_DURATION_MS: '3000',
      STALLED_INTERVAL_MS: '1000',
      SIMULATE_EXECUTION_LOG: log,
    });
    const [a, workers] = await Promise.all([startApi(env), startWorkers(2, env)]);
    apiProcess = a;
    all.push(a, ...workers);
  });
  afterAll(async () => {
    await Promise.all(all.map((p) => p.stop().catch(() => undefined)));
    await redis?.destroy();
  });

  it(
    'G3: when Redis restarts while jobs run, then the API answers 503 + Retry-After within 1 s while it is down, 2xx within 5 s after, and every accepted job completes',
    async () => {
      const client = api(apiProcess.url, SECRETS.keyA);
      const jobs = size(40, 200);
      const ids = await submitJobs(client, jobs, { durationMs: size(1_000, 2_000), steps: 4 });
      await waitFor(() => readExecutions(log).filter((e) => e.event === 'finish').length >= jobs * 0.2, {
        timeoutMs: 60_000,
        intervalMs: 20,
        what: 'a fifth of the jobs done',
      });

      // What Redis holds as completed when it stops: a job in it must never run again.
      const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
      const admin = new Queue(QUEUES.analyses, { connection, prefix });
      const completedAtStop = new Set((await admin.getJobs(['completed'], 0, -1)).map((j) => j.id ?? ''));
      await admin.close();
      connection.disconnect();
      const downAt = Date.now();
      await redis.stop();
      // While down: every request fails fast and says when to come back.
      const probes: number[] = [];
      for (let i = 0; i < 5; i++) {
        for (const send of [
          () => client.post('/v1/jobs', { type: 'simulate', input: { durationMs: 1 } }),
          () => client.get(`/v1/jobs/${ids[0]}`),
          () => client.get('/readyz'),
        ]) {
          const started = Date.now();
          const res = await send();
          probes.push(Date.now() - started);
          expect(res.status).toBe(503);
          expect(res.headers['retry-after']).toBeDefined();
          expect(Date.now() - started).toBeLessThan(1_000);
        }
        await sleep(200);
      }

      const restartAt = Date.now();
      await redis.restart();
      const upAt = Date.now();
      const inFlight = inFlightDuring(log, completedAtStop, restartAt);
      await waitFor(async () => (await client.get(`/v1/jobs/${ids[0]}`)).status === 200, {
        timeoutMs: 5_000,
        intervalMs: 50,
        what: 'the API to answer 2xx again',
      });
      const backMs = Date.now() - upAt;

      const final = await waitAllFinal(client, ids, size(60_000, 300_000));
      expect(countBy(final.values())).toEqual({ completed: jobs });
      // G8: a restart re-runs at most the jobs that were in flight when Redis went away.
      const { reExecuted, extraStarts } = executionCounts(readExecutions(log));
      expect(reExecuted.filter((id) => !inFlight.includes(id))).toEqual([]);
      expect(extraStarts).toBeLessThanOrEqual(inFlight.length);
      recordFigures('G3', {
        jobs,
        appendfsync: 'everysec',
        inFlightAtStop: inFlight.length,
        reExecutions: extraStarts,
        downForMs: upAt - downAt,
        worst503Ms: Math.max(...probes),
        back2xxAfterRestartMs: backMs,
      });
    },
    FAULT_TIMEOUT,
  );

  it(
    'G4: when Redis is down for 20 s with idle workers, then a job added after it returns completes within 5 s',
    async () => {
      const client = api(apiProcess.url, SECRETS.keyA);
      await redis.stop();
      await sleep(20_000);
      await redis.restart();
      const res = await waitFor(
        async () => {
          const r = await client.post('/v1/jobs', { type: 'simulate', input: { durationMs: 10, steps: 1 } });
          return r.status === 202 ? r : undefined;
        },
        { timeoutMs: 5_000, intervalMs: 100, what: 'the API to accept a job' },
      );
      const submittedAt = Date.now();
      const [status] = (await waitAllFinal(client, [res.body.id], 5_000)).values();
      expect(status).toBe('completed');
      recordFigures('G4', { downMs: 20_000, completedAfterSubmitMs: Date.now() - submittedAt });
    },
    FAULT_TIMEOUT,
  );

  it('G12: when the run is over, then no API key, password, token or job input appears in any process log', () => {
    expect(leakedSecrets(all)).toEqual([]);
  });
});
