/**
 * The API's public contract, as the SDK sees it. Written here rather than imported from the
 * server's packages, so the SDK carries none of their code or dependencies (Redis, BullMQ, zod).
 * tests/clients/client-types.test.ts checks at compile time that these match the server's schemas.
 */

/** A job's status. `delayed`: scheduled, or waiting out a retry backoff. */
export type JobStatus = 'queued' | 'delayed' | 'active' | 'completed' | 'failed' | 'cancelled';

/** What a running job last reported. */
export interface Progress {
  /** 0 to 100. */
  percent: number;
  /** The analysis' current step, e.g. `aggregating`. */
  step: string;
  message?: string | undefined;
}

/** One webhook delivery attempt. */
export interface DeliveryRecord {
  event: 'completed' | 'failed' | 'cancelled';
  attempt: number;
  at: string;
  ok: boolean;
  /** The receiver's HTTP status; null when no answer came (refused, timed out, unreachable). */
  status: number | null;
  error: string | null;
  durationMs: number;
  /** When the next attempt is due; null when this was the last one (delivered or given up). */
  nextAttemptAt: string | null;
}

/** The webhook part of the job view: where it goes and how the attempts went. */
export interface WebhookView {
  url: string;
  /** Newest first. */
  deliveries: DeliveryRecord[];
}

/** A durable step of a job (`ctx.step` in its analysis). Times are ISO 8601 strings. */
export interface StepView {
  name: string;
  status: 'running' | 'completed' | 'failed';
  /** The attempt that completed the step (or runs it, or last failed it); every start of the job counts. */
  attempt: number;
  startedAt: string;
  finishedAt: string | null;
}

/** A parent's children (fan-out) by status; a child waiting out a retry's backoff counts as queued. */
export interface ChildCounts {
  total: number;
  queued: number;
  active: number;
  completed: number;
  failed: number;
  cancelled: number;
}

/** The job view `GET /v1/jobs/:id` answers. Times are ISO 8601 strings. */
export interface JobView {
  id: string;
  type: string;
  status: JobStatus;
  progress: Progress | null;
  attempts: { made: number; max: number };
  priority: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** When a finished job's result and record are removed (then the API answers 410). */
  expiresAt: string | null;
  etaSeconds: number | null;
  /** Why a job failed or was cancelled, e.g. `{ code: 'timeout', message: '…' }`. */
  error: { code: string; message: string } | null;
  /**
   * Why a queued job has not started: `tenant_concurrency` while its tenant has as many jobs
   * active as its cap; `queue` while it waits for a free worker (tenants take turns);
   * `worker_lost` when the worker running it died and it waits for another (its stale progress
   * is then not shown).
   */
  waiting?: 'tenant_concurrency' | 'queue' | 'worker_lost' | undefined;
  links: { self: string; result: string; events: string };
  /** Only on jobs submitted with a webhook. */
  webhook?: WebhookView | undefined;
  /** Only on jobs that ran durable steps: each step, in the order it first started. */
  steps?: StepView[] | undefined;
  /** Only on runs of a schedule: the schedule that made the job. */
  scheduleId?: string | undefined;
  /**
   * Only on jobs that started children: their counts by status. While the job waits for them it
   * reads `active` and its progress is theirs together.
   */
  children?: ChildCounts | undefined;
  /** Only on children of another job: the parent's id. */
  parentId?: string | undefined;
}

/** Codes of the API's error body `{ error: { code, message, details? } }`. */
export type ErrorCode =
  | 'bad_request'
  | 'validation_failed'
  | 'unknown_analysis'
  | 'unauthorized'
  | 'cors_refused'
  | 'not_found'
  | 'method_not_allowed'
  | 'gone'
  | 'conflict'
  | 'idempotency_conflict'
  | 'not_completed'
  | 'already_finished'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'backlog_quota_exceeded'
  | 'storage_quota_exceeded'
  | 'schedule_quota_exceeded'
  | 'redis_unavailable'
  | 'too_many_streams'
  | 'server_busy'
  | 'internal';

