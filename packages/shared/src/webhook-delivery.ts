import type { JobsOptions, Queue } from 'bullmq';
import { z } from 'zod';
import type { JobView } from './job-view.ts';
import type { Keys } from './keys.ts';
import type { RedisConnection } from './redis.ts';

/**
 * The contract of the `webhooks` queue: what the API and the worker enqueue when a job ends, and
 * what the webhook worker records per attempt. The delivery itself lives in apps/worker/src/webhooks.
 */

export const WEBHOOK_EVENTS = ['completed', 'failed', 'cancelled'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** Deliveries are retried for this long after the first attempt (Stripe retries for days; we keep a day). */
export const WEBHOOK_RETRY_WINDOW_MS = 24 * 60 * 60 * 1000;

/** Attempts kept on the job view, newest first. */
export const MAX_DELIVERY_RECORDS = 20;

/** What one delivery job carries. */
export interface WebhookDeliveryData {
  jobId: string;
  tenant: string;
  event: WebhookEvent;
  url: string;
  /** `Longhaul-Event-Id`: the same on every attempt, so receivers can drop duplicates. */
  eventId: string;
  /** The JSON body, serialised once when the job ended, so every attempt sends (and signs) the same bytes. */
  body: string;
}

export const deliveryRecordSchema = z.object({
  event: z.enum(WEBHOOK_EVENTS),
  attempt: z.number().int(),
  at: z.string(),
  ok: z.boolean(),
  /** The receiver's HTTP status; null when no answer came (refused, timed out, unreachable). */
  status: z.number().int().nullable(),
  error: z.string().nullable(),
  durationMs: z.number(),
  /** When the next attempt is due; null when this was the last one (delivered or given up). */
  nextAttemptAt: z.string().nullable(),
});
export type DeliveryRecord = z.infer<typeof deliveryRecordSchema>;

/** The webhook part of the job view: where it goes and how the attempts went. */
export const webhookViewSchema = z.object({
  url: z.string(),
  deliveries: z.array(deliveryRecordSchema),
});
export type WebhookView = z.infer<typeof webhookViewSchema>;

export function webhookEventId(jobId: string, event: WebhookEvent): string {
  // BullMQ refuses custom job ids containing ':'; the event id doubles as the delivery's job id.
  return `${jobId}.${event}`;
}

/**
 * Attempts in all so that exponential backoff from `backoffMs` (doubling each time) spends up to
 * {@link WEBHOOK_RETRY_WINDOW_MS} between the first attempt and the last.
 */
export function webhookAttempts(backoffMs: number, windowMs = WEBHOOK_RETRY_WINDOW_MS): number {
  let attempts = 1;
  let waited = 0;
  while (waited + backoffMs * 2 ** (attempts - 1) <= windowMs) {
    waited += backoffMs * 2 ** (attempts - 1);
    attempts++;
  }
  return attempts;
}

/** Options of a delivery job: a deterministic id (a repeated enqueue is a no-op) and the 24 h retry budget. */
export function webhookJobOptions(eventId: string, backoffMs: number): JobsOptions {
  const week = 7 * 86_400;
  return {
    jobId: eventId,
    attempts: webhookAttempts(backoffMs),
    backoff: { type: 'exponential', delay: backoffMs },
    // Kept past the retry window, so a late duplicate enqueue still finds the id and stays a no-op.
    removeOnComplete: { age: week, count: 100_000 },
    removeOnFail: { age: week, count: 100_000 },
  };
}

/**
 * Enqueues the delivery of `view`'s final event to `url`. Safe to call more than once for the same
 * job and event (API and worker, a retried call): the job id is the event id.
 */
export async function enqueueWebhook(
  queue: Queue<WebhookDeliveryData>,
  { view, tenant, url, backoffMs }: { view: JobView; tenant: string; url: string; backoffMs: number },
): Promise<void> {
  const event = view.status as WebhookEvent;
  if (!(WEBHOOK_EVENTS as readonly string[]).includes(event)) {
    throw new Error(`job ${view.id} is ${view.status}: only a finished job has a webhook to send`);
  }
  const { webhook: _deliveries, ...body } = view;
  const eventId = webhookEventId(view.id, event);
  const data: WebhookDeliveryData = { jobId: view.id, tenant, event, url, eventId, body: JSON.stringify(body) };
  await queue.add(event, data, webhookJobOptions(eventId, backoffMs));
}

/** Appends one attempt to the job's delivery history (newest first, capped, expiring with the tombstone). */
export async function recordDelivery(
  redis: RedisConnection,
  keys: Keys,
  jobId: string,
  record: DeliveryRecord,
  ttlSeconds: number,
): Promise<void> {
  const key = keys.webhookDeliveries(jobId);
  await redis
    .multi()
    .lpush(key, JSON.stringify(record))
    .ltrim(key, 0, MAX_DELIVERY_RECORDS - 1)
    .expire(key, ttlSeconds)
    .exec();
}

/** Parses stored delivery records, skipping any that do not parse (never fails a status read). */
export function parseDeliveries(raw: string[]): DeliveryRecord[] {
  return raw.flatMap((line) => {
    try {
      const parsed = deliveryRecordSchema.safeParse(JSON.parse(line));
      return parsed.success ? [parsed.data] : [];
    } catch {
      return [];
    }
  });
}
