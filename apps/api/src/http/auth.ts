import { hash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { HttpError } from './http-error.ts';

declare global {
  namespace Express {
    interface Request {
      /** The tenant whose API key authenticated this request. */
      tenant?: string;
    }
  }
}

/** One-shot SHA-256 (no Hash object per request). */
const digest = (s: string) => hash('sha256', s, 'buffer');

/**
 * `Authorization: Bearer <key>` → `req.tenant`. Keys are compared as SHA-256 digests with
 * `timingSafeEqual`, against every key, so the time taken says nothing about which key is close.
 */
export function bearerAuth(apiKeys: { tenant: string; key: string }[]): RequestHandler {
  const known = apiKeys.map(({ tenant, key }) => ({ tenant, digest: digest(key) }));
  return (req, _res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) {
      throw new HttpError(401, 'unauthorized', 'missing API key: send "Authorization: Bearer <key>"', undefined, {
        'WWW-Authenticate': 'Bearer',
      });
    }
    const given = digest(match[1]);
    let tenant: string | undefined;
    for (const k of known) if (timingSafeEqual(k.digest, given)) tenant = k.tenant;
    if (!tenant) {
      throw new HttpError(401, 'unauthorized', 'invalid API key', undefined, { 'WWW-Authenticate': 'Bearer' });
    }
    req.tenant = tenant;
    next();
  };
}

/** The authenticated tenant; routes behind {@link bearerAuth} always have one. */
export function tenantOf(req: { tenant?: string }): string {
  if (!req.tenant) throw new HttpError(401, 'unauthorized', 'missing API key');
  return req.tenant;
}
