import {
  type Config,
  createJobStore,
  createScheduleStore,
  type JobData,
  type Logger,
  QUEUES,
  type RedisConnection,
  tenantStorageBudget,
  type WebhookDeliveryData,
} from '@longhaul/shared';
import { Queue } from 'bullmq';
import { createJobService, RATE_WINDOW_MS } from './jobs/job-service.ts';
import { createApiMetrics } from './metrics.ts';
import { createScheduleService } from './schedules/schedule-service.ts';

export interface ApiServicesDeps {
  config: Config;
  log: Logger;
  /** The producer-role connection for reads and our scripts. */
  redis: RedisConnection;
  /**
   * The connection of the API's BullMQ queues. BullMQ defines its Lua scripts on the connection it
   * gets, and ioredis copies them all into every pipeline built on it, so keep it apart from
   * `redis`, whose pipelines serve every status read. @defaultValue `redis`
   */
  queueConnection?: RedisConnection;
}

/**
 * The API's services over one Redis: the queues (a submission's job and its webhook delivery are
 * added in one MULTI, so both live on `queueConnection`), the job store, the job use-cases and
 * the metrics. `main.ts` builds them once; tests build them against their own Redis.
 */
export function createApiServices({ config, log, redis, queueConnection = redis }: ApiServicesDeps) {
  // skipVersionCheck + skipWaitingForReady: the queues send nothing until asked, so an API started
  // while Redis is down stays usable once Redis returns.
  const queueOptions = {
    connection: queueConnection,
    prefix: config.queuePrefix,
    streams: { events: { maxLen: config.eventsMaxLen } },
    skipVersionCheck: true,
    skipWaitingForReady: true,
  };
  const queue = new Queue<JobData>(QUEUES.analyses, queueOptions);
  const webhooks = new Queue<WebhookDeliveryData>(QUEUES.webhooks, queueOptions);
  for (const q of [queue, webhooks]) q.on('error', (err) => log.debug({ err: err.message }, 'queue error'));
  const store = createJobStore({
    redis,
    queue,
    webhooks,
    config,
    backlogQuota: config.limits.tenantBacklog,
    storageBudget: (tenant) => tenantStorageBudget(config.limits, tenant),
    // Counted in the admission script: a submission stays two round trips with the limit on.
    ratePerWindow: config.limits.ratePerMinute,
    rateWindowMs: RATE_WINDOW_MS,
    fairLimits: config.limits,
  });
  const scheduleStore = createScheduleStore({
    redis,
    queue,
    prefix: config.queuePrefix,
    quota: config.limits.schedulesPerTenant,
    runsTtlSeconds: config.retention.tombstoneSeconds,
  });
  return {
    queue,
    webhooks,
    store,
    jobs: createJobService({ config, store, schedules: scheduleStore }),
    schedules: createScheduleService({ config, store: scheduleStore }),
    metrics: createApiMetrics({ queue, redis, queuePrefix: config.queuePrefix, shares: () => store.fair.shares() }),
    queues: [queue, webhooks] as Queue[],
    async close(): Promise<void> {
      await Promise.all([queue.close(), webhooks.close()]);
    },
  };
}

export type ApiServices = ReturnType<typeof createApiServices>;
