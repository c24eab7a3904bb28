import { decodeFailure, type FailureCode } from '@longhaul/shared';

/** How a job's failure appears in the worker's log lines. */
export interface LoggedFailure {
  /** The failure's code, as the job view shows it (`invalid_input`, `dataset_error`, …). */
  code: FailureCode;
  /** The error's class (`PermanentError`, `TypeError`, …). */
  error: string;
  /** For an error nobody raised on purpose (a bug, a library's throw): where it was thrown. */
  at?: string;
}

/** Failures raised on purpose: their code says what went wrong, and their stack says nothing more. */
const ON_PURPOSE = new Set(['PermanentError', 'UnrecoverableError', 'DatasetError', 'AttemptTimeoutError']);

/**
 * What the worker's logs say of a job's failure: its code and the error's class, never its
 * message. A failure's message is written for the tenant (it is the job view's `error.message`)
 * and may quote its input or its data (an unknown column names the dataset's header): it stays
 * with the job, where the tenant and Bull Board's operators read it. An error nobody raised on
 * purpose keeps its stack's frames, which name code, not data (its first line, the message, goes).
 */
export function failureForLog(err: unknown): LoggedFailure {
  if (!(err instanceof Error)) return { code: 'analysis_failed', error: typeof err };
  const code = err.name === 'AttemptTimeoutError' ? 'timeout' : decodeFailure(err.message).code;
  if (ON_PURPOSE.has(err.name)) return { code, error: err.name };
  const frames = (err.stack ?? '')
    .split('\n')
    .filter((line) => line.trimStart().startsWith('at '))
    .slice(0, 8)
    .map((line) => line.trim())
    .join(' | ');
  return { code, error: err.name, ...(frames ? { at: frames } : {}) };
}
