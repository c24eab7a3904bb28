import type { FailureCode } from '@longhaul/shared';
import { UnrecoverableError } from 'bullmq';

/**
 * A failure that retrying cannot fix (bad input, a deterministic error in the data): the job
 * fails at once. Throw a plain `Error` for transient trouble; it is retried with backoff.
 * The message is stored as `code: message`, which the job view splits again.
 */
export class PermanentError extends UnrecoverableError {
  constructor(
    message: string,
    readonly code: FailureCode = 'analysis_failed',
  ) {
    super(`${code}: ${message}`);
    this.name = 'PermanentError';
  }
}
