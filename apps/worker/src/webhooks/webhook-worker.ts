import {
  type Config,
  createJobReads,
  type Logger,
  QUEUES,
  type RedisConnection,
  type WebhookDeliveryData,
} from '@longhaul/shared';
import { Worker } from 'bullmq';
import { createGuardedDispatcher } from '../net/public-address.ts';
import { closedOrUnreachable, logWorkerErrors } from '../unreachable.ts';
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
 * Webhooks: a Worker on the `webhooks` queue. Each delivery job is the BullMQ parent of the job it
 * reports on, so BullMQ moves it to the queue in the very script that ends that job: no delivery
 * is lost to a worker dying right after a job finished.
 */
export function createWebhookWorker({ config, log, connection, concurrency = 8 }: WebhookWorkerDeps) {
  const reads = createJobReads({ redis: connection, prefix: config.queuePrefix });
  const dispatcher = createGuardedDispatcher({ allowPrivate: config.webhooks.allowPrivate });
  const processor = createDeliveryProcessor({ config, log, redis: connection, reads, dispatcher });
  const worker = new Worker<WebhookDeliveryData>(QUEUES.webhooks, processor, {
    connection,
    prefix: config.queuePrefix,
    autorun: false,
    concurrency,
    name: 'longhaul-webhooks',
  });
  logWorkerErrors(worker, connection, log, 'webhook worker error');
  worker.on('failed', (job, err) => {
    if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
      log.warn({ jobId: job.data.jobId, event: job.data.sent?.event, err: err.message }, 'webhook given up');
    }
  });

  return {
    worker,
    start(): void {
      void worker.run().catch((err) => log.error({ err }, 'webhook worker stopped running'));
    },
    /**
     * Waits for active deliveries, and closes; at once while Redis is unreachable (a delivery then
     * in flight is sent again once it returns, see closedOrUnreachable).
     */
    async close(): Promise<void> {
      await closedOrUnreachable(worker.close(), connection);
      await dispatcher.close();
    },
  };
}
