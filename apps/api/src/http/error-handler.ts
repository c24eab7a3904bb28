import type { Logger, RedisConnection } from '@longhaul/shared';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { HttpError } from './http-error.ts';
import { classifyRedisError } from './redis-errors.ts';

/** body-parser's error types, which carry `type` and `status`. */
interface BodyParserError {
  type?: string;
  status?: number;
  expose?: boolean;
  limit?: number;
  /** The raw body, on a parse failure. */
  body?: unknown;
}

/**
 * Whether body-parser refused `body` only for strictness: valid JSON whose top level is not an
 * object or array (`null`, `5`). It refuses those before parsing, by their first character, so a
 * body that opens with `{` or `[` failed as JSON and is not parsed again.
 */
function isNonObjectJson(body: unknown): boolean {
  if (typeof body !== 'string') return false;
  const first = body.trimStart()[0];
  if (first === '{' || first === '[') return false;
  try {
    JSON.parse(body);
    return true;
  } catch {
    return false;
  }
}

function toHttpError(err: unknown, redis: RedisConnection): HttpError {
  if (err instanceof HttpError) return err;
  const bp = err as BodyParserError;
  switch (bp?.type) {
    case 'entity.too.large':
      return new HttpError(413, 'payload_too_large', `the body is larger than ${bp.limit} bytes`);
    case 'entity.parse.failed':
      return new HttpError(
        400,
        'bad_request',
        isNonObjectJson(bp.body) ? 'the body must be a JSON object' : 'the body is not valid JSON',
      );
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new HttpError(415, 'unsupported_media_type', 'the body must be UTF-8 JSON');
    case 'request.aborted':
      return new HttpError(400, 'bad_request', 'the request was aborted');
  }
  // The router could not percent-decode a path parameter (`/v1/jobs/%`): the client's mistake.
  // Its message quotes the raw parameter, so it is not echoed.
  if (err instanceof URIError) return new HttpError(400, 'bad_request', 'the URL is not valid percent-encoding');
  if (typeof bp?.status === 'number' && bp.status >= 400 && bp.status < 500 && bp.expose) {
    return new HttpError(bp.status, 'bad_request', (err as Error).message);
  }
  return classifyRedisError(err, redis) ?? new HttpError(500, 'internal', 'internal error');
}

/** Express 5 forwards rejected promises here; every error leaves as the one error body. */
export function errorHandler(log: Logger, redis: RedisConnection): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const http = toHttpError(err, redis);
    if (http.status >= 500) {
      log.error({ err, reqId: req.id }, 'request failed');
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    res.set(http.headers);
    res.status(http.status).json({
      error: {
        code: http.code,
        message: http.message,
        ...(http.details === undefined ? {} : { details: http.details }),
      },
    });
  };
}

export const notFoundHandler: RequestHandler = (req) => {
  throw new HttpError(404, 'not_found', `no route for ${req.method} ${req.path}`);
};
