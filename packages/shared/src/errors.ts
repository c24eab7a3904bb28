/** Error codes of the HTTP API's `{ error: { code, message, details? } }` body. */
export const ERROR_CODES = [
  'bad_request',
  'validation_failed',
  'unknown_analysis',
  'unauthorized',
  'cors_refused',
  'not_found',
  'method_not_allowed',
  'gone',
  'conflict',
  'idempotency_conflict',
  'not_completed',
  'already_finished',
  'payload_too_large',
  'unsupported_media_type',
  'rate_limited',
  'backlog_quota_exceeded',
  'storage_quota_exceeded',
  'schedule_quota_exceeded',
  'too_many_streams',
  'redis_unavailable',
  'server_busy',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

/**
 * Codes a worker puts at the start of a failed job's reason (`code: message`), so the job view
 * can say why a job failed without parsing prose.
 */
export const FAILURE_CODES = [
  'invalid_input',
  'analysis_failed',
  'timeout',
  'result_too_large',
  'checkpoint_too_large',
  'cancelled',
  'unknown_analysis',
  'stalled',
  'skipped',
  'child_failed',
  'too_many_children',
] as const;

export type FailureCode = (typeof FAILURE_CODES)[number];

/** A failure as the job view shows it: a code from {@link FAILURE_CODES} and a message. */
export interface Failure {
  code: FailureCode;
  message: string;
}

/** BullMQ's own reason for a job that stalled past `maxStalledCount`. */
const STALLED_REASON = /stalled more than allowable limit/;

/**
 * The one encoding of a failure into BullMQ's `failedReason` (`code: message`). Every failure a
 * worker raises on purpose goes through it, and {@link decodeFailure} reads it back.
 */
export function encodeFailure(code: FailureCode, message: string): string {
  return `${code}: ${message}`;
}

/** Reads a `failedReason` back into a {@link Failure}; a reason of unknown shape is `analysis_failed`. */
export function decodeFailure(reason: string | null | undefined): Failure {
  const match = /^([a-z_]+): ([\s\S]*)$/.exec(reason ?? '');
  if (match && (FAILURE_CODES as readonly string[]).includes(match[1] ?? '')) {
    return { code: match[1] as FailureCode, message: match[2] ?? '' };
  }
  if (reason && STALLED_REASON.test(reason)) {
    return {
      code: 'stalled',
      message: 'the job stopped its worker too many times (crash or lost lock) and was given up',
    };
  }
  return { code: 'analysis_failed', message: reason || 'the analysis failed' };
}
