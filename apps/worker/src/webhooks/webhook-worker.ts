import {
  type Config,
  createJobReader,
  enqueueWebhook,
  FINAL_STATUSES,
  type JobData,
  keysFor,
  type Logger,
  QUEUES,
  type RedisConnection,
  type WebhookDeliveryData,
} from '@longhaul/shared';
import { type Job, Queue, Worker } from 'bullmq';
import { createGuardedDispatcher } from '../net/public-address.ts';
import { createDeliveryProcessor } from './deliver-webhook.ts';

export interface WebhookWorkerDeps {
  config: Config;
  log: Logger;
  /** A worker-role connection; BullMQ duplicates it for the blocking reads. */
  connection: RedisConnection;
  /** Deliveries sent at once by one process. @defaultValue 8 */
  concurrency?: number;
}

/**
 * Webhooks: a Worker on the `webhooks` queue that delivers, and a notifier that enqueues a delivery
 * when an analysis job ends for good (completed, failed after its last attempt, or cancelled).
 */
export function createWebhookWorker({ config, log, connection, concurrency = 8 }: WebhookWorkerDeps) {
  const keys = keysFor(config.queuePrefix);
  const reader = createJobReader({ redis: connection, keys, retention: config.retention });
  const dispatcher = createGuardedDispatcher({ allowPrivate: config.webhooks.allowPrivate });
  const queue = new Queue<WebhookDeliveryData>(QUEUES.webhooks, { connection, prefix: config.queuePrefix });
  queue.on('error', (err) => log.debug({ err: err.message }, 'webhook queue error'));
  const processor = createDeliveryProcessor({ config, log, redis: connection, keys, dispatcher });
  const worker = new Worker<WebhookDeliveryData>(QUEUES.webhooks, processor, {
    connection,
    prefix: config.queuePrefix,
    autorun: false,
    concurrency,
    name: 'longhaul-webhooks',
  });
  worker.on('error', (err) => log.warn({ err: err.message }, 'webhook worker error'));
  worker.on('failed', (job, err) => {
    if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
      log.warn({ jobId: job.data.jobId, event: job.data.event, err: err.message }, 'webhook given up');
    }
  });

  const inFlight = new Set<Promise<void>>();

  /** Enqueues the delivery of a finished job's final event, if it has a webhook; a retried failure has none yet. */
  async function notify(jobId: string): Promise<void> {
    const s = await reader.snapshot(jobId);
    const status = reader.status(s);
    if (!s.meta?.webhookUrl || !(FINAL_STATUSES as string[]).includes(status)) return;
    await enqueueWebhook(queue, {
      view: reader.view(s),
      tenant: s.meta.tenant,
      url: s.meta.webhookUrl,
      backoffMs: config.webhooks.backoffMs,
    });
  }

  const onFinished = (job: Job | undefined) => {
    // Most jobs have no webhook: they cost nothing here (no read of the job's record).
    if (!job?.id || !(job.data as Partial<JobData> | undefined)?.webhook) return;
    const jobId = job.id;
    const pending = notify(jobId)
      .catch((err) => log.error({ err, jobId }, 'could not enqueue the webhook delivery'))
      .finally(() => inFlight.delete(pending));
    inFlight.add(pending);
  };

  return {
    worker,
    /** Sends a delivery whenever a job of `analyses` ends for good. */
    watch(analyses: Worker): void {
      analyses.on('completed', onFinished);
      analyses.on('failed', onFinished);
    },
    start(): void {
      void worker.run().catch((err) => log.error({ err }, 'webhook worker stopped running'));
    },
    /** Waits for pending enqueues, then for active deliveries, and closes. */
    async close(): Promise<void> {
      await Promise.all(inFlight);
      await worker.close();
      await queue.close();
      await dispatcher.close();
    },
  };
}
