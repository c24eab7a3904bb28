import type { JobsOptions } from 'bullmq';
import { z } from 'zod';
import type { RedisConnection } from './redis.ts';
import type { Layout } from './store/bullmq-layout.ts';

/**
 * The contract of the `webhooks` queue: a delivery job is the BullMQ parent of the analysis job it
 * reports on, added with it at submit, and released by BullMQ when that job ends for good. The
 * delivery itself lives in apps/worker/src/webhooks.
 */

export const WEBHOOK_EVENTS = ['completed', 'failed', 'cancelled'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** Deliveries are retried for this long after the first attempt (Stripe retries for days; we keep a day). */
export const WEBHOOK_RETRY_WINDOW_MS = 24 * 60 * 60 * 1000;

/** Attempts kept on the job view, newest first. */
export const MAX_DELIVERY_RECORDS = 20;

/** What one delivery job carries: where to send, for which job. */
export interface WebhookDeliveryData {
  jobId: string;
  tenant: string;
  /** The analysis, for the rare body written after retention already removed the job. */
  type: string;
  url: string;
  /** Set by the first attempt, so that every attempt sends (and signs) the same bytes. */
  sent?: {
    event: WebhookEvent;
    /** `Longhaul-Event-Id`: the same on every attempt, so receivers can drop duplicates. */
    eventId: string;
    body: string;
  };
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

/** Options of a delivery job: the 24 h retry budget; removed once delivered, kept a week if given up. */
export function webhookJobOptions(backoffMs: number): Omit<JobsOptions, 'jobId'> {
  return {
    attempts: webhookAttempts(backoffMs),
    backoff: { type: 'exponential', delay: backoffMs },
    removeOnComplete: true,
    removeOnFail: { age: 7 * 86_400 },
  };
}

/** Appends one attempt to the job's delivery history (newest first, capped, expiring with the tombstone). */
export async function recordDelivery(
  redis: RedisConnection,
  layout: Layout,
  jobId: string,
  record: DeliveryRecord,
  ttlSeconds: number,
): Promise<void> {
  const key = layout.webhookDeliveries(jobId);
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
