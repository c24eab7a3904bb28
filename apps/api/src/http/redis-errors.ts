import type { RedisConnection } from '@longhaul/shared';
import { HttpError } from './http-error.ts';

/**
 * ioredis and BullMQ errors that mean "Redis cannot serve this now" (down, frozen, reconnecting,
 * full). They become a 503 with Retry-After: the client may try again, nothing was accepted.
 */
const UNAVAILABLE =
  /Connection is closed|Stream isn't writeable|isn't ready|Failed to refresh slots cache|Command timed out|max retries|MaxRetriesPerRequest|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|did not answer within/i;
const FULL = /^OOM /;

export function redisUnavailable(message = 'Redis is unavailable; try again shortly'): HttpError {
  return new HttpError(503, 'redis_unavailable', message, undefined, { 'Retry-After': '2' });
}

/** Maps an error thrown while talking to Redis to a 503, or returns null when it is something else. */
export function classifyRedisError(err: unknown, redis: RedisConnection): HttpError | null {
  const message = err instanceof Error ? err.message : String(err);
  // A MULTI refused for OOM fails as EXECABORT; ioredis keeps the queued commands' errors aside.
  const previous = (err as { previousErrors?: unknown[] } | null)?.previousErrors ?? [];
  if (FULL.test(message) || previous.some((e) => e instanceof Error && FULL.test(e.message))) {
    return redisUnavailable('Redis is out of memory and refuses new jobs; try again later');
  }
  if (UNAVAILABLE.test(message) || (redis.status !== 'ready' && redis.status !== 'connect')) {
    return redisUnavailable();
  }
  return null;
}

/**
 * Rejects with a 503 when `work` has not settled within `ms`. The commands' own timeout should
 * fire first; this is the backstop for promises that wait on a connection that never comes
 * (BullMQ waits for a client that has not connected yet).
 */
export async function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(redisUnavailable('Redis did not answer in time; try again shortly')), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
