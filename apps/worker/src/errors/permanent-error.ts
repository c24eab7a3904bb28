import { encodeFailure, type FailureCode } from '@longhaul/shared';
import { UnrecoverableError } from 'bullmq';

/**
 * A failure that retrying cannot fix (bad input, a deterministic error in the data): the job
 * fails at once. Throw a plain `Error` for transient trouble; it is retried with backoff.
 * The reason is stored with `encodeFailure`, which the job view reads back with `decodeFailure`.
 */
export class PermanentError extends UnrecoverableError {
  constructor(
    message: string,
    readonly code: FailureCode = 'analysis_failed',
  ) {
    super(encodeFailure(code, message));
    this.name = 'PermanentError';
  }
}
