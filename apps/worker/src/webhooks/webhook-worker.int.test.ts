import {
  createJobStore,
  createLogger,
  createRedisConnection,
  getContract,
  type JobData,
  loadConfig,
  parseDeliveries,
  QUEUES,
  type RedisConnection,
  type WebhookDeliveryData,
} from '@longhaul/shared';
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver } from '../../../../tests/clients/webhook-receiver.ts';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../../tests/support/redis.ts';
import { waitFor } from '../../../../tests/support/wait.ts';
import { createWebhookWorker } from './webhook-worker.ts';

describe('webhook deliveries refuse private targets (real Redis and BullMQ, WEBHOOK_ALLOW_PRIVATE unset)', () => {
  const prefix = uniquePrefix();
  let connection: RedisConnection;
  let queue: Queue<JobData>;
  let deliveries: Queue<WebhookDeliveryData>;
  let store: ReturnType<typeof createJobStore>;
  let analyses: Worker;
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
    queue = new Queue<JobData>(QUEUES.analyses, { connection, prefix });
    deliveries = new Queue<WebhookDeliveryData>(QUEUES.webhooks, { connection, prefix });
    store = createJobStore({ redis: connection, queue, webhooks: deliveries, config });
    // A stand-in analysis worker: completes every job at once.
    analyses = new Worker(QUEUES.analyses, async () => ({ encoding: 'json', value: {} }), { connection, prefix });
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
    await analyses.close();
    await webhooks.close();
    await Promise.all([queue.close(), deliveries.close()]);
    await connection.quit();
    await cleanupPrefix(redisUrl(), prefix);
  });

  const accept = (id: string, url: string) =>
    store.accept({ tenant: 'a', id, contract: getContract('simulate'), input: { durationMs: 1 }, webhookUrl: url });

  it('when the URL is loopback (also by name, after DNS), private or link-local, then nothing is sent and the refusal is recorded once, without retries', async () => {
    const targets = [
      `http://localhost:${receiver.port}/hook`,
      `http://127.0.0.1:${receiver.port}/hook`,
      'http://10.1.2.3/hook',
      'http://169.254.169.254/latest/meta-data',
      `http://[::1]:${receiver.port}/hook`,
    ];
    const ids = targets.map((_, i) => `job_01HZZZZZZZZZZZZZZZZZZZZZ${String(i).padStart(2, '0')}`);
    await Promise.all(targets.map((url, i) => accept(ids[i] as string, url)));
    for (const [i, id] of ids.entries()) {
      const records = await waitFor(
        async () => {
          const r = parseDeliveries(await connection.lrange(store.layout.webhookDeliveries(id), 0, -1));
          return r.length > 0 ? r : undefined;
        },
        { what: `the refusal of ${targets[i]}` },
      );
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({
        event: 'completed',
        attempt: 1,
        ok: false,
        status: null,
        nextAttemptAt: null,
      });
      expect(records[0]?.error).toMatch(/non-public address, which is not allowed \(WEBHOOK_ALLOW_PRIVATE is off\)/);
      // The tenant learns the rule, not where the name led inside the network.
      expect(records[0]?.error).not.toMatch(/127\.0\.0\.1|10\.1\.2\.3|169\.254|::1/);
      const job = await deliveries.getJob(`${id}.webhook`);
      expect(await job?.getState()).toBe('failed');
    }
    expect(receiver.received).toHaveLength(0);
  });

  it('when a job with a webhook is accepted, then its delivery waits for it as its BullMQ parent', async () => {
    await analyses.pause();
    const id = 'job_01HZZZZZZZZZZZZZZZZZZZZZ99';
    await accept(id, 'http://10.9.9.9/hook');
    const parent = await deliveries.getJob(`${id}.webhook`);
    expect(await parent?.getState()).toBe('waiting-children');
    analyses.resume();
    await waitFor(async () => ((await parent?.getState()) === 'failed' ? true : undefined), {
      what: 'the delivery released by BullMQ and refused',
    });
  });
});