/** Input of one child of a fanning-out `simulate`: a `simulate` input without `spawn`. */
export interface SimulateChildInput {
  /** Total run time of one attempt, 0 to 3 600 000 ms. */
  durationMs: number;
  /** Progress steps to report. @defaultValue 10 */
  steps?: number | undefined;
  /** Throw a transient (retried) error on this many first attempts. @defaultValue 0 */
  failTimes?: number | undefined;
  /** Throw a permanent error: fails at once, no retry. */
  fail?: 'permanent' | undefined;
  /** Burn CPU instead of sleeping. @defaultValue false */
  cpu?: boolean | undefined;
  /** Test hook: kill the worker mid-job (refused unless the worker allows it). @defaultValue false */
  crash?: boolean | undefined;
  /** Approximate size of the result payload. @defaultValue 0 */
  resultBytes?: number | undefined;
  /** Run each step as a durable step: a retry skips the steps already done. @defaultValue false */
  durable?: boolean | undefined;
  /** Test hook, with `durable`: kill the worker inside this step (1-based), on the first attempt only. */
  crashAtStep?: number | undefined;
}

/** Input of the `simulate` analysis: sleeps or burns CPU through steps (smoke tests, demos). */
export interface SimulateInput extends SimulateChildInput {
  /** Fan out first: start `count` child simulate jobs and wait for them without holding a worker. */
  spawn?:
    | {
        /** 1 to 1000 (and at most the server's MAX_CHILDREN_PER_JOB). */
        count: number;
        child: SimulateChildInput;
        /** This child (1-based) fails for good. */
        failChild?: number | undefined;
        /** Complete with partial results instead of failing with `child_failed`. @defaultValue false */
        continueOnFailure?: boolean | undefined;
        /** Test hook: kill the worker right after the children start (refused unless allowed). @defaultValue false */
        crashAfterSpawn?: boolean | undefined;
      }
    | undefined;
}

export interface SimulateResult {
  steps: number;
  attempt: number;
  resumedFromStep: number;
  elapsedMs: number;
  payload: string;
  /** With `spawn`: how its children ended. */
  children?: { completed: number; failed: number; cancelled: number } | undefined;
}

/** Input of `dataset-profile` (docs/dataset-profile.md); anything omitted is detected or defaulted. */
export interface DatasetProfileInput {
  /** The dataset itself (`{ inline }`), or an http(s) URL the worker streams it from (`{ url }`). */
  source: { inline: string } | { url: string };
  format?: 'csv' | 'ndjson' | undefined;
  /** @defaultValue 'utf-8' */
  encoding?: 'utf-8' | 'latin1' | undefined;
  csv?: { delimiter?: string | undefined; quote?: string | undefined; header?: boolean | undefined } | undefined;
  /** Profile only these columns. Default: all. */
  columns?: string[] | undefined;
  /** @defaultValue 10 */
  topK?: number | undefined;
  /** @defaultValue 10 */
  bins?: number | undefined;
  nullValues?: string[] | undefined;
  /** @defaultValue 20 */
  maxErrors?: number | undefined;
  /**
   * Byte-range parts a URL dataset with Range support is split into, profiled by child jobs and
   * merged (1–64). Default: one per 64 MiB.
   */
  parallelism?: number | undefined;
}

type Scalar = number | string | null;

export interface ColumnProfile {
  name: string;
  type: 'integer' | 'number' | 'boolean' | 'datetime' | 'string' | 'empty';
  /** Non-null values. count + nulls = the dataset's rowCount. */
  count: number;
  nulls: number;
  typeCounts: { integer: number; number: number; boolean: number; datetime: number; string: number };
  distinct: { value: number; estimated: boolean };
  min: Scalar;
  max: Scalar;
  mean: Scalar;
  stdDev: number | null;
  quantiles: Record<'p01' | 'p05' | 'p25' | 'p50' | 'p75' | 'p95' | 'p99', Scalar> | null;
  quantilesEstimated: boolean;
  topK: { value: string; count: number }[];
  topKEstimated: boolean;
  histogram: { estimated: boolean; bins: { lower: Scalar; upper: Scalar; count: number }[] } | null;
}

