import { pingWithin, type RedisConnection } from './redis.ts';

export interface RedisReadiness {
  ready: boolean;
  checks: { redis: 'ok' | string; maxmemoryPolicy: string | null };
  warnings: string[];
}

/**
 * Redis answers within `timeoutMs`, and its `maxmemory-policy` is `noeviction` (any other policy
 * lets Redis evict queue keys under memory pressure: jobs would vanish). A policy other than
 * noeviction is a warning, or a failure when `strictPolicy` is set. Used by both apps' `/readyz`.
 */
export async function checkRedis(
  redis: RedisConnection,
  timeoutMs: number,
  strictPolicy: boolean,
): Promise<RedisReadiness> {
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

/**
 * What `/readyz` answers. Anyone gets the status; the checks and warnings (Redis error text, which
 * names hosts and ports, and its configuration) only a caller holding the metrics token, since a
 * readiness probe is reachable by anyone who can reach the service.
 */
export function readinessBody(readiness: RedisReadiness, detailed: boolean): Record<string, unknown> {
  const status = readiness.ready ? 'ready' : 'not_ready';
  return detailed ? { status, ...readiness } : { status };
}
