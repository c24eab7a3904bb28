import { layoutFor, type RedisConnection } from '@longhaul/shared';
import type { RequestHandler } from 'express';
import { type IncrementResponse, type RateLimitInfo, rateLimit, type Store } from 'express-rate-limit';
import { tenantOf } from './auth.ts';
import { HttpError } from './http-error.ts';

export interface TenantRateLimitOptions {
  redis: RedisConnection;
  /** Key prefix, the queue prefix: counters land in the same Redis (Cluster slot) as the jobs. */
  prefix: string;
  /** Requests a tenant may make per window; `0` turns the limit off. */
  limit: number;
  /** The window. @defaultValue 60 000 ms (the limit is per minute). */
  windowMs?: number;
  /** Bounds the wait for Redis' count (a 503 once Redis is found down). @defaultValue none */
  deadline?: <T>(work: Promise<T>) => Promise<T>;
}

/**
 * One counter per tenant and window: INCR, and start the window's expiry on the first hit. One
 * round trip, atomic, and the same for every API replica because the counter lives in Redis.
 */
const INCREMENT = `
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return { hits, ttl }`;

/**
 * An express-rate-limit store on our own producer connection (fails fast while Redis is down).
 * Not `rate-limit-redis`: its `init()` loads its scripts once at start-up, and an API started
 * while Redis is down would keep that rejected load, and so fail every request, for good.
 * `EVAL` sends the script each time instead; it is a few hundred bytes.
 */
export function createRedisRateStore(
  redis: RedisConnection,
  prefix: string,
  deadline: <T>(work: Promise<T>) => Promise<T> = (work) => work,
): Store {
  let windowMs = 60_000;
  const key = layoutFor(prefix).rate;
  return {
    prefix,
    init(options) {
      windowMs = options.windowMs;
    },
    async increment(tenant): Promise<IncrementResponse> {
      const [hits, ttl] = (await deadline(redis.eval(INCREMENT, 1, key(tenant), String(windowMs)))) as [number, number];
      return { totalHits: hits, resetTime: new Date(Date.now() + ttl) };
    },
    async decrement(tenant) {
      await redis.decr(key(tenant));
    },
    async resetKey(tenant) {
      await redis.del(key(tenant));
    },
  };
}

/**
 * A per-tenant limit on job submissions, shared by every API replica (Redis-backed, fixed window).
 * Over the limit: `429 rate_limited` with `Retry-After` (seconds to the window's end) and the
 * `RateLimit-*` headers. When Redis cannot count (down, frozen), the request fails with the same
 * `503 redis_unavailable` it would get from the submission itself, never a 500, and never an
 * unlimited pass, which would also have to wait for Redis to fail a second time.
 * Mount it after authentication: the key is the tenant, not the client's address.
 */
export function tenantRateLimit({
  redis,
  prefix,
  limit,
  windowMs = 60_000,
  deadline,
}: TenantRateLimitOptions): RequestHandler {
  if (limit <= 0) return (_req, _res, next) => next();
  return rateLimit({
    windowMs,
    limit,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    // The key is the tenant: IP-based checks of the library do not apply.
    validate: false,
    passOnStoreError: false,
    store: createRedisRateStore(redis, prefix, deadline),
    keyGenerator: (req) => tenantOf(req),
    handler: (req, _res, next) => {
      // express-rate-limit puts its count on the request under `rateLimit`.
      const info = (req as { rateLimit?: RateLimitInfo }).rateLimit;
      const reset = info?.resetTime?.getTime() ?? Date.now() + windowMs;
      const retryAfter = Math.max(1, Math.ceil((reset - Date.now()) / 1000));
      next(
        new HttpError(
          429,
          'rate_limited',
          `this tenant may submit ${limit} jobs per ${Math.round(windowMs / 1000)} s; retry in ${retryAfter} s`,
          { limit, windowSeconds: Math.round(windowMs / 1000), retryAfterSeconds: retryAfter },
          { 'Retry-After': String(retryAfter) },
        ),
      );
    },
  });
}
