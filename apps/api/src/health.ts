import {
  checkRedis,
  metricsAuthorized,
  type RedisConnection,
  type RedisReadiness,
  readinessBody,
} from '@longhaul/shared';
import { Router } from 'express';

export interface HealthOptions {
  /** How long `/readyz` waits for Redis' PING. */
  timeoutMs: number;
  /** Fail readiness when Redis' maxmemory-policy is not noeviction. */
  strictPolicy: boolean;
  /** `METRICS_TOKEN`: `/readyz` shows its checks only to `Bearer <token>`; without one, to no one. */
  metricsToken: string | undefined;
  /** False while Redis is known down or silent: not ready, without waiting for a PING. */
  alive?: () => boolean;
}

export function healthRoutes(
  redis: RedisConnection,
  { timeoutMs, strictPolicy, metricsToken, alive = () => true }: HealthOptions,
): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (req, res) => {
    const readiness: RedisReadiness = alive()
      ? await checkRedis(redis, timeoutMs, strictPolicy)
      : { ready: false, checks: { redis: 'unreachable: not answering', maxmemoryPolicy: null }, warnings: [] };
    const detailed = metricsToken !== undefined && metricsAuthorized(req.get('authorization'), metricsToken);
    res.status(readiness.ready ? 200 : 503);
    if (!readiness.ready) res.set('Retry-After', '2');
    res.json(readinessBody(readiness, detailed));
  });
  return router;
}
