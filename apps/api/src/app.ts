import { type Config, type Logger, layoutFor, type RedisConnection } from '@longhaul/shared';
import type { Queue } from 'bullmq';
import express, { type Express, type RequestHandler, type Router } from 'express';
import { adminBoard, BOARD_PATH } from './admin/board.ts';
import { analysesRoutes } from './analyses-route.ts';
import { buildOpenApiDocument, documentedPaths } from './docs/openapi.ts';
import { docsRoutes } from './docs/routes.ts';
import type { JobEventHub } from './events/job-event-hub.ts';
import { jobEventsRoute } from './events/job-events-route.ts';
import { healthRoutes } from './health.ts';
import { bearerAuth } from './http/auth.ts';
import { cors } from './http/cors.ts';
import { errorHandler, notFoundHandler } from './http/error-handler.ts';
import { methodNotAllowed } from './http/method-not-allowed.ts';
import { redisUnavailable } from './http/redis-errors.ts';
import { createRedisLiveness } from './http/redis-liveness.ts';
import { requestLog } from './http/request-log.ts';
import type { JobService } from './jobs/job-service.ts';
import { createResultStream } from './jobs/result-stream.ts';
import { jobRoutes } from './jobs/routes.ts';
import type { ApiMetrics } from './metrics.ts';
import { scheduleRoutes } from './schedules/routes.ts';
import type { ScheduleService } from './schedules/schedule-service.ts';

export interface AppDeps {
  config: Config;
  log: Logger;
  /** The producer-role connection (fails fast while Redis is down): health, rate limit, replays. */
  redis: RedisConnection;
  /** The job use-cases (`createJobService` over the job store). */
  jobs: JobService;
  /** The schedule use-cases. Without them, `/v1/schedules` is not served. */
  schedules?: ScheduleService;
  /** Queues shown in Bull Board. */
  queues: Queue[];
  /** Prometheus metrics. */
  metrics: ApiMetrics;
  /** Live job events (one QueueEvents per process). Without it, `GET /v1/jobs/:id/events` is not served. */
  events?: JobEventHub;
}

/** Served above but not described by the OpenAPI document (it is one of them): 405 for other methods too. */
const OPERATOR_PATHS = [
  { path: '/metrics', methods: ['get'] },
  { path: '/openapi.json', methods: ['get'] },
  { path: '/docs', methods: ['get'] },
  { path: '/docs/init.js', methods: ['get'] },
] as const;

/**
 * Builds the HTTP app from its services. Never listens, never reads the environment and never
 * opens a connection: `main.ts` does, and tests call this with their own services.
 */
export function createApp({ config, log, redis, jobs, schedules, queues, events, metrics }: AppDeps): Express {
  // Requests wait for a busy Redis (up to 5 s) but answer 503 at once when it is down or silent
  // for REDIS_COMMAND_TIMEOUT_MS: see redis-liveness.ts for why one timeout cannot do both.
  const liveness = createRedisLiveness(redis, { silentMs: config.limits.redisCommandTimeoutMs });
  const deadline = <T>(work: Promise<T>) => liveness.deadline(work);
  // /readyz's own PING: a probe, so a short bound.
  const readyTimeoutMs = Math.min(900, config.limits.redisCommandTimeoutMs * 2);
  const results = createResultStream({
    readStored: jobs.storedResult,
    deadline,
    concurrency: config.limits.resultReadConcurrency,
    maxWaiting: config.limits.resultReadQueue,
  });

  /** Answers 503 at once while the connection is known to be down, instead of queuing work. */
  const requireRedis: RequestHandler = (_req, _res, next) => {
    if (!liveness.alive()) throw redisUnavailable();
    next();
  };

  /** A router mounted below the app, whose failed routes keep their template in the metrics. */
  const withRouteOnError = (router: Router): Router => router.use(metrics.routeOnError);

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', true);
  app.set('query parser', 'simple');
  app.use(metrics.middleware);
  app.use(requestLog(log));
  app.use(cors(config.corsOrigins));

  const v1 = express.Router();
  v1.use(bearerAuth(config.apiKeys));
  v1.use('/analyses', withRouteOnError(analysesRoutes()));
  // The per-tenant submission rate limit (RATE_LIMIT_PER_MINUTE) is counted by the job store's
  // admission script, in the submission's first round trip (jobs/job-service.ts).
  if (events) {
    const heartbeatMs = config.sseHeartbeatMs;
    const route = jobEventsRoute({
      hub: events,
      jobs,
      redis,
      layout: layoutFor(config.queuePrefix),
      deadline,
      log,
      heartbeatMs,
      limits: config.events,
    });
    v1.get('/jobs/:id/events', requireRedis, route);
  }
  v1.use(
    '/jobs',
    express.json({ limit: config.limits.bodyBytes, strict: true }),
    requireRedis,
    withRouteOnError(jobRoutes(jobs, deadline, results)),
  );
  if (schedules) {
    v1.use(
      '/schedules',
      express.json({ limit: config.limits.bodyBytes, strict: true }),
      requireRedis,
      withRouteOnError(scheduleRoutes(schedules, deadline)),
    );
  }
  v1.use(metrics.routeOnError);
  // The API first: each of its requests then skips matching the operators' routes below.
  app.use('/v1', v1);
  app.use(
    healthRoutes(redis, {
      timeoutMs: readyTimeoutMs,
      alive: liveness.alive,
      strictPolicy: config.strictRedisPolicy,
      metricsToken: config.metricsToken,
    }),
  );
  app.use(metrics.routes(config.metricsToken));
  const reference = buildOpenApiDocument();
  app.use(docsRoutes(reference));
  // Closed (401) unless ADMIN_USER / ADMIN_PASSWORD are set; read-only unless ADMIN_READONLY=false.
  app.use(BOARD_PATH, adminBoard({ admin: config.admin, queues }));

  app.use(methodNotAllowed([...documentedPaths(reference), ...OPERATOR_PATHS]));
  app.use(notFoundHandler);
  app.use(errorHandler(log, redis));
  return app;
}
