import { hash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';

const digest = (s: string) => hash('sha256', s, 'buffer');

/** The credentials a {@link basicAuth} guard accepts; `null` when none are configured. */
export type AdminCredentials = { user: string; password: string } | null;

/**
 * HTTP basic auth for operator pages. The user and the password are both compared, always, as
 * SHA-256 digests with `timingSafeEqual`, so neither the time taken nor an early exit says which
 * part was wrong or how much of it matched.
 *
 * With no credentials configured, every request answers 401 and no `WWW-Authenticate` challenge
 * is sent (a browser prompt could never succeed): the page is closed, never open.
 */
export function basicAuth(credentials: AdminCredentials, realm = 'longhaul admin'): RequestHandler {
  const expected = credentials ? { user: digest(credentials.user), password: digest(credentials.password) } : null;
  return (req, res, next) => {
    if (!expected) {
      res.status(401).json({
        error: {
          code: 'unauthorized',
          message: 'the admin pages are disabled: set ADMIN_USER and ADMIN_PASSWORD to enable them',
        },
      });
      return;
    }
    const given = parseBasic(req.get('authorization'));
    // Both comparisons run whatever the first one says.
    const userOk = timingSafeEqual(expected.user, digest(given?.user ?? ''));
    const passwordOk = timingSafeEqual(expected.password, digest(given?.password ?? ''));
    if (given && userOk && passwordOk) {
      next();
      return;
    }
    res.set('WWW-Authenticate', `Basic realm="${realm}", charset="UTF-8"`);
    res.status(401).json({
      error: { code: 'unauthorized', message: given ? 'wrong user or password' : 'HTTP basic auth required' },
    });
  };
}

/** `Basic base64(user:password)` → its parts, or `undefined` when the header is not basic auth. */
export function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const sep = decoded.indexOf(':');
  if (sep < 0) return undefined;
  return { user: decoded.slice(0, sep), password: decoded.slice(sep + 1) };
}
