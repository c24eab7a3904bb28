import { z } from 'zod';

/** Thrown by {@link loadConfig} with every problem found, one per line. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const TENANT = /^[A-Za-z0-9_-]{1,64}$/;

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** `API_KEYS="tenant:key,tenant2:key2"` → [{ tenant, key }]. */
const apiKeys = z.string().transform((raw, ctx) => {
  const entries: { tenant: string; key: string }[] = [];
  for (const part of raw
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const sep = part.indexOf(':');
    const tenant = part.slice(0, sep);
    const key = part.slice(sep + 1);
    if (sep < 1 || !TENANT.test(tenant)) {
      ctx.addIssue({ code: 'custom', message: 'each entry must be "tenant:key", tenant of [A-Za-z0-9_-]' });
      continue;
    }
    if (key.length < 12) {
      ctx.addIssue({ code: 'custom', message: `the key of tenant "${tenant}" is shorter than 12 characters` });
      continue;
    }
    entries.push({ tenant, key });
  }
  if (entries.length === 0 && !ctx.issues?.length) ctx.addIssue({ code: 'custom', message: 'no keys given' });
  if (new Set(entries.map((e) => e.key)).size !== entries.length) {
    ctx.addIssue({ code: 'custom', message: 'the same key is given twice' });
  }
  return entries;
});

/** `WEBHOOK_SECRETS="tenant:secret,..."` → tenant → signing secret (16+ characters). */
const webhookSecrets = z.string().transform((raw, ctx) => {
  const secrets = new Map<string, string>();
  for (const part of raw
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const sep = part.indexOf(':');
    const tenant = part.slice(0, sep);
    if (sep < 1 || !TENANT.test(tenant)) {
      ctx.addIssue({ code: 'custom', message: 'each entry must be "tenant:secret", tenant of [A-Za-z0-9_-]' });
      continue;
    }
    if (part.length - sep - 1 < 16) {
      ctx.addIssue({ code: 'custom', message: `the secret of tenant "${tenant}" is shorter than 16 characters` });
      continue;
    }
    secrets.set(tenant, part.slice(sep + 1));
  }
  return secrets;
});

const redisUrl = z.string().refine((u) => /^rediss?(\+cluster|\+sentinel)?:\/\/.+/.test(u), {
  message: 'must be a redis://, rediss://, redis+cluster:// or redis+sentinel:// URL (rediss+… for TLS)',
});

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  REDIS_URL: redisUrl,
  PORT: int(0, 65535).default(3000),
  WORKER_PORT: int(0, 65535).default(3001),
  API_KEYS: apiKeys.optional(),
  ADMIN_USER: z.string().min(1).optional(),
  ADMIN_PASSWORD: z.string().min(8).optional(),
  ADMIN_READONLY: bool.default(true),
  METRICS_TOKEN: z.string().min(8).optional(),
  STRICT_REDIS_POLICY: bool.default(false),
  WORKER_CONCURRENCY: int(1, 1000).default(4),
  SHUTDOWN_GRACE_MS: int(0, 3_600_000).default(30_000),
  LOCK_DURATION_MS: int(1000, 3_600_000).default(30_000),
  STALLED_INTERVAL_MS: int(1000, 3_600_000).default(30_000),
  MAX_STALLED_COUNT: int(0, 100).default(2),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_PRETTY: bool.optional(),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_:{}-]{1,64}$/, 'letters, digits and _ : { } - only')
    .default('{longhaul}'),
  BODY_LIMIT_BYTES: int(1024, 512 * 1024 * 1024).default(1024 * 1024),
  RATE_LIMIT_PER_MINUTE: int(0, 1_000_000).default(600),
  TENANT_BACKLOG_QUOTA: int(0, 100_000_000).default(100_000),
  RESULT_MAX_BYTES: int(1024, 512 * 1024 * 1024).default(16 * 1024 * 1024),
  RESULT_COMPRESS_BYTES: int(0, 512 * 1024 * 1024).default(64 * 1024),
  REDIS_COMMAND_TIMEOUT_MS: int(50, 60_000).default(500),
  COMPLETED_RETENTION_SECONDS: int(60, 365 * 86400).default(86_400),
  COMPLETED_RETENTION_COUNT: int(1, 10_000_000).default(50_000),
  FAILED_RETENTION_SECONDS: int(60, 365 * 86400).default(7 * 86_400),
  FAILED_RETENTION_COUNT: int(1, 10_000_000).default(50_000),
  TOMBSTONE_TTL_SECONDS: int(60, 365 * 86400).default(30 * 86_400),
});

