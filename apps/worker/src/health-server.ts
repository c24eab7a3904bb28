import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { checkRedis, type RedisConnection } from '@longhaul/shared';

export interface HealthState {
  draining: boolean;
}

export interface HealthServerDeps {
  redis: RedisConnection;
  state: HealthState;
  /** Extra routes (e.g. `/metrics`), by path. */
  routes?: Record<string, (res: ServerResponse, req: IncomingMessage) => Promise<void> | void>;
  /** Fail readiness (not only warn) when Redis' maxmemory-policy is not noeviction. @defaultValue false */
  strictRedisPolicy?: boolean;
}

/** The worker's own small HTTP surface: `/healthz` (process up) and `/readyz` (Redis, not draining). */
export function createHealthServer({ redis, state, routes = {}, strictRedisPolicy = false }: HealthServerDeps): Server {
  return createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return json(405, { error: { code: 'bad_request', message: 'GET only' } });
    if (path === '/healthz') return json(200, { status: 'ok' });
    if (path === '/readyz') {
      const readiness = await checkRedis(redis, 1_000, strictRedisPolicy);
      const ready = readiness.ready && !state.draining;
      return json(ready ? 200 : 503, {
        status: ready ? 'ready' : 'not_ready',
        checks: { ...readiness.checks, draining: state.draining },
        warnings: readiness.warnings,
      });
    }
    const route = routes[path];
    if (route) return route(res, req);
    return json(404, { error: { code: 'not_found', message: `no route for GET ${path}` } });
  });
}
