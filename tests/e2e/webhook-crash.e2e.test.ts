import { setTimeout as sleep } from 'node:timers/promises';
import { layoutFor, QUEUES } from '@longhaul/shared';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executionLogFile, readExecutions } from '../chaos/chaos-support.ts';
import { startReceiver } from '../clients/webhook-receiver.ts';
import { api } from '../support/http.ts';
import { type AppProcess, startApi, startWorker } from '../support/processes.ts';
import { type RedisServer, startRedisServer } from '../support/redis-server.ts';
import { waitFor } from '../support/wait.ts';
import { KEY_A, simulate, systemEnv, waitForJob } from './fixtures.ts';

const SECRET = 'whsec-tenant-a-crash-0123456789';

/**
 * Clients Redis holds a script of back (postponed by a pause). Blocking reads (BZPOPMIN, XREAD)
 * are blocked too, but never on a script.
 */
async function heldScripts(redis: Redis): Promise<string[]> {
  const list = (await redis.call('CLIENT', 'LIST')) as string;
  return list.split('\n').filter((line) => /\bflags=\S*b/.test(line) && /\bcmd=(evalsha|eval)\b/.test(line));
}

describe('a finished job’s webhook survives its worker’s SIGKILL (real processes, private redis-server)', () => {
  let redis: RedisServer;
  let env: Record<string, string>;
  let apiProcess: AppProcess;
  const log = executionLogFile();
  const started: AppProcess[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    env = {
      ...systemEnv(redis.url),
      WEBHOOK_SECRETS: `a:${SECRET}`,
      // The receiver listens on 127.0.0.1.
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_BACKOFF_MS: '100',
      SIMULATE_EXECUTION_LOG: log,
    };
    apiProcess = await startApi(env);
  });
  afterAll(async () => {
    await Promise.all(started.map((p) => p.kill()));
    await apiProcess?.stop();
    await redis?.destroy();
  });

  it('when the worker is killed with SIGKILL the moment its job completed, then a fresh worker delivers the completed webhook exactly once', async () => {
    const receiver = await startReceiver();
    const admin = new Redis(redis.url);
    try {
      const client = api(apiProcess.url, KEY_A);
      const first = await startWorker(env);
      started.push(first);
      // One step and no checkpoint: once the step has slept, the job only has its completion to write.
      const res = await client.post(
        '/v1/jobs',
        simulate({ durationMs: 1_500, steps: 1 }, { webhook: { url: receiver.url() } }),
      );
      expect(res.status).toBe(202);
      const id = res.body.id as string;
      await waitForJob(client, id, (v) => v.status === 'active');
      // Running its analysis, not just taken: the attempt's start script writes (the fair-share
      // gate), so a pause that caught it there would hold the job before it ran at all.
      await waitFor(() => readExecutions(log).some((e) => e.event === 'start' && e.jobId === id), {
        what: 'the analysis to start',
      });

      // Hold every write back, so the completion waits inside Redis while the job finishes...
      await admin.call('CLIENT', 'PAUSE', '20000', 'WRITE');
      try {
        await waitFor(() => readExecutions(log).some((e) => e.event === 'finish' && e.jobId === id), {
          what: 'the job to finish running',
        });
        await first.waitForLog(new RegExp(`"jobId":"${id}".*"analysis completed"`));
        await waitFor(async () => (await heldScripts(admin)).length > 0, { what: 'the completion to reach Redis' });
        // The first script held is the result's storage accounting; the slot hand-over and BullMQ's
        // completion follow it on the same connection, a few microtasks later. Give the worker time
        // to write them (they wait in Redis' input buffer behind the held one) before freezing it.
        await sleep(1_000);
        // ...then freeze the worker: it runs nothing after the completion lands, as if killed right then.
        first.signal('SIGSTOP');
      } finally {
        await admin.call('CLIENT', 'UNPAUSE');
      }
      await waitForJob(client, id, (v) => v.status === 'completed');
      await first.kill();
      expect(receiver.received).toEqual([]);
      // Nothing of the delivery was in the dead process: it waits in Redis, in its queue.
      const layout = layoutFor(env.QUEUE_PREFIX ?? '');
      const waiting = [
        ...(await admin.lrange(layout.wait(QUEUES.webhooks), 0, -1)),
        ...(await admin.zrange(layout.prioritized(QUEUES.webhooks), 0, -1)),
      ];
      expect(waiting).toEqual([`${id}.webhook`]);

      // The delivery was released by BullMQ in the script that completed the job: a new worker sends it.
      const second = await startWorker(env);
      started.push(second);
      const view = await waitFor(
        async () => {
          const v = (await client.get(`/v1/jobs/${id}`)).body;
          return v.webhook?.deliveries?.some((d: { ok: boolean }) => d.ok) ? v : undefined;
        },
        { timeoutMs: 15_000, what: 'a successful delivery on the job view' },
      );
      expect(view.status).toBe('completed');
      const eventIds = receiver.received.map((r) => r.headers['longhaul-event-id']);
      expect(eventIds).toEqual([`${id}.completed`]);
      expect(JSON.parse(receiver.received[0]?.body ?? '{}')).toMatchObject({ id, status: 'completed' });
      await second.stop();
    } finally {
      await admin.call('CLIENT', 'UNPAUSE').catch(() => undefined);
      admin.disconnect();
      await receiver.close();
    }
  });
});