type Env = z.infer<typeof schema>;

export type Role = 'api' | 'worker';

export interface Config {
  env: Env['NODE_ENV'];
  redisUrl: string;
  port: number;
  workerPort: number;
  apiKeys: { tenant: string; key: string }[];
  admin: { user: string; password: string; readOnly: boolean } | null;
  metricsToken: string | undefined;
  /** Fail readiness (not only warn) when Redis' maxmemory-policy is not noeviction. */
  strictRedisPolicy: boolean;
  worker: {
    concurrency: number;
    shutdownGraceMs: number;
    lockDurationMs: number;
    stalledIntervalMs: number;
    maxStalledCount: number;
  };
  log: { level: Env['LOG_LEVEL']; pretty: boolean };
  queuePrefix: string;
  limits: {
    bodyBytes: number;
    ratePerMinute: number;
    tenantBacklog: number;
    resultMaxBytes: number;
    resultCompressBytes: number;
    redisCommandTimeoutMs: number;
  };
  retention: {
    completedSeconds: number;
    completedCount: number;
    failedSeconds: number;
    failedCount: number;
    tombstoneSeconds: number;
  };
}

/**
 * Parses the environment once, at a composition root. Pure: reads nothing but `env`.
 * Throws {@link ConfigError} listing every problem, so one restart fixes them all.
 */
export function loadConfig(env: Record<string, string | undefined>, role: Role): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(present);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
  if (parsed.success) {
    const e = parsed.data;
    if (role === 'api' && !e.API_KEYS) problems.push('API_KEYS: required by the API ("tenant:key,...")');
    if (Boolean(e.ADMIN_USER) !== Boolean(e.ADMIN_PASSWORD)) {
      problems.push('ADMIN_USER / ADMIN_PASSWORD: give both or neither');
    }
    if (e.NODE_ENV === 'production' && role === 'api' && !e.ADMIN_USER) {
      problems.push('ADMIN_USER / ADMIN_PASSWORD: required in production (Bull Board is never open)');
    }
    if (e.RESULT_COMPRESS_BYTES > e.RESULT_MAX_BYTES) {
      problems.push('RESULT_COMPRESS_BYTES: must not exceed RESULT_MAX_BYTES');
    }
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const e = parsed.data;
  return {
    env: e.NODE_ENV,
    redisUrl: e.REDIS_URL,
    port: e.PORT,
    workerPort: e.WORKER_PORT,
    apiKeys: e.API_KEYS ?? [],
    admin:
      e.ADMIN_USER && e.ADMIN_PASSWORD
        ? { user: e.ADMIN_USER, password: e.ADMIN_PASSWORD, readOnly: e.ADMIN_READONLY }
        : null,
    metricsToken: e.METRICS_TOKEN,
    strictRedisPolicy: e.STRICT_REDIS_POLICY,
    worker: {
      concurrency: e.WORKER_CONCURRENCY,
      shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
      lockDurationMs: e.LOCK_DURATION_MS,
      stalledIntervalMs: e.STALLED_INTERVAL_MS,
      maxStalledCount: e.MAX_STALLED_COUNT,
    },
    log: { level: e.LOG_LEVEL, pretty: e.LOG_PRETTY ?? e.NODE_ENV === 'development' },
    queuePrefix: e.QUEUE_PREFIX,
    limits: {
      bodyBytes: e.BODY_LIMIT_BYTES,
      ratePerMinute: e.RATE_LIMIT_PER_MINUTE,
      tenantBacklog: e.TENANT_BACKLOG_QUOTA,
      resultMaxBytes: e.RESULT_MAX_BYTES,
      resultCompressBytes: e.RESULT_COMPRESS_BYTES,
      redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    },
    retention: {
      completedSeconds: e.COMPLETED_RETENTION_SECONDS,
      completedCount: e.COMPLETED_RETENTION_COUNT,
      failedSeconds: e.FAILED_RETENTION_SECONDS,
      failedCount: e.FAILED_RETENTION_COUNT,
      tombstoneSeconds: e.TOMBSTONE_TTL_SECONDS,
    },
  };
}
