import { z } from 'zod';
import type { Config } from './config.ts';
import { FAILURE_CODES, type FailureCode } from './errors.ts';
import { type DeliveryRecord, webhookViewSchema } from './webhook-delivery.ts';

export const JOB_STATUSES = ['queued', 'delayed', 'active', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const FINAL_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

export const progressSchema = z.object({
  percent: z.number().min(0).max(100),
  step: z.string(),
  message: z.string().optional(),
});
export type Progress = z.infer<typeof progressSchema>;

export const jobViewSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    status: z.enum(JOB_STATUSES),
    progress: progressSchema.nullable(),
    attempts: z.object({ made: z.number().int(), max: z.number().int() }),
    priority: z.number().int(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    expiresAt: z.string().nullable(),
    etaSeconds: z.number().nullable(),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
    links: z.object({ self: z.string(), result: z.string(), events: z.string() }),
    /** Only on jobs submitted with a webhook: its URL and the delivery attempts, newest first. */
    webhook: webhookViewSchema.optional(),
  })
  .meta({ id: 'JobView' });
export type JobView = z.infer<typeof jobViewSchema>;

/** longhaul's own record of a job, kept beside BullMQ's and outliving it as a tombstone. */
export interface JobMeta {
  tenant: string;
  type: string;
  createdAt: number;
  /** Attempts allowed, from the job's options. */
  attempts: number;
  /** The client's priority (1 most urgent). */
  priority: number;
  cancelledAt?: number;
  /** The webhook URL given on submit, if any. */
  webhookUrl?: string;
}

export function parseMeta(hash: Record<string, string>): JobMeta | null {
  if (!hash.tenant || !hash.type || !hash.createdAt) return null;
  return {
    tenant: hash.tenant,
    type: hash.type,
    createdAt: Number(hash.createdAt),
    attempts: Number(hash.attempts ?? 1),
    priority: Number(hash.priority ?? 0),
    ...(hash.cancelledAt ? { cancelledAt: Number(hash.cancelledAt) } : {}),
    ...(hash.webhookUrl ? { webhookUrl: hash.webhookUrl } : {}),
  };
}

/**
 * The fields of BullMQ's job hash the view needs, read with HMGET so that neither the input
 * (`data`) nor the result (`returnvalue`, only its length) is transferred on a status read.
 */
export const JOB_HASH_FIELDS = [
  'name',
  'timestamp',
  'processedOn',
  'finishedOn',
  'failedReason',
  'atm',
  'progress',
] as const;

export interface JobFields {
  name: string;
  timestamp: number;
  processedOn: number | null;
  finishedOn: number | null;
  failedReason: string | null;
  attemptsMade: number;
  progress: unknown;
  /** A `returnvalue` is stored: the job completed. */
  hasResult: boolean;
}

/** Builds {@link JobFields} from an HMGET of {@link JOB_HASH_FIELDS} and HSTRLEN of `returnvalue`. */
export function parseJobFields(values: (string | null)[], resultLength: number): JobFields | null {
  const [name, timestamp, processedOn, finishedOn, failedReason, atm, progress] = values;
  if (!name || !timestamp) return null;
  let parsedProgress: unknown = null;
  try {
    parsedProgress = progress ? JSON.parse(progress) : null;
  } catch {
    parsedProgress = null;
  }
  return {
    name,
    timestamp: Number(timestamp),
    processedOn: processedOn ? Number(processedOn) : null,
    finishedOn: finishedOn ? Number(finishedOn) : null,
    failedReason: failedReason || null,
    attemptsMade: Number(atm ?? 0),
    progress: parsedProgress,
    // BullMQ stores a missing return value as "null"; ours is always an object.
    hasResult: resultLength > 4,
  };
}

/** Everything the job view is made from, each piece read in O(1). */
export interface JobSnapshot {
  id: string;
  meta: JobMeta | null;
  job: JobFields | null;
  /** BullMQ's lock key exists: a worker holds the job now. */
  locked: boolean;
  /** The job is in the delayed set (scheduled, or waiting out a retry backoff). */
  delayed: boolean;
  /** Webhook delivery attempts, newest first (read only for jobs with a webhook). */
  deliveries?: DeliveryRecord[];
}

