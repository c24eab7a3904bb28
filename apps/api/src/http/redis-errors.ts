import type { RedisConnection } from '@longhaul/shared';
import { HttpError } from './http-error.ts';

/**
 * Error replies with which Redis refuses a command for now, by their leading code: full (OOM),
 * a replica or a master in trouble (READONLY, MASTERDOWN, NOREPLICAS), starting up (LOADING), busy
 * with a script (BUSY), a cluster re-sharding or failing over (CLUSTERDOWN, TRYAGAIN), or a failed
 * save refusing writes (MISCONF). Matched on the code word, so `BUSYGROUP` (a programming error) is
 * not taken for `BUSY`.
 */
const REFUSAL_CODES = new Set([
  'OOM',
  'READONLY',
  'LOADING',
  'MASTERDOWN',
  'BUSY',
  'CLUSTERDOWN',
  'TRYAGAIN',
  'NOREPLICAS',
  'MISCONF',
]);

/** ioredis, BullMQ and socket errors that mean Redis cannot be reached or did not answer. */
const UNREACHABLE =
  /Connection is closed|Stream isn't writeable|isn't ready|Failed to refresh slots cache|Command timed out|max retries|MaxRetriesPerRequest|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|ENOTFOUND|socket hang up|did not answer/i;

/** `EXECABORT Transaction discarded because of: OOM …` → `OOM`; `READONLY You can't …` → `READONLY`. */
function refusalCode(message: string): string | undefined {
  const inner = /^EXECABORT .*?because of: ([A-Z]+)\b/.exec(message)?.[1];
  const code = inner ?? /^([A-Z]+)\b/.exec(message)?.[1];
  return code && REFUSAL_CODES.has(code) ? code : undefined;
}

export function redisUnavailable(message = 'Redis is unavailable; try again shortly'): HttpError {
  return new HttpError(503, 'redis_unavailable', message, undefined, { 'Retry-After': '2' });
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Maps an error thrown while talking to Redis to a 503 with Retry-After (the client may try again;
 * nothing was accepted), or returns null when it is something else. A refused MULTI fails as
 * EXECABORT; ioredis keeps the queued commands' own errors aside in `previousErrors`.
 */
export function classifyRedisError(err: unknown, redis: RedisConnection): HttpError | null {
  const message = messageOf(err);
  const previous = ((err as { previousErrors?: unknown[] } | null)?.previousErrors ?? []).map(messageOf);
  const code = [message, ...previous].map(refusalCode).find(Boolean);
  if (code === 'OOM') return redisUnavailable('Redis is out of memory and refuses new jobs; try again later');
  if (code) return redisUnavailable(`Redis refused the request (${code}); try again shortly`);
  if (UNREACHABLE.test(message) || (redis.status !== 'ready' && redis.status !== 'connect')) {
    return redisUnavailable();
  }
  return null;
}
