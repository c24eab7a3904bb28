import { createHash, timingSafeEqual } from 'node:crypto';
import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * A Prometheus registry of its own (never prom-client's global one, so two apps in one test
 * process do not collide), labelled with the service, with Node's default process metrics.
 */
export function createMetricsRegistry(service: 'api' | 'worker'): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * `true` when no token is configured, or when `authorization` is `Bearer <token>`. Compared as
 * SHA-256 digests in constant time.
 */
export function metricsAuthorized(authorization: string | undefined, token: string | undefined): boolean {
  if (!token) return true;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  return timingSafeEqual(digest(match?.[1] ?? ''), digest(token)) && Boolean(match);
}

/** Buckets of a job's run time, in seconds: jobs run from milliseconds to hours. */
export const JOB_RUN_SECONDS_BUCKETS = [0.05, 0.25, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14_400];
