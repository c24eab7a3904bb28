import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  checkRedis,
  metricsAuthorized,
  type RedisConnection,
  type RedisReadiness,
  readinessBody,
} from '@longhaul/shared';

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
  /** How long `/readyz` waits for Redis' PING. @defaultValue 900 */
  readyTimeoutMs?: number;
  /** `METRICS_TOKEN`: `/readyz` shows its checks only to `Bearer <token>`; without one, to no one. */
  metricsToken?: string | undefined;
}

const NOT_CONNECTED: RedisReadiness = {
  ready: false,
  checks: { redis: 'unreachable: not connected', maxmemoryPolicy: null },
  warnings: [],
};

/** The worker's own small HTTP surface: `/healthz` (process up) and `/readyz` (Redis, not draining). */
export function createHealthServer({
  redis,
  state,
  routes = {},
  strictRedisPolicy = false,
  readyTimeoutMs = 900,
  metricsToken,
}: HealthServerDeps): Server {
  return createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return json(405, { error: { code: 'bad_request', message: 'GET only' } });
    if (path === '/healthz') return json(200, { status: 'ok' });
    if (path === '/readyz') {
      // As the API's: at once while the connection is known down, the details to the token only
      // (Redis error text names hosts and ports; a probe is open to anyone who reaches the port).
      const readiness =
        redis.status === 'ready' ? await checkRedis(redis, readyTimeoutMs, strictRedisPolicy) : NOT_CONNECTED;
      const ready = readiness.ready && !state.draining;
      const detailed = metricsToken !== undefined && metricsAuthorized(req.headers.authorization, metricsToken);
      if (!ready) res.setHeader('Retry-After', '2');
      const withDrain = { ...readiness, ready, checks: { ...readiness.checks, draining: state.draining } };
      return json(ready ? 200 : 503, readinessBody(withDrain, detailed));
    }
    const route = routes[path];
    if (route) return route(res, req);
    return json(404, { error: { code: 'not_found', message: `no route for GET ${path}` } });
  });
}
