import {
  createMetricsRegistry,
  type FairShares,
  isAnalysisName,
  type JobData,
  layoutFor,
  metricsAuthorized,
  QUEUES,
  type RedisConnection,
  type TenantShare,
} from '@longhaul/shared';
import type { Queue } from 'bullmq';
import { type ErrorRequestHandler, type Request, type RequestHandler, Router } from 'express';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * Queue states reported by `longhaul_queue_jobs`, each one O(1) to count (LLEN / ZCARD), and
 * `parked`: jobs waiting for their tenant's turn (the sum of the tenants' lanes).
 */
const STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;

export interface ApiMetricsDeps {
  queue: Queue<JobData>;
  /** The producer connection: a scrape while Redis is down fails fast and reports `longhaul_redis_up 0`. */
  redis: RedisConnection;
  queuePrefix: string;
  /** Each tenant's running and waiting jobs, and the parked ones (the fair share), read on scrape. */
  shares: () => Promise<FairShares>;
}

export interface ApiMetrics {
  registry: Registry;
  /** Times every response by route template and status, and counts accepted submissions. */
  middleware: RequestHandler;
  /**
   * Keeps the route template of a request whose handler failed: put last in each router that
   * holds routes (see {@link routeOnError}).
   */
  routeOnError: ErrorRequestHandler;
  /** `GET /metrics`, needing `Bearer <token>` when one is given. */
  routes(token: string | undefined): Router;
}

/** The route template (`/v1/jobs/:id`), never the raw URL, so job ids do not explode cardinality. */
export function routeLabel(req: Request, status: number): string {
  const kept = (req.res?.locals as { route?: string } | undefined)?.route;
  if (kept !== undefined) return kept;
  const path = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof path === 'string') return `${req.baseUrl}${path === '/' && req.baseUrl ? '' : path}`;
  if (status === 404) return 'unmatched';
  return req.baseUrl || 'other';
}

/**
 * The API's Prometheus metrics: HTTP request duration by method, route and status; jobs submitted
 * by analysis; queue depth by state and the age of the job next in line, read from Redis on scrape
 * (a handful of O(1) commands, whatever the backlog); `longhaul_redis_up`; Node's process metrics.
 */
