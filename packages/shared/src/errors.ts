/** Error codes of the HTTP API's `{ error: { code, message, details? } }` body. */
export const ERROR_CODES = [
  'bad_request',
  'validation_failed',
  'unknown_analysis',
  'unauthorized',
  'not_found',
  'gone',
  'conflict',
  'idempotency_conflict',
  'not_completed',
  'already_finished',
  'payload_too_large',
  'unsupported_media_type',
  'rate_limited',
  'backlog_quota_exceeded',
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
  'cancelled',
  'unknown_analysis',
  'stalled',
] as const;

export type FailureCode = (typeof FAILURE_CODES)[number];
