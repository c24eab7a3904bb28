import type { ErrorCode } from '@longhaul/shared';

/** An error that becomes the HTTP response `{ error: { code, message, details? } }`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const notFound = (what = 'job') => new HttpError(404, 'not_found', `no such ${what}`);
