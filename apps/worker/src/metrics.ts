import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  createMetricsRegistry,
  decodeFailure,
  JOB_RUN_SECONDS_BUCKETS,
  type JobData,
  metricsAuthorized,
} from '@longhaul/shared';
import type { Job, Worker } from 'bullmq';
import { Counter, Histogram, type Registry } from 'prom-client';

export interface WorkerMetrics {
  registry: Registry;
  /** Counts what the worker's jobs end in, from BullMQ's own `completed` / `failed` events. */
  observe(worker: Worker<JobData>): void;
  /** `GET /metrics` for the health server's routes; needs `Bearer <token>` when one is given. */
  route(token: string | undefined): (res: ServerResponse, req: IncomingMessage) => Promise<void>;
}

/**
 * The worker's Prometheus metrics: jobs completed, failed (for good), retried (an attempt failed and
 * another is due) and cancelled, by analysis; the run time of each attempt by analysis and outcome;
 * Node's default process metrics. Queue depth is the API's to report (it owns a Queue).
 */
export function createWorkerMetrics(): WorkerMetrics {
  const registry = createMetricsRegistry('worker');
  const counter = (name: string, help: string) =>
    new Counter({ name, help, labelNames: ['analysis'] as const, registers: [registry] });
  const completed = counter('longhaul_jobs_completed_total', 'Jobs that completed, by analysis.');
  const failed = counter('longhaul_jobs_failed_total', 'Jobs that failed for good (no attempt left), by analysis.');
  const retried = counter('longhaul_jobs_retried_total', 'Attempts that failed and will be retried, by analysis.');
  const cancelled = counter('longhaul_jobs_cancelled_total', 'Active jobs that were cancelled, by analysis.');
  const runSeconds = new Histogram({
    name: 'longhaul_job_run_seconds',
    help: 'Run time of one attempt, by analysis and outcome (completed, failed, retried, cancelled).',
    labelNames: ['analysis', 'outcome'] as const,
    buckets: JOB_RUN_SECONDS_BUCKETS,
    registers: [registry],
  });

  const elapsed = (job: Job) => (job.processedOn ? Math.max(0, Date.now() - job.processedOn) / 1000 : undefined);
  const record = (job: Job, outcome: 'completed' | 'failed' | 'retried' | 'cancelled') => {
    const analysis = job.name;
    ({ completed, failed, retried, cancelled })[outcome].inc({ analysis });
    const seconds = elapsed(job);
    if (seconds !== undefined) runSeconds.observe({ analysis, outcome }, seconds);
  };

  return {
    registry,
    observe(worker) {
      worker.on('completed', (job) => record(job, 'completed'));
      worker.on('failed', (job) => {
        if (!job) return;
        // A job with attempts left goes back to delayed/wait without a finishedOn.
        if (!job.finishedOn) return record(job, 'retried');
        record(job, decodeFailure(job.failedReason).code === 'cancelled' ? 'cancelled' : 'failed');
      });
    },
    route(token) {
      return async (res, req) => {
        if (!metricsAuthorized(req.headers.authorization, token)) {
          res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' });
          res.end(
            JSON.stringify({ error: { code: 'unauthorized', message: 'metrics need "Bearer <METRICS_TOKEN>"' } }),
          );
          return;
        }
        const body = await registry.metrics();
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(body);
      };
    },
  };
}
