import {
  createLogger,
  createRedisConnection,
  enqueueWebhook,
  type JobView,
  keysFor,
  loadConfig,
  parseDeliveries,
  QUEUES,
  type RedisConnection,
  type WebhookDeliveryData,
} from '@longhaul/shared';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver } from '../../../../tests/clients/webhook-receiver.ts';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../../tests/support/redis.ts';
import { waitFor } from '../../../../tests/support/wait.ts';
import { createWebhookWorker } from './webhook-worker.ts';

const view = (id: string): JobView => ({
  id,
  type: 'simulate',
  status: 'completed',
  progress: { percent: 100, step: 'done' },
  attempts: { made: 1, max: 3 },
  priority: 500,
  createdAt: new Date().toISOString(),
  startedAt: null,
  finishedAt: null,
  expiresAt: null,
  etaSeconds: null,
  error: null,
  links: { self: `/v1/jobs/${id}`, result: `/v1/jobs/${id}/result`, events: `/v1/jobs/${id}/events` },
});

describe('webhook deliveries refuse private targets (real Redis and BullMQ, WEBHOOK_ALLOW_PRIVATE unset)', () => {
  const prefix = uniquePrefix();
  const keys = keysFor(prefix);
  let connection: RedisConnection;
  let queue: Queue<WebhookDeliveryData>;
  let webhooks: ReturnType<typeof createWebhookWorker>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    const config = loadConfig(
      {
        REDIS_URL: redisUrl(),
        QUEUE_PREFIX: prefix,
        WEBHOOK_SECRETS: 'a:whsec-0123456789abcdef',
        WEBHOOK_BACKOFF_MS: '50',
      },
      'worker',
    );
    connection = createRedisConnection(redisUrl(), 'worker');
    queue = new Queue<WebhookDeliveryData>(QUEUES.webhooks, { connection, prefix });
    webhooks = createWebhookWorker({
      config,
      log: createLogger({ name: 't', level: 'silent', pretty: false }),
      connection,
    });
    webhooks.start();
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await receiver.close();
    await webhooks.close();
    await queue.close();
    await connection.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  it('when the URL is loopback (also by name, after DNS), private or link-local, then nothing is sent and the refusal is recorded once, without retries', async () => {
    const targets = [
      `http://localhost:${receiver.port}/hook`,
      `http://127.0.0.1:${receiver.port}/hook`,
      'http://10.1.2.3/hook',
      'http://169.254.169.254/latest/meta-data',
      `http://[::1]:${receiver.port}/hook`,
    ];
    const ids = targets.map((_, i) => `job_01HZZZZZZZZZZZZZZZZZZZZZ${String(i).padStart(2, '0')}`);
    await Promise.all(
      targets.map((url, i) => enqueueWebhook(queue, { view: view(ids[i] as string), tenant: 'a', url, backoffMs: 50 })),
    );
    for (const [i, id] of ids.entries()) {
      const records = await waitFor(
        async () => {
          const r = parseDeliveries(await connection.lrange(keys.webhookDeliveries(id), 0, -1));
          return r.length > 0 ? r : undefined;
        },
        { what: `the refusal of ${targets[i]}` },
      );
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ attempt: 1, ok: false, status: null, nextAttemptAt: null });
      expect(records[0]?.error).toMatch(/refusing to connect/);
      const job = await queue.getJob(`${id}.completed`);
      expect(await job?.getState()).toBe('failed');
    }
    expect(receiver.received).toHaveLength(0);
  });

  it('when the same delivery is enqueued twice, then it is sent once (deterministic delivery id)', async () => {
    const id = 'job_01HZZZZZZZZZZZZZZZZZZZZZ99';
    const url = 'http://10.9.9.9/hook';
    await enqueueWebhook(queue, { view: view(id), tenant: 'a', url, backoffMs: 50 });
    await enqueueWebhook(queue, { view: view(id), tenant: 'a', url, backoffMs: 50 });
    expect(
      await queue
        .getJobCounts('wait', 'active', 'failed', 'completed', 'delayed')
        .then((c) => Object.values(c).reduce((a, b) => a + b, 0)),
    ).toBe(6);
  });
});
