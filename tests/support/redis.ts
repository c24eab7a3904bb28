import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import type {} from './provided-context.ts';

/**
 * The Redis URL of this test run: `REDIS_URL` when the run was given one, otherwise the private
 * redis-server (or container) that the global setup started.
 */
export function redisUrl(): string {
  const url = inject('redisUrl') ?? process.env.REDIS_URL;
  if (!url) throw new Error('no Redis for tests: run through vitest.config.ts (its globalSetup provides one)');
  return url;
}

/**
 * A fresh `QUEUE_PREFIX` / key prefix, `{lh-test-<random>}`. The braces make it a Redis Cluster
 * hash tag, like the production default `{longhaul}`. One per test file, so files never see each
 * other's queues.
 */
export function uniquePrefix(): string {
  return `{lh-test-${randomBytes(6).toString('hex')}}`;
}

/** Escapes Redis glob metacharacters so `prefix` matches literally in `SCAN MATCH`. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * Deletes every key that starts with `prefix` (SCAN + UNLINK, never KEYS), for `afterAll`.
 * Returns how many keys were removed.
 */
export async function cleanupPrefix(url: string, prefix: string): Promise<number> {
  if (!prefix) throw new Error('cleanupPrefix needs a non-empty prefix');
  // A test cluster is destroyed whole; SCAN on one node would see only its own slots.
  if (url.includes('+cluster://')) return 0;
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectionName: 'lh-test-cleanup' });
  await redis.connect();
  let removed = 0;
  try {
    const stream = redis.scanStream({ match: `${escapeGlob(prefix)}*`, count: 1000 });
    for await (const keys of stream as AsyncIterable<string[]>) {
      if (keys.length > 0) removed += await redis.unlink(...keys);
    }
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
  return removed;
}
