import { pingWithin, type RedisConnection } from '@longhaul/shared';
import { Router } from 'express';

export interface Readiness {
  ready: boolean;
  checks: { redis: 'ok' | string; maxmemoryPolicy: string | null };
  warnings: string[];
}

/**
 * Redis answers within `timeoutMs`, and its `maxmemory-policy` is `noeviction` (any other policy
 * lets Redis evict queue keys under memory pressure: jobs would vanish). A policy other than
 * noeviction is a warning, or a failure when `strictPolicy` is set.
 */
export async function checkRedis(redis: RedisConnection, timeoutMs: number, strictPolicy: boolean): Promise<Readiness> {
  const warnings: string[] = [];
  try {
    await pingWithin(redis, timeoutMs);
  } catch (err) {
    return {
      ready: false,
      checks: { redis: `unreachable: ${(err as Error).message}`, maxmemoryPolicy: null },
      warnings,
    };
  }
  let policy: string | null = null;
  try {
    const reply = (await redis.call('CONFIG', 'GET', 'maxmemory-policy')) as string[];
    policy = reply[1] ?? null;
  } catch {
    // Managed Redis (Upstash, ElastiCache) may refuse CONFIG: say so rather than fail.
    warnings.push('could not read maxmemory-policy (CONFIG GET refused); make sure it is noeviction');
  }
  let ready = true;
  if (policy !== null && policy !== 'noeviction') {
    warnings.push(`maxmemory-policy is "${policy}"; use "noeviction" or Redis may evict jobs`);
    if (strictPolicy) ready = false;
  }
  return { ready, checks: { redis: 'ok', maxmemoryPolicy: policy }, warnings };
}

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