export interface DatasetProfileResult {
  format: 'csv' | 'ndjson';
  /** The CSV dialect used (given or detected); null for ndjson. */
  dialect: { delimiter: string; quote: string; header: boolean } | null;
  rowCount: number;
  bytes: number;
  columns: ColumnProfile[];
  parseErrors: { count: number; first: { line: number; message: string }[] };
  /** Whether the dataset was profiled in byte-range parts by child jobs and merged. */
  parallel: boolean;
  /** How many byte ranges were profiled: 1 for one pass. */
  parts: number;
  /** Why the dataset was read in one pass (when `parallel` is false). */
  reason?: string | undefined;
  /** Byte offset this attempt resumed from (0 when it started from the beginning). */
  resumedFrom: number;
  attempts: number;
  durationMs: number;
}

/** Input of `dataset-profile-part`: one byte range of a parallel profile, built by its parent job. */
export interface DatasetProfilePartInput {
  url: string;
  start: number;
  end: number;
  validator: { etag?: string | undefined; length: number };
  format: 'csv' | 'ndjson';
  dialect: { delimiter: string; quote: string; header: boolean } | null;
  names: string[] | null;
  encoding?: 'utf-8' | 'latin1' | undefined;
  columns?: string[] | undefined;
  nullValues: string[];
  maxErrors: number;
}

/** Result of `dataset-profile-part`: the range's packed aggregation state, for its parent to merge. */
export interface DatasetProfilePartResult {
  state: string;
  endsInQuote: boolean;
  rows: number;
  bytes: number;
  durationMs: number;
}

/** Every analysis the API runs, by name: what it takes and what it returns. */
export interface Analyses {
  simulate: { input: SimulateInput; result: SimulateResult };
  'dataset-profile': { input: DatasetProfileInput; result: DatasetProfileResult };
  /** Internal: started by `dataset-profile` itself for each part of a parallel profile. */
  'dataset-profile-part': { input: DatasetProfilePartInput; result: DatasetProfilePartResult };
}

export type AnalysisName = keyof Analyses;
export type AnalysisInput<N extends AnalysisName> = Analyses[N]['input'];
export type AnalysisResult<N extends AnalysisName> = Analyses[N]['result'];

export const FINAL_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

export interface SubmitOptions {
  /** 1 runs first, 1000 last. @defaultValue 500 */
  priority?: number;
  /** Run no earlier than this many milliseconds from now. */
  delayMs?: number;
  /** POSTed the job view, signed, when the job completes, fails or is cancelled. */
  webhook?: { url: string };
  /** Makes the submission safe to retry: the same key and body give the same job. */
  idempotencyKey?: string;
  /**
   * Aborts the request; the call then rejects with the signal's reason (a `DOMException` named
   * `AbortError` unless you gave one), never a `ConnectionError`.
   */
  signal?: AbortSignal;
}

export interface ListQuery {
  status?: JobStatus;
  type?: string;
  /** Only the runs of this schedule (`sch_…`), newest first. */
  schedule?: string;
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** @defaultValue 20 (at most 100) */
  limit?: number;
}

export interface JobPage {
  jobs: JobView[];
  nextCursor: string | null;
}

export interface ChildrenQuery {
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** @defaultValue 20 (at most 100) */
  limit?: number;
}

/** `GET /v1/jobs/:id/children`: a page of a job's children, in the order it started them. */
export interface ChildPage {
  children: JobView[];
  nextCursor: string | null;
}

