import { checkRedis, type RedisConnection } from '@longhaul/shared';
import { Router } from 'express';

export function healthRoutes(redis: RedisConnection, timeoutMs: number, strictPolicy: boolean): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const readiness = await checkRedis(redis, timeoutMs, strictPolicy);
    res.status(readiness.ready ? 200 : 503);
    if (!readiness.ready) res.set('Retry-After', '2');
    res.json({ status: readiness.ready ? 'ready' : 'not_ready', ...readiness });
  });
  return router;
}
