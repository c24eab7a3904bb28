import { type Logger, QUEUES, type RedisConnection, type WebhookDeliveryData } from '@longhaul/shared';
import { Queue } from 'bullmq';

/**
 * The API's producer on the webhooks queue, on a producer-role connection (so it fails fast with
 * the rest of the request while Redis is down). It sends only the `cancelled` deliveries of queued jobs
 * the API removes itself; workers send every other one.
 */
export function createWebhookQueue(redis: RedisConnection, prefix: string, log: Logger): Queue<WebhookDeliveryData> {
  const queue = new Queue<WebhookDeliveryData>(QUEUES.webhooks, {
    connection: redis,
    prefix,
    skipVersionCheck: true,
    skipWaitingForReady: true,
  });
  queue.on('error', (err) => log.debug({ err: err.message }, 'webhook queue error'));
  return queue;
}
