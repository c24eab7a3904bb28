import type {
  AnalysisInput,
  AnalysisName,
  AnalysisResult,
  ErrorCode,
  JobStatus,
  JobView,
  Progress,
  WebhookView,
} from '@longhaul/shared';

// Types only: erased at build, so the SDK carries none of the server's runtime dependencies.
export type { AnalysisInput, AnalysisName, AnalysisResult, ErrorCode, JobStatus, JobView, Progress, WebhookView };

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
  signal?: AbortSignal;
}

export interface ListQuery {
  status?: JobStatus;
  type?: string;
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** @defaultValue 20 (at most 100) */
  limit?: number;
}

export interface JobPage {
  jobs: JobView[];
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
 * An event of `GET /v1/jobs/:id/events`. `id` is the SSE event id (a Redis stream id), absent on
 * the snapshot and on a final event synthesised from an already finished job.
 */
export type JobEvent =
  | { type: 'snapshot'; id?: string; data: JobView }
  | { type: 'status'; id?: string; data: { id: string; status: JobStatus } }
  | { type: 'progress'; id?: string; data: ProgressData }
  | { type: 'completed' | 'failed' | 'cancelled'; id?: string; data: JobView };
