import type { RequestHandler } from 'express';
import { HttpError } from './http-error.ts';

/** A path the API serves, as an OpenAPI template (`/v1/jobs/{id}`), and the methods it takes. */
export interface ServedPath {
  path: string;
  methods: readonly string[];
}

/**
 * For a request that reached no route: when its path is one the API serves, by other methods,
 * `405` with `Allow` instead of a `404`, so a client learns the path is right and what it takes
 * (the router itself answers `OPTIONS` with the same `Allow`). Placed after every route, before
 * the 404. A `{…}` segment of a template matches any one segment; a trailing slash is ignored, as
 * the router ignores it.
 */
export function methodNotAllowed(paths: readonly ServedPath[]): RequestHandler {
  const served = paths.map(({ path, methods }) => {
    const allowed = methods.map((m) => m.toUpperCase());
    if (allowed.includes('GET')) allowed.push('HEAD');
    // As the router lists them when it answers OPTIONS itself.
    return { segments: path.split('/'), methods: new Set(allowed), allow: allowed.sort().join(', ') };
  });
  return (req, _res, next) => {
    const segments = req.path.replace(/(.)\/$/, '$1').split('/');
    const match = served.find(
      (p) =>
        p.segments.length === segments.length &&
        p.segments.every((s, i) => (s.startsWith('{') && s.endsWith('}') ? segments[i] !== '' : s === segments[i])),
    );
    // An allowed method that reached no route: a route not mounted in this process (a 404).
    if (!match || match.methods.has(req.method)) return next();
    throw new HttpError(
      405,
      'method_not_allowed',
      `${req.method} is not allowed on ${req.path}; use ${match.allow}`,
      undefined,
      {
        Allow: match.allow,
      },
    );
  };
}
