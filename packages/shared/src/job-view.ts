import { z } from 'zod';
import type { Config } from './config.ts';
import { decodeFailure } from './errors.ts';
import type { ChildrenSummary } from './store/job-children.ts';
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

export const STEP_STATUSES = ['running', 'completed', 'failed'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

/** A durable step (`ctx.step`) as the job view shows it. */
export const stepViewSchema = z
  .object({
    name: z.string(),
    status: z.enum(STEP_STATUSES),
    /**
     * The attempt that completed the step (or runs it, or last failed it). Attempts count every
     * start of the job, so a restart after a crashed worker is a new attempt.
     */
    attempt: z.number().int(),
    startedAt: z.string(),
    finishedAt: z.string().nullable(),
  })
  .meta({ id: 'StepView' });
export type StepView = z.infer<typeof stepViewSchema>;

/** A durable step as the job hash keeps it (`OWN_FIELDS.steps`), times in epoch ms. */
export interface StepRecord {
  name: string;
  status: StepStatus;
  attempt: number;
  startedAt: number;
  finishedAt?: number | undefined;
}

/** A parent's children (`ctx.spawn`) by status. A delayed child (a retry's backoff) counts as queued. */
export const childCountsSchema = z
  .object({
    total: z.number().int(),
    queued: z.number().int(),
    active: z.number().int(),
    completed: z.number().int(),
    failed: z.number().int(),
    cancelled: z.number().int(),
  })
  .meta({ id: 'ChildCounts' });

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
    /**
     * Why a queued job has not started: `tenant_concurrency` while its tenant has as many jobs
     * active as its cap (`TENANT_MAX_ACTIVE`); `queue` while it waits for a free worker, behind
     * other tenants' turns; `worker_lost` when the worker running it died and it waits to be
     * retried by another (its progress is then the dead attempt's, so it is not shown).
     */
    waiting: z.enum(['tenant_concurrency', 'queue', 'worker_lost']).optional(),
    /** Only on runs of a schedule: the schedule that made the job. */
    scheduleId: z.string().optional(),
    /** Only on jobs submitted with a webhook: its URL and the delivery attempts, newest first. */
    webhook: webhookViewSchema.optional(),
    /** Only on jobs that ran durable steps (`ctx.step`): each step, in the order it first started. */
    steps: z.array(stepViewSchema).optional(),
    /**
     * Only on jobs that started children (`ctx.spawn`): their counts by status. While the job
     * waits for them it reads `active` (holding no worker), and its progress is theirs together.
     */
    children: childCountsSchema.optional(),
    /** Only on children of another job (`ctx.spawn`): the parent's id. */
    parentId: z.string().optional(),
  })
  .meta({ id: 'JobView' });
export type JobView = z.infer<typeof jobViewSchema>;

/** What a status read takes from BullMQ's job hash (see `STATUS_FIELDS` in store/bullmq-layout.ts). */
export interface JobFields {
  name: string;
  timestamp: number;
  processedOn: number | null;
  finishedOn: number | null;
  failedReason: string | null;
  attemptsMade: number;
  /** Attempts allowed, from the job's options. */
  attemptsMax: number;
  /** The client's priority (1 most urgent), from the job's options. */
  priority: number;
  progress: unknown;
  /** Times the job's worker died or lost its lock while running it (BullMQ's `stc`). */
  stalledCount: number;
  /**
   * Times a worker took the job (BullMQ's `ats`): each run, each run again after a crash or a
   * shutdown's hand-back, and the take that drains a cancelled job.
   */
  timesTaken?: number;
  /** When a cancel was asked for, if it was. */
  cancelledAt: number | null;
  /** The webhook URL given on submit, if any. */
  webhookUrl: string | null;
  /** A `returnvalue` is stored: the job completed. */
  hasResult: boolean;
  /** The job's durable steps, if it ran any. */
  steps?: StepRecord[] | undefined;
  /** The schedule that made the job (BullMQ's `rjk`), for runs of a schedule. */
  scheduleId?: string | null;
  /** The job that spawned this one (`ctx.spawn`), from BullMQ's `parentKey`. */
  parentId?: string | null;
}

/** Everything the job view is made from, read in one O(1) script whatever the backlog. */
export interface JobSnapshot {
  id: string;
  job: JobFields;
  /** BullMQ's lock key exists: a worker holds the job now. */
  locked: boolean;
  /** The job is in the delayed set (scheduled, or waiting out a retry backoff). */
  delayed: boolean;
  /**
   * The job is parked for its tenant's turn (store/fair-share.ts): `tenant_concurrency` while its
   * tenant is at its cap of active jobs, `queue` while it waits for a free worker slot.
   */
  parked?: 'tenant_concurrency' | 'queue';
  /** Webhook delivery attempts, newest first (read only for jobs with a webhook). */
  deliveries?: DeliveryRecord[];
  /** The job's children, when it spawned any (`ctx.spawn`). */
  children?: ChildrenSummary;
}

/**
 * The job's status without `job.getState()`, which walks the wait list (LPOS) and so costs more
 * the longer the backlog: finished jobs carry `finishedOn`, active ones hold a lock, delayed ones
 * sit in a sorted set, a cancelled one waiting to be drained carries the cancel flag, a parent
 * waiting for its children is in BullMQ's waiting-children set (read as active). What is left is
 * waiting.
 */
