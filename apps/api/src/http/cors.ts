import type { Request, RequestHandler } from 'express';
import { HttpError } from './http-error.ts';

/** Request headers a browser may send: the API key, JSON bodies, idempotent submits, SSE resumes. */
const ALLOWED_HEADERS = 'Authorization, Content-Type, Idempotency-Key, Last-Event-ID';
/** Response headers a page may read: where a new job is, the id to quote, when to retry. */
const EXPOSED_HEADERS = 'Location, X-Request-Id, Retry-After';
const ALLOWED_METHODS = 'GET, POST, PATCH, DELETE';
/** How long a browser may cache a preflight answer. */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/** A browser's preflight: `OPTIONS` from a page's origin, asking whether a method may be sent. */
const isPreflight = (req: Request) =>
  req.method === 'OPTIONS' && req.get('origin') !== undefined && req.get('access-control-request-method') !== undefined;

/**
 * CORS for the origins in `CORS_ORIGINS`, matched exactly. A listed origin's preflight is answered
 * here (204); its requests get `Access-Control-Allow-Origin` and the exposed headers. Any other
 * origin gets no CORS header at all, so the browser refuses the response; its preflight is answered
 * 403 `cors_refused`, which the browser's network panel shows with the reason (it carries no API
 * key, so it would otherwise meet a 401 that says nothing about the origin). Credentials are API
 * keys in `Authorization`, never cookies, so `Access-Control-Allow-Credentials` is not sent.
 */
export function cors(origins: readonly string[]): RequestHandler {
  const allowed = new Set(origins);
  const refusal = (origin: string | undefined) =>
    allowed.size === 0
      ? 'this API allows no browser origins (CORS_ORIGINS is empty)'
      : `the origin ${JSON.stringify(origin)} is not in CORS_ORIGINS`;
  return (req, res, next) => {
    // Answers differ by Origin, so caches must key on it, even when this one is refused.
    if (allowed.size > 0) res.vary('Origin');
    const origin = req.get('origin');
    if (origin === undefined || !allowed.has(origin)) {
      if (isPreflight(req)) throw new HttpError(403, 'cors_refused', refusal(origin));
      return next();
    }
    res.setHeader('Access-Control-Allow-Origin', origin);
    if (isPreflight(req)) {
      res.vary('Access-Control-Request-Method');
      res.vary('Access-Control-Request-Headers');
      res.setHeader('Access-Control-Allow-Methods', ALLOWED_METHODS);
      res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      res.setHeader('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_SECONDS));
      res.status(204).end();
      return;
    }
    res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    next();
  };
}