export interface JobResult<R = unknown> {
  id: string;
  type: string;
  completedAt: string | null;
  expiresAt: string | null;
  result: R;
}

/** What a `progress` event carries. */
export interface ProgressData {
  id: string;
  status: 'active';
  progress: Progress;
  etaSeconds: number | null;
}

/**
 * What a `reset` event carries: a resume with `Last-Event-ID` whose missed events the server could
 * not check (`trimmed` from its events stream, `too_far_behind`, or `unavailable` just then). The
 * `snapshot` sent before it is the job's current state; nothing needs doing.
 */
export interface ResetData {
  id: string;
  reason: 'trimmed' | 'too_far_behind' | 'unavailable';
  message: string;
  /** The `Last-Event-ID` the client sent. */
  lastEventId: string;
}

/**
 * An event of `GET /v1/jobs/:id/events`. `id` is the SSE event id (a Redis stream id); the
 * snapshot's is the events-stream position it covers. Absent on a `reset`, and on the snapshot and
 * final event of an already finished job.
 */
export type JobEvent =
  | { type: 'snapshot'; id?: string; data: JobView }
  | { type: 'reset'; id?: undefined; data: ResetData }
  | { type: 'status'; id?: string; data: { id: string; status: JobStatus } }
  | { type: 'progress'; id?: string; data: ProgressData }
  | { type: 'completed' | 'failed' | 'cancelled'; id?: string; data: JobView };

/** A run due while the schedule's previous run is still active: `skip` it (counted) or `queue` it. */
export type Overlap = 'skip' | 'queue';

/** `POST /v1/schedules`: a recurring analysis. Give `cron` or `everyMs`, not both. */
export interface ScheduleCreate<N extends AnalysisName = AnalysisName> {
  type: N;
  input: AnalysisInput<N>;
  /** 5 fields (minute first) or 6 (second first). */
  cron?: string | undefined;
  everyMs?: number | undefined;
  /** IANA time zone of `cron`. @defaultValue 'UTC' */
  timezone?: string | undefined;
  /** ISO 8601: no run before. */
  startAt?: string | undefined;
  /** ISO 8601: no run after. */
  endAt?: string | undefined;
  /** Runs at most. */
  limit?: number | undefined;
  /** Priority of each run, 1 to 1000. @defaultValue 500 */
  priority?: number | undefined;
  /** @defaultValue 'skip' */
  overlap?: Overlap | undefined;
}

/** `PATCH /v1/schedules/:id`: pause or resume, new timing, new input. */
export interface ScheduleUpdate {
  paused?: boolean | undefined;
  input?: unknown;
  cron?: string | undefined;
  everyMs?: number | undefined;
  timezone?: string | undefined;
  startAt?: string | null | undefined;
  endAt?: string | null | undefined;
  limit?: number | null | undefined;
  priority?: number | undefined;
  overlap?: Overlap | undefined;
}

/** The schedule view. Times are ISO 8601 strings. */
export interface ScheduleView {
  id: string;
  type: string;
  input: unknown;
  cron: string | null;
  everyMs: number | null;
  timezone: string;
  startAt: string | null;
  endAt: string | null;
  limit: number | null;
  priority: number;
  overlap: Overlap;
  paused: boolean;
  createdAt: string;
  /** Due time of the next run; null when paused or when the schedule has no run left. */
  nextRunAt: string | null;
  /** The last run a worker started. */
  lastRun: { id: string; startedAt: string } | null;
  /** Runs started. */
  runs: number;
  /** Runs skipped because the previous one was still active (overlap `skip`). */
  skipped: number;
  links: { self: string; runs: string };
}

export interface ScheduleListQuery {
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** @defaultValue 100 (at most 100) */
  limit?: number;
}

/** A page of the tenant's schedules, oldest first. */
export interface SchedulePage {
  schedules: ScheduleView[];
  nextCursor: string | null;
}
