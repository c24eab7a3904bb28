/**
 * longhaul on Railway, as infrastructure as code (`railway config plan`, then `railway config apply`;
 * Railway CLI 5.42.1 or newer). Three services on the project's private network:
 *
 * - `redis`: Redis 7 with a volume and AOF on, `maxmemory` (REDIS_MAXMEMORY, 1gb by default) with
 *   `maxmemory-policy noeviction` (a full Redis refuses writes with 503s instead of being killed), a password;
 * - `api`: the HTTP API, two replicas, health checked on `/readyz`;
 * - `worker`: two replicas, with a draining time above the worker's shutdown grace so a deploy
 *   never SIGKILLs a job mid-run (Railway's default draining time is 0 s: SIGKILL right after SIGTERM).
 *
 * Both apps build from the repository's Dockerfile (its last stage, picked by the `APP` build argument).
 * Secrets are never written here: `preserve()` keeps the value set once in the dashboard or with
 * `railway variables --set` (API_KEYS, ADMIN_USER, ADMIN_PASSWORD, METRICS_TOKEN, REDIS_PASSWORD).
 * This file is evaluated by Railway's CLI with Node's type stripping: erasable TypeScript only, and
 * no imports but `railway/iac`. See docs/deploy.md.
 */
import { defineRailway, image, preserve, project, service, volume } from 'railway/iac';

/** The worker's `SHUTDOWN_GRACE_MS`: how long active jobs may run on after SIGTERM. */
export const SHUTDOWN_GRACE_MS = 30_000;
/** After the grace, the worker hands unfinished jobs back to the queue within 10 s; 5 s of margin. */
export const WORKER_DRAINING_SECONDS = Math.ceil(SHUTDOWN_GRACE_MS / 1000) + 10 + 5;
/** The API closes its server and connections within 10 s of SIGTERM. */
export const API_DRAINING_SECONDS = 15;
export const WORKER_REPLICAS = 2;
export const API_REPLICAS = 2;

// Railway's private network is IPv6: the apps' Redis client resolves with `family: 0`
// (packages/shared/src/redis.ts), and Redis listens on IPv6 as well as IPv4.
// biome-ignore lint/suspicious/noTemplateCurlyInString: Railway's own ${{service.VAR}} reference syntax
const REDIS_URL = 'redis://default:${{redis.REDIS_PASSWORD}}@${{redis.RAILWAY_PRIVATE_DOMAIN}}:6379';

export default defineRailway(() => {
  const redisData = volume('redis-data');
  const redis = service('redis', {
    source: image('redis:7.4-alpine'),
    start:
      '/bin/sh -c "exec redis-server --dir /data --appendonly yes --appendfsync everysec ' +
      '--maxmemory ${REDIS_MAXMEMORY:-1gb} --maxmemory-policy noeviction --bind \'* -::*\' --requirepass \\"$REDIS_PASSWORD\\""',
    volumeMounts: { '/data': redisData },
    deploy: { restartPolicyType: 'ALWAYS' },
    env: { REDIS_PASSWORD: preserve() },
  });

  const common = {
    NODE_ENV: 'production',
    REDIS_URL,
    METRICS_TOKEN: preserve(),
    STRICT_REDIS_POLICY: 'true',
    LOG_LEVEL: 'info',
  };

  /** An app service: built from the Dockerfile (APP picks the stage), health checked on /readyz. */
  const app = (name: 'api' | 'worker', replicas: number, drainingSeconds: number, env: Record<string, unknown>) =>
    service(name, {
      build: { builder: 'DOCKERFILE', dockerfilePath: 'Dockerfile' },
      start: 'node dist/main.js',
      healthcheck: '/readyz',
      healthcheckTimeout: 60,
      replicas,
      deploy: { drainingSeconds, restartPolicyType: 'ON_FAILURE', restartPolicyMaxRetries: 10 },
      env: { ...common, APP: name, ...env },
    });

  const api = app('api', API_REPLICAS, API_DRAINING_SECONDS, {
    API_KEYS: preserve(),
    ADMIN_USER: preserve(),
    ADMIN_PASSWORD: preserve(),
  });

  // Railway checks health on PORT: the worker serves /healthz, /readyz and /metrics there.
  const worker = app('worker', WORKER_REPLICAS, WORKER_DRAINING_SECONDS, {
    PORT: '3001',
    WORKER_PORT: '3001',
    SHUTDOWN_GRACE_MS: String(SHUTDOWN_GRACE_MS),
    WORKER_CONCURRENCY: '4',
  });

  return project('longhaul', { resources: [redisData, redis, api, worker] });
});
