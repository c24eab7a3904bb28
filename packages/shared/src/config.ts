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

/**
 * `"tenant:value,tenant2:value2"` → [{ tenant, value }], each value at least `minLength` long.
 * Problems name the tenant, never the value (these are secrets).
 */
function tenantPairs(what: string, minLength: number) {
  return z.string().transform((raw, ctx) => {
    const entries: { tenant: string; value: string }[] = [];
    for (const part of raw
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const sep = part.indexOf(':');
      const tenant = part.slice(0, sep);
      const value = part.slice(sep + 1);
      if (sep < 1 || !TENANT.test(tenant)) {
        ctx.addIssue({ code: 'custom', message: `each entry must be "tenant:${what}", tenant of [A-Za-z0-9_-]` });
        continue;
      }
      if (value.length < minLength) {
        ctx.addIssue({
          code: 'custom',
          message: `the ${what} of tenant "${tenant}" is shorter than ${minLength} characters`,
        });
        continue;
      }
      entries.push({ tenant, value });
    }
    return entries;
  });
}

/** `TENANT_MAX_ACTIVE_OVERRIDES="tenant:n,..."` → tenant → active-job cap (0: no cap for that tenant). */
const activeOverrides = tenantPairs('jobs', 1).transform((entries, ctx) => {
  const out = new Map<string, number>();
  for (const { tenant, value } of entries) {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n > 1_000_000) {
      ctx.addIssue({
        code: 'custom',
        message: `the cap of tenant "${tenant}" must be a whole number from 0 to 1000000`,
      });
      continue;
    }
    out.set(tenant, n);
  }
  return out;
});

/** `API_KEYS="tenant:key,tenant2:key2"` → [{ tenant, key }]. */
const apiKeys = tenantPairs('key', 12).transform((entries, ctx) => {
  if (entries.length === 0) ctx.addIssue({ code: 'custom', message: 'no keys given' });
  if (new Set(entries.map((e) => e.value)).size !== entries.length) {
    ctx.addIssue({ code: 'custom', message: 'the same key is given twice' });
  }
  return entries.map(({ tenant, value }) => ({ tenant, key: value }));
});

/** `WEBHOOK_SECRETS="tenant:secret,..."` → tenant → signing secret (16+ characters). */
const webhookSecrets = tenantPairs('secret', 16).transform(
  (entries) => new Map(entries.map(({ tenant, value }) => [tenant, value])),
);