export function createApiMetrics({ queue, redis, queuePrefix, shares }: ApiMetricsDeps): ApiMetrics {
  const registry = createMetricsRegistry('api');
  const duration = new Histogram({
    name: 'longhaul_http_request_duration_seconds',
    help: 'HTTP request duration by method, route template and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const submitted = new Counter({
    name: 'longhaul_jobs_submitted_total',
    help: 'Jobs accepted (202) by analysis; idempotent replays are not counted.',
    labelNames: ['analysis'] as const,
    registers: [registry],
  });

  const layout = layoutFor(queuePrefix);
  /**
   * One Redis read per scrape: prom-client collects every metric at once, so the gauges of one
   * scrape share the read in flight; the next scrape reads again.
   */
  let snapshot: Promise<QueueSnapshot | null> | undefined;
  const read = () => {
    snapshot ??= readQueue().finally(() => {
      snapshot = undefined;
    });
    return snapshot;
  };
  async function readQueue(): Promise<QueueSnapshot | null> {
    try {
      // The job next in line: the tail of the wait list (BullMQ pushes left, takes right), the
      // head of the prioritized set (every longhaul job carries a priority, so usually this one),
      // and the next parked job of each tenant waiting its turn (the first 100).
      const [counts, waitTail, prioritizedHead, fair] = await Promise.all([
        queue.getJobCounts(...STATES),
        redis.lindex(layout.wait(QUEUES.analyses), -1),
        redis.zrange(layout.prioritized(QUEUES.analyses), 0, 0),
        shares(),
      ]);
      const ids = [waitTail, prioritizedHead[0], ...fair.laneHeads].filter((id): id is string => Boolean(id));
      const stamps = await Promise.all(ids.map((id) => redis.hget(layout.job(QUEUES.analyses, id), 'timestamp')));
      const oldest = Math.min(...stamps.map((t) => (t ? Number(t) : Number.POSITIVE_INFINITY)));
      // Jobs parked for their tenant's turn (in BullMQ's waiting-children set, so in no state above).
      counts.parked = fair.parked;
      return {
        counts,
        tenants: fair.tenants,
        oldestAgeSeconds: Number.isFinite(oldest) ? Math.max(0, (Date.now() - oldest) / 1000) : 0,
      };
    } catch {
      return null;
    }
  }

  new Gauge({
    name: 'longhaul_queue_jobs',
    help: 'Jobs in the queue by state, read on scrape.',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const s = await read();
      if (!s) return;
      for (const state of [...STATES, 'parked']) this.set({ queue: QUEUES.analyses, state }, s.counts[state] ?? 0);
    },
  });
  new Gauge({
    name: 'longhaul_tenant_jobs',
    help: "Each tenant's jobs in the fair share, read on scrape: active (handed to a worker, not finished) and waiting (parked for the tenant's turn or its cap, or queued while it is alone in the queue).",
    labelNames: ['tenant', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const s = await read();
      for (const t of s?.tenants ?? []) {
        this.set({ tenant: t.tenant, state: 'active' }, t.running);
        this.set({ tenant: t.tenant, state: 'waiting' }, t.waiting);
      }
    },
  });
  new Gauge({
    name: 'longhaul_queue_oldest_waiting_age_seconds',
    help: 'Age of the job next in line to run (0 when none waits), read on scrape.',
    labelNames: ['queue'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const s = await read();
      if (s) this.set({ queue: QUEUES.analyses }, s.oldestAgeSeconds);
    },
  });
  new Gauge({
    name: 'longhaul_redis_up',
    help: '1 when the last scrape could read the queue from Redis, else 0.',
    registers: [registry],
    async collect() {
      this.set((await read()) ? 1 : 0);
    },
  });

  /**
   * A handler's error leaves each router on its way to the app's error handler, and Express gives
   * `req.baseUrl` back to the router it leaves: by the time the answer is sent, a 404 of
   * `/v1/schedules/:id` would read as `/:id`, the same as `/v1/jobs/:id`'s. So the router the route
   * is in takes the template down while it still knows its own mount path; the first to see the
   * error does, the routers above leave it.
   */
  const routeOnError: ErrorRequestHandler = (err, req, res, next) => {
    const locals = res.locals as { route?: string };
    if (locals.route === undefined && req.route !== undefined) locals.route = routeLabel(req, res.statusCode);
    next(err);
  };

  const middleware: RequestHandler = (req, res, next) => {
    const end = duration.startTimer();
    res.once('finish', () => {
      const route = routeLabel(req, res.statusCode);
      end({ method: req.method, route, status: String(res.statusCode) });
      if (req.method === 'POST' && route === '/v1/jobs' && res.statusCode === 202) {
        const type = (req.body as { type?: unknown } | undefined)?.type;
        submitted.inc({ analysis: typeof type === 'string' && isAnalysisName(type) ? type : 'unknown' });
      }
    });
    next();
  };

  return {
    registry,
    middleware,
    routeOnError,
    routes(token) {
      const router = Router();
      router.get('/metrics', async (req, res) => {
        if (!metricsAuthorized(req.get('authorization'), token)) {
          res.set('WWW-Authenticate', 'Bearer');
          res.status(401).json({ error: { code: 'unauthorized', message: 'metrics need "Bearer <METRICS_TOKEN>"' } });
          return;
        }
        res.set('Content-Type', registry.contentType).send(await registry.metrics());
      });
      return router;
    },
  };
}

interface QueueSnapshot {
  counts: Record<string, number>;
  tenants: TenantShare[];
  oldestAgeSeconds: number;
}
