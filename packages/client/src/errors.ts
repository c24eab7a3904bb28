import type { ErrorCode } from './types.ts';

/** Every error the SDK throws. */
export class LonghaulError extends Error {
  override name = 'LonghaulError';
}

/** The API answered with an error body `{ error: { code, message, details? } }`. */
export class ApiError extends LonghaulError {
  override name = 'ApiError';
  constructor(
    /** The HTTP status. */
    readonly status: number,
    /** The API's error code, e.g. `validation_failed`, `not_found`, `redis_unavailable`. */
    readonly code: ErrorCode | (string & {}),
    message: string,
    /** Field-level problems for a 400, the job view for a 409 `not_completed`, … */
    readonly details?: unknown,
    /** The response's `X-Request-Id`, to quote when reporting a problem. */
    readonly requestId?: string,
    /** Seconds to wait before retrying (429, 503), from `Retry-After`. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** 400: unknown analysis, invalid input (see `details`), bad request. */
export class BadRequestError extends ApiError {
  override name = 'BadRequestError';
}
/** 401: missing or wrong API key. */
export class UnauthorizedError extends ApiError {
  override name = 'UnauthorizedError';
}
/** 404: no such job (or another tenant's). */
export class NotFoundError extends ApiError {
  override name = 'NotFoundError';
}
/** 409: the job has no result yet, is already finished, or an Idempotency-Key was reused with another body. */
export class ConflictError extends ApiError {
  override name = 'ConflictError';
}
/** 410: the job finished and its record was removed after the retention period. */
export class GoneError extends ApiError {
  override name = 'GoneError';
}
/** 429: rate limit, backlog quota or storage budget; retry after `retryAfterSeconds`. */
export class RateLimitedError extends ApiError {
  override name = 'RateLimitedError';
}
/**
 * 503: Redis unavailable or not answering; retry after `retryAfterSeconds`. A submit answered 503
 * may still have been stored (Redis held its commands past the API's patience): retry it with the
 * same `idempotencyKey`, and the retry answers with that job instead of adding another.
 */
export class UnavailableError extends ApiError {
  override name = 'UnavailableError';
}

/** The API could not be reached, did not answer in time, or what answered is not the API. */
export class ConnectionError extends LonghaulError {
  override name = 'ConnectionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Something answered at `baseUrl`, but not as the longhaul API does: a 2xx that is not JSON (or,
 * on the events route, not `text/event-stream`), e.g. a proxy's or a web app's HTML page. Usually a
 * wrong `baseUrl`. A {@link ConnectionError}, since the API itself was not reached.
 */
export class UnexpectedResponseError extends ConnectionError {
  override name = 'UnexpectedResponseError';
  constructor(
    message: string,
    /** The HTTP status of the answer. */
    readonly status: number,
    /** Its `Content-Type`, or null when it had none. */
    readonly contentType: string | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const BY_STATUS: Record<number, typeof ApiError> = {
  400: BadRequestError,
  401: UnauthorizedError,
  404: NotFoundError,
  409: ConflictError,
  410: GoneError,
  429: RateLimitedError,
  503: UnavailableError,
};

/** The typed error for an error response. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let error: { code?: string; message?: string; details?: unknown } = {};
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error ?? {};
  } catch {
    // not our error body (a proxy's page): keep the status and text
  }
  const retryAfter = Number(res.headers.get('retry-after'));
  const Class = BY_STATUS[res.status] ?? ApiError;
  return new Class(
    res.status,
    error.code ?? `http_${res.status}`,
    error.message ?? (text.slice(0, 200) || res.statusText),
    error.details,
    res.headers.get('x-request-id') ?? undefined,
    Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
  );
}