/** `TENANT_STORAGE_OVERRIDES="tenant:bytes,..."` → tenant → budget in bytes (0: no budget). */
const storageOverrides = tenantPairs('bytes', 1).transform((entries, ctx) => {
  const out = new Map<string, number>();
  for (const { tenant, value } of entries) {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
      ctx.addIssue({ code: 'custom', message: `the budget of tenant "${tenant}" must be a whole number of bytes` });
      continue;
    }
    out.set(tenant, n);
  }
  return out;
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
  EVENTS_MAX_LEN: int(100, 10_000_000).default(10_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_PRETTY: bool.optional(),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_:{}-]{1,64}$/, 'letters, digits and _ : { } - only')
    .default('{longhaul}'),
  BODY_LIMIT_BYTES: int(1024, 512 * 1024 * 1024).default(1024 * 1024),
  RATE_LIMIT_PER_MINUTE: int(0, 1_000_000).default(600),
  TENANT_BACKLOG_QUOTA: int(0, 100_000_000).default(100_000),
  TENANT_STORAGE_BYTES: int(0, Number.MAX_SAFE_INTEGER).default(256 * 1024 * 1024),
  TENANT_STORAGE_OVERRIDES: storageOverrides.optional(),
  TENANT_MAX_ACTIVE: int(0, 1_000_000).default(0),
  TENANT_MAX_ACTIVE_OVERRIDES: activeOverrides.optional(),
  CHECKPOINT_MAX_BYTES: int(1024, 512 * 1024 * 1024).default(16 * 1024 * 1024),
  SCHEDULES_PER_TENANT: int(0, 100_000).default(100),
  SCHEDULE_MIN_INTERVAL_MS: int(1000, 86_400_000).default(10_000),
  RESULT_MAX_BYTES: int(1024, 512 * 1024 * 1024).default(16 * 1024 * 1024),
  RESULT_COMPRESS_BYTES: int(0, 512 * 1024 * 1024).default(64 * 1024),
  STEP_RESULT_MAX_BYTES: int(2, 64 * 1024 * 1024).default(1024 * 1024),
  MAX_CHILDREN_PER_JOB: int(0, 100_000).default(1_000),
  RESULT_READ_CONCURRENCY: int(1, 1000).default(4),
  RESULT_READ_QUEUE: int(0, 100_000).default(256),
  REDIS_COMMAND_TIMEOUT_MS: int(50, 60_000).default(500),
  WEBHOOK_SECRETS: webhookSecrets.optional(),
  WEBHOOK_ALLOW_PRIVATE: bool.default(false),
  WEBHOOK_BACKOFF_MS: int(10, 3_600_000).default(10_000),
  WEBHOOK_TIMEOUT_MS: int(100, 120_000).default(10_000),
  SSE_HEARTBEAT_MS: int(100, 300_000).default(15_000),
  EVENTS_MAX_STREAMS: int(1, 1_000_000).default(2_000),
  EVENTS_MAX_STREAMS_PER_TENANT: int(1, 1_000_000).default(50),
  EVENTS_REPLAY_MAX: int(1, 100_000).default(1_000),
  EVENTS_BUFFER_BYTES: int(1024, 64 * 1024 * 1024).default(256 * 1024),
  COMPLETED_RETENTION_SECONDS: int(60, 365 * 86400).default(86_400),
  COMPLETED_RETENTION_COUNT: int(1, 10_000_000).default(50_000),
  FAILED_RETENTION_SECONDS: int(60, 365 * 86400).default(7 * 86_400),
  FAILED_RETENTION_COUNT: int(1, 10_000_000).default(50_000),
  TOMBSTONE_TTL_SECONDS: int(60, 365 * 86400).default(30 * 86_400),
  SIMULATE_EXECUTION_LOG: z.string().min(1).optional(),
  SIMULATE_ALLOW_CRASH: bool.default(false),
  DATASET_MAX_BYTES: int(1, Number.MAX_SAFE_INTEGER).default(20 * 1024 ** 3),
  DATASET_FETCH_TIMEOUT_MS: int(100, 3_600_000).default(30_000),
  DATASET_FETCH_TOTAL_MS: int(100, 86_400_000).default(3_600_000),
  DATASET_MAX_REDIRECTS: int(0, 20).default(5),
  DATASET_ALLOW_PRIVATE: bool.default(false),
  DATASET_CHECKPOINT_MS: int(100, 3_600_000).default(10_000),
  CORS_ORIGINS: z
    .string()
    .transform((raw) =>
      raw
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .refine((list) => list.every((o) => URL.canParse(o) && new URL(o).origin === o), {
      message: 'each entry must be an exact origin like https://app.example.com (scheme, host, port; no path)',
    })
    .default([]),
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
  webhooks: {
    /** `WEBHOOK_SECRETS`: each tenant's signing secret. A tenant without one cannot ask for webhooks. */
    secrets: Map<string, string>;
    /** `WEBHOOK_ALLOW_PRIVATE`: allow loopback, private and link-local targets. Default `false`. */
    allowPrivate: boolean;
    /** `WEBHOOK_BACKOFF_MS`: first retry delay; each next one doubles, for up to 24 h. Default 10 s. */
    backoffMs: number;
    /** `WEBHOOK_TIMEOUT_MS`: one delivery attempt's limit (connect to last byte). Default 10 s. */
    timeoutMs: number;
  };
  /** `SSE_HEARTBEAT_MS`: a comment line on idle event streams, so proxies keep them. Default 15 s. */
  sseHeartbeatMs: number;
  /** Bounds of the API's event streams (`GET /v1/jobs/:id/events`), per API process. */
  events: {
    /** `EVENTS_MAX_STREAMS`: open streams per process; past it, 429. Default 2000. */
    maxStreams: number;
    /** `EVENTS_MAX_STREAMS_PER_TENANT`: open streams of one tenant per process; past it, 429. Default 50. */
    maxStreamsPerTenant: number;
    /** `EVENTS_REPLAY_MAX`: events-stream entries read to replay after Last-Event-ID; past it, a `reset` event. Default 1000. */
    replayMax: number;
    /** `EVENTS_BUFFER_BYTES`: bytes a slow client may leave unread before it is dropped. Default 256 KiB. */
    bufferBytes: number;
  };
  worker: {
    concurrency: number;
    shutdownGraceMs: number;
    lockDurationMs: number;
    stalledIntervalMs: number;
    maxStalledCount: number;
  };
  /** Approximate cap of the queue's event stream (what SSE resumes and QueueEvents read from). */
  eventsMaxLen: number;
  log: { level: Env['LOG_LEVEL']; pretty: boolean };
  queuePrefix: string;
  limits: {
    bodyBytes: number;
    ratePerMinute: number;
    tenantBacklog: number;
    /**
     * `TENANT_STORAGE_BYTES`: bytes of inline inputs and stored results one tenant may keep in
     * Redis, each one's first `STORAGE_FREE_BYTES` not counted (job-store.ts); past it, submit
     * answers 429 `storage_quota_exceeded`. 0 turns it off. Default 256 MiB.
     * `TENANT_STORAGE_OVERRIDES` (`tenant:bytes,...`) sets it per tenant.
     */
    tenantStorage: { bytes: number; overrides: Map<string, number> };
    /**
     * `TENANT_MAX_ACTIVE`: jobs one tenant may have running (or handed to a worker) at once,
     * across every worker; the rest wait their turn without holding a worker. 0: no cap (the
     * default; free capacity still goes to tenants in turn). `TENANT_MAX_ACTIVE_OVERRIDES`
     * (`tenant:n,...`) sets it per tenant.
     */
    tenantMaxActive: { jobs: number; overrides: Map<string, number> };
    /** `CHECKPOINT_MAX_BYTES`: largest checkpoint (JSON) a job may save; past it, the job fails for good. Default 16 MiB. */
    checkpointMaxBytes: number;
    /** `SCHEDULES_PER_TENANT`: schedules a tenant may have at once (0: no limit). Default 100. */
    schedulesPerTenant: number;
    /** `SCHEDULE_MIN_INTERVAL_MS`: the shortest time between two runs of a schedule. Default 10000. */
    scheduleMinIntervalMs: number;
    resultMaxBytes: number;
    resultCompressBytes: number;
    /** `STEP_RESULT_MAX_BYTES`: largest JSON result a durable step may store; above it the job fails. Default 1 MiB. */
    stepResultMaxBytes: number;
    /**
     * `MAX_CHILDREN_PER_JOB`: child jobs one job may start with `ctx.spawn`, all its spawns
     * together; past it, the job fails for good (`too_many_children`). 0 turns fan-out off. Default 1000.
     */
    maxChildrenPerJob: number;
    /** `RESULT_READ_CONCURRENCY`: result responses decompressed and sent at once, per process. Default 4. */
    resultReadConcurrency: number;
    /** `RESULT_READ_QUEUE`: result reads waiting for a place; past it, 503 + Retry-After. Default 256. */
    resultReadQueue: number;
    redisCommandTimeoutMs: number;
  };
  retention: {
    completedSeconds: number;
    completedCount: number;
    failedSeconds: number;
    failedCount: number;
    tombstoneSeconds: number;
  };
  /**
   * Test hooks of the `simulate` analysis, off by default. The fault suite (tests/chaos) turns them
   * on to count executions outside Redis and to crash a worker on purpose.
   */
  simulate: {
    /** `SIMULATE_EXECUTION_LOG`: append one JSON line per execution start and finish to this file. */
    executionLog: string | undefined;
    /** `SIMULATE_ALLOW_CRASH`: honour `crash: true` (the worker process kills itself mid-job). Default `false`. */
    allowCrash: boolean;
  };
  /** Limits of the `dataset-profile` analysis (docs/dataset-profile.md). */
  dataset: {
    /** `DATASET_MAX_BYTES`: largest dataset read, inline or by URL. Default 20 GiB. */
    maxBytes: number;
    /** `DATASET_FETCH_TIMEOUT_MS`: a URL must answer, and keep sending, within this. Default 30 s. */
    fetchTimeoutMs: number;
    /** `DATASET_FETCH_TOTAL_MS`: a whole fetch, first request to last byte, within this (retried). Default 1 h. */
    fetchTotalMs: number;
    /** `DATASET_MAX_REDIRECTS`: redirects followed for a dataset URL. Default 5. */
    maxRedirects: number;
    /** `DATASET_ALLOW_PRIVATE`: allow URLs on loopback and private addresses. Default `false`. */
    allowPrivate: boolean;
    /** `DATASET_CHECKPOINT_MS`: how often a running profile checkpoints its state. Default 10 s. */
    checkpointMs: number;
  };
  /** `CORS_ORIGINS`: browser origins allowed to call the API (exact match). Empty (default): no CORS. */
  corsOrigins: string[];
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
    // The tombstone (410) must outlive the retention of the finished jobs it stands for.
    const longest = Math.max(e.COMPLETED_RETENTION_SECONDS, e.FAILED_RETENTION_SECONDS);
    if (e.TOMBSTONE_TTL_SECONDS < longest) {
      problems.push(
        `TOMBSTONE_TTL_SECONDS: must be at least the longest retention of finished jobs (${longest} s), or a removed job would answer 404 instead of 410`,
      );
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
    webhooks: {
      secrets: e.WEBHOOK_SECRETS ?? new Map(),
      allowPrivate: e.WEBHOOK_ALLOW_PRIVATE,
      backoffMs: e.WEBHOOK_BACKOFF_MS,
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
    },
    sseHeartbeatMs: e.SSE_HEARTBEAT_MS,
    events: {
      maxStreams: e.EVENTS_MAX_STREAMS,
      maxStreamsPerTenant: e.EVENTS_MAX_STREAMS_PER_TENANT,
      replayMax: e.EVENTS_REPLAY_MAX,
      bufferBytes: e.EVENTS_BUFFER_BYTES,
    },
    worker: {
      concurrency: e.WORKER_CONCURRENCY,
      shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
      lockDurationMs: e.LOCK_DURATION_MS,
      stalledIntervalMs: e.STALLED_INTERVAL_MS,
      maxStalledCount: e.MAX_STALLED_COUNT,
    },
    eventsMaxLen: e.EVENTS_MAX_LEN,
    log: { level: e.LOG_LEVEL, pretty: e.LOG_PRETTY ?? e.NODE_ENV === 'development' },
    queuePrefix: e.QUEUE_PREFIX,
    limits: {
      bodyBytes: e.BODY_LIMIT_BYTES,
      ratePerMinute: e.RATE_LIMIT_PER_MINUTE,
      tenantBacklog: e.TENANT_BACKLOG_QUOTA,
      tenantStorage: { bytes: e.TENANT_STORAGE_BYTES, overrides: e.TENANT_STORAGE_OVERRIDES ?? new Map() },
      tenantMaxActive: { jobs: e.TENANT_MAX_ACTIVE, overrides: e.TENANT_MAX_ACTIVE_OVERRIDES ?? new Map() },
      checkpointMaxBytes: e.CHECKPOINT_MAX_BYTES,
      schedulesPerTenant: e.SCHEDULES_PER_TENANT,
      scheduleMinIntervalMs: e.SCHEDULE_MIN_INTERVAL_MS,
      resultMaxBytes: e.RESULT_MAX_BYTES,
      resultCompressBytes: e.RESULT_COMPRESS_BYTES,
      stepResultMaxBytes: e.STEP_RESULT_MAX_BYTES,
      maxChildrenPerJob: e.MAX_CHILDREN_PER_JOB,
      resultReadConcurrency: e.RESULT_READ_CONCURRENCY,
      resultReadQueue: e.RESULT_READ_QUEUE,
      redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    },
    retention: {
      completedSeconds: e.COMPLETED_RETENTION_SECONDS,
      completedCount: e.COMPLETED_RETENTION_COUNT,
      failedSeconds: e.FAILED_RETENTION_SECONDS,
      failedCount: e.FAILED_RETENTION_COUNT,
      tombstoneSeconds: e.TOMBSTONE_TTL_SECONDS,
    },
    simulate: { executionLog: e.SIMULATE_EXECUTION_LOG, allowCrash: e.SIMULATE_ALLOW_CRASH },
    dataset: {
      maxBytes: e.DATASET_MAX_BYTES,
      fetchTimeoutMs: e.DATASET_FETCH_TIMEOUT_MS,
      fetchTotalMs: e.DATASET_FETCH_TOTAL_MS,
      maxRedirects: e.DATASET_MAX_REDIRECTS,
      allowPrivate: e.DATASET_ALLOW_PRIVATE,
      checkpointMs: e.DATASET_CHECKPOINT_MS,
    },
    corsOrigins: e.CORS_ORIGINS,
  };
}

/** The storage budget of one tenant, in bytes (0: none). */
export function tenantStorageBudget(limits: Pick<Config['limits'], 'tenantStorage'>, tenant: string): number {
  return limits.tenantStorage.overrides.get(tenant) ?? limits.tenantStorage.bytes;
}

/**
 * For a `main.ts`: {@link loadConfig}, or print every problem and exit 1 (a bad deployment stops at
 * once, saying all that is wrong, instead of failing later on the first bad value it meets).
 */
export function loadConfigOrExit(env: Record<string, string | undefined>, role: Role): Config {
  try {
    return loadConfig(env, role);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`longhaul ${role}: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

/** A tenant's cap on active jobs (`TENANT_MAX_ACTIVE`, or its override); 0: no cap. */
export function tenantMaxActive(limits: Pick<Config['limits'], 'tenantMaxActive'>, tenant: string): number {
  return limits.tenantMaxActive.overrides.get(tenant) ?? limits.tenantMaxActive.jobs;
}
