import { createServer, type Server } from 'node:http';
import { pingWithin, type RedisConnection } from '@longhaul/shared';

export interface HealthState {
  draining: boolean;
}

export interface HealthServerDeps {
  redis: RedisConnection;
  state: HealthState;
  /** Extra routes (e.g. `/metrics`), by path. */
  routes?: Record<string, (res: import('node:http').ServerResponse) => Promise<void> | void>;
}

/** The worker's own small HTTP surface: `/healthz` (process up) and `/readyz` (Redis, not draining). */
export function createHealthServer({ redis, state, routes = {} }: HealthServerDeps): Server {
  return createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return json(405, { error: { code: 'bad_request', message: 'GET only' } });
    if (path === '/healthz') return json(200, { status: 'ok' });
    if (path === '/readyz') {
      let redisCheck = 'ok';
      try {
        await pingWithin(redis, 1_000);
      } catch (err) {
        redisCheck = `unreachable: ${(err as Error).message}`;
      }
      const ready = redisCheck === 'ok' && !state.draining;
      return json(ready ? 200 : 503, {
        status: ready ? 'ready' : 'not_ready',
        checks: { redis: redisCheck, draining: state.draining },
      });
    }
    const route = routes[path];
    if (route) return route(res);
    return json(404, { error: { code: 'not_found', message: `no route for GET ${path}` } });
  });
}
