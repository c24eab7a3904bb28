import type { Logger } from '@longhaul/shared';
import type { RequestHandler } from 'express';
import { requestId } from './request-id.ts';

declare global {
  namespace Express {
    interface Request {
      /** This request's id, echoed as `X-Request-Id` and logged as `reqId`. */
      id?: string;
    }
  }
}

/** Paths answered too often to log: probes and scrapes. */
const QUIET = new Set(['/healthz', '/metrics']);

/**
 * One log line per request, when its response is sent: `reqId`, `req` (id, method, URL),
 * `res` (status) and `responseTime` (ms); `info` below 400, `warn` for 4xx, `error` for 5xx (the
 * error handler logs the error itself). Not pino-http: it builds a child logger for every request,
 * which cost about a tenth of a submit's CPU in the profile (bench/profile.md), and it writes the
 * same line.
 */
export function requestLog(log: Logger): RequestHandler {
  return (req, res, next) => {
    const id = requestId(req, res);
    req.id = id;
    if (QUIET.has(req.url)) {
      next();
      return;
    }
    const started = performance.now();
    res.once('finish', () => {
      const status = res.statusCode;
      const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
      log[level](
        {
          reqId: id,
          req: { id, method: req.method, url: req.originalUrl },
          res: { statusCode: status },
          responseTime: Math.round(performance.now() - started),
        },
        status >= 500 ? 'request errored' : 'request completed',
      );
    });
    next();
  };
}