/**
 * The job's status without `job.getState()`, which walks the wait list (LPOS) and so costs more
 * the longer the backlog: finished jobs carry `finishedOn`, active ones hold a lock, delayed ones
 * sit in a sorted set. What is left is waiting. A job whose worker died shows as queued until the
 * stalled check hands it to another worker, which is where it is going.
 */
export function statusOf(s: JobSnapshot): JobStatus | 'gone' {
  const { job, meta } = s;
  if (!job) return meta?.cancelledAt ? 'cancelled' : 'gone';
  if (job.finishedOn) {
    if (job.hasResult) return 'completed';
    return meta?.cancelledAt || failureOf(job.failedReason).code === 'cancelled' ? 'cancelled' : 'failed';
  }
  if (s.locked) return 'active';
  if (s.delayed) return 'delayed';
  return 'queued';
}

export function failureOf(reason: string | null | undefined): { code: FailureCode; message: string } {
  const match = /^([a-z_]+): ([\s\S]*)$/.exec(reason ?? '');
  if (match && (FAILURE_CODES as readonly string[]).includes(match[1] ?? '')) {
    return { code: match[1] as FailureCode, message: match[2] ?? '' };
  }
  if (reason && /stalled more than allowable limit/.test(reason)) {
    return {
      code: 'stalled',
      message: 'the job stopped its worker too many times (crash or lost lock) and was given up',
    };
  }
  return { code: 'analysis_failed', message: reason || 'the analysis failed' };
}

function iso(ms: number | null | undefined): string | null {
  return ms ? new Date(ms).toISOString() : null;
}

function progressOf(job: JobFields | null): Progress | null {
  const p = job?.progress;
  if (p && typeof p === 'object' && 'percent' in p) {
    const parsed = progressSchema.safeParse(p);
    return parsed.success ? parsed.data : null;
  }
  if (typeof p === 'number' && p > 0) return { percent: p, step: '' };
  return null;
}

/** The one mapping from BullMQ's job to the public job view. */
export function toJobView(s: JobSnapshot, retention: Config['retention'], now = Date.now()): JobView {
  const status = statusOf(s);
  if (status === 'gone') throw new Error(`job ${s.id} is gone; answer 410 instead of a view`);
  const { job, meta } = s;
  const base = `/v1/jobs/${s.id}`;
  const progress = progressOf(job);
  const finishedMs = job?.finishedOn ?? meta?.cancelledAt ?? null;
  const startedMs = job?.processedOn ?? null;
  const keepSeconds = status === 'completed' ? retention.completedSeconds : retention.failedSeconds;
  let eta: number | null = null;
  if (status === 'active' && startedMs && progress && progress.percent > 0 && progress.percent < 100) {
    const elapsed = Math.max(0, now - startedMs);
    eta = Math.round((elapsed * (100 - progress.percent)) / progress.percent / 1000);
  }
  const attemptsMax = meta?.attempts ?? 1;
  const made = (job?.attemptsMade ?? 0) + (status === 'active' ? 1 : 0);
  const error =
    status === 'failed' || status === 'cancelled'
      ? job?.failedReason
        ? failureOf(job.failedReason)
        : { code: 'cancelled', message: 'cancelled before it started' }
      : null;
  return {
    id: s.id,
    type: meta?.type ?? job?.name ?? 'unknown',
    status,
    progress:
      status === 'completed' ? { percent: 100, step: progress?.step ?? 'done', message: progress?.message } : progress,
    attempts: { made: Math.min(made, attemptsMax), max: attemptsMax },
    priority: meta?.priority ?? 0,
    createdAt: iso(meta?.createdAt ?? job?.timestamp) ?? new Date(now).toISOString(),
    startedAt: iso(startedMs),
    finishedAt: iso(finishedMs),
    expiresAt: finishedMs ? iso(finishedMs + keepSeconds * 1000) : null,
    etaSeconds: eta,
    error,
    links: { self: base, result: `${base}/result`, events: `${base}/events` },
    ...(meta?.webhookUrl ? { webhook: { url: meta.webhookUrl, deliveries: s.deliveries ?? [] } } : {}),
  };
}