export function statusOf(s: JobSnapshot): JobStatus {
  const { job } = s;
  if (job.finishedOn) {
    if (job.hasResult) return 'completed';
    return decodeFailure(job.failedReason).code === 'cancelled' ? 'cancelled' : 'failed';
  }
  // A cancelled job a worker took after the cancel is being drained, not run.
  if (job.cancelledAt && (!s.locked || (job.processedOn !== null && job.cancelledAt <= job.processedOn))) {
    return 'cancelled';
  }
  // A parent waiting for its children holds no worker, but its work is under way.
  if (s.locked || s.children?.waiting) return 'active';
  if (s.delayed) return 'delayed';
  return 'queued';
}

function iso(ms: number | null | undefined): string | null {
  return ms ? new Date(ms).toISOString() : null;
}

function progressOf(job: JobFields): Progress | null {
  const p = job.progress;
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
  const { job } = s;
  const base = `/v1/jobs/${s.id}`;
  // A job that started but that no worker holds (its worker died: before the stalled check moves
  // it, and after, until another takes it; or it was handed back) keeps the progress of an
  // attempt that is no longer running: stale, so it is not shown.
  // A parent between runs (waiting for its children, or released by the last of them and waiting
  // for a worker) shows the children's progress together: its own is that of a run that ended.
  const children = s.children;
  const betweenRuns = children !== undefined && !job.finishedOn && !s.locked;
  // Taken by a worker to run (the take that parks a job at the fair-share gate is not counted).
  const taken = job.timesTaken ?? (job.processedOn === null ? 0 : 1);
  const started = taken > 0 || job.attemptsMade > 0 || job.stalledCount > 0;
  const orphaned = status === 'queued' && job.processedOn !== null && started && !s.parked && !betweenRuns;
  const progress = orphaned ? null : betweenRuns ? childProgress(children) : progressOf(job);
  // Cancelled before a worker took it: the worker that drains it runs nothing, so it never started.
  // A take after the cancel is that drain only when it is the job's first: one that ran before (and
  // was retried, handed back or lost with its worker) did start.
  const neverRan =
    status === 'cancelled' &&
    job.cancelledAt !== null &&
    (job.processedOn === null || (job.cancelledAt <= job.processedOn && taken <= 1));
  const finishedMs = neverRan ? job.cancelledAt : (job.finishedOn ?? null);
  const startedMs = neverRan || !started ? null : job.processedOn;
  const keepSeconds = status === 'completed' ? retention.completedSeconds : retention.failedSeconds;
  let eta: number | null = null;
  if (status === 'active' && startedMs && progress && progress.percent > 0 && progress.percent < 100) {
    const elapsed = Math.max(0, now - startedMs);
    eta = Math.round((elapsed * (100 - progress.percent)) / progress.percent / 1000);
  }
  // A run its worker died in (a stall) counts as an attempt, as BullMQ's failures do; a shutdown's
  // hand-back does not (it spends no attempt).
  const made = neverRan ? 0 : job.attemptsMade + job.stalledCount + (status === 'active' ? 1 : 0);
  const error =
    status === 'failed' || status === 'cancelled'
      ? job.failedReason
        ? decodeFailure(job.failedReason)
        : // Flagged, not yet drained: the reason the draining worker will write (run-job.ts).
          { code: 'cancelled', message: 'cancelled by request' }
      : null;
  return {
    id: s.id,
    type: job.name,
    status,
    progress:
      status === 'completed' ? { percent: 100, step: progress?.step ?? 'done', message: progress?.message } : progress,
    attempts: { made: Math.min(made, job.attemptsMax), max: job.attemptsMax },
    priority: job.priority,
    createdAt: iso(job.timestamp) ?? new Date(now).toISOString(),
    startedAt: iso(startedMs),
    finishedAt: iso(finishedMs),
    expiresAt: finishedMs ? iso(finishedMs + keepSeconds * 1000) : null,
    etaSeconds: eta,
    error,
    ...(status === 'queued' ? { waiting: orphaned ? ('worker_lost' as const) : (s.parked ?? 'queue') } : {}),
    links: { self: base, result: `${base}/result`, events: `${base}/events` },
    ...(job.scheduleId ? { scheduleId: job.scheduleId } : {}),
    ...(job.webhookUrl ? { webhook: { url: job.webhookUrl, deliveries: s.deliveries ?? [] } } : {}),
    ...(job.steps && job.steps.length > 0 ? { steps: job.steps.map(stepView) } : {}),
    ...(children ? { children: children.counts } : {}),
    ...(job.parentId ? { parentId: job.parentId } : {}),
  };
}

function childProgress({ counts, percent }: ChildrenSummary): Progress {
  const finished = counts.completed + counts.failed + counts.cancelled;
  return { percent, step: 'children', message: `${finished} of ${counts.total} children finished` };
}

function stepView(step: StepRecord): StepView {
  return {
    name: step.name,
    status: step.status,
    attempt: step.attempt,
    startedAt: iso(step.startedAt) ?? new Date(0).toISOString(),
    finishedAt: iso(step.finishedAt),
  };
}

/** Reads the stored step summary back; a status read never fails on a field it cannot parse. */
export function parseStepRecords(json: string | null | undefined): StepRecord[] | undefined {
  if (!json) return undefined;
  try {
    const parsed: unknown = JSON.parse(json);
    // Lua's cjson writes an empty array as `{}`.
    if (!Array.isArray(parsed)) return undefined;
    return parsed.filter(
      (s): s is StepRecord =>
        typeof s === 'object' &&
        s !== null &&
        typeof s.name === 'string' &&
        (STEP_STATUSES as readonly unknown[]).includes(s.status) &&
        typeof s.attempt === 'number' &&
        typeof s.startedAt === 'number',
    );
  } catch {
    return undefined;
  }
}
