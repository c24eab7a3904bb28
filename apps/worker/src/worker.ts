import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Config,
  createChildRunStore,
  createJobRunStore,
  createScheduleRunStore,
  FAIR_HEARTBEAT_MS,
  FAIR_REPAIR_EVERY,
  type JobData,
  type Logger,
  MAX_DELAY_SECONDS,
  QUEUES,
  type RedisConnection,
  retentionOptions,
} from '@longhaul/shared';
import { Queue, Worker } from 'bullmq';
import type { Analysis } from './define-analysis.ts';
import { failureForLog } from './errors/failure-log.ts';
import { assertImplementations } from './implementations.ts';
import { ABORT, createProcessor } from './run-job.ts';
import { closedOrUnreachable, logWorkerErrors } from './unreachable.ts';

export interface WorkerDeps {
  config: Config;
  log: Logger;
  /** A worker-role connection (waits for Redis forever); BullMQ duplicates it for blocking reads. */
  connection: RedisConnection;
  /** A second worker-role connection, put in subscriber mode for cancel messages. */
  subscriber: RedisConnection;
  implementations: Record<string, Analysis>;
  /**
   * How often the cancel flags of the jobs running here are read, for a cancel whose message was
   * lost without the subscriber noticing (a half-open connection). A reconnection reads them at
   * once. @defaultValue 10000
   */
  cancelRecheckMs?: number;
}

/** How often a draining worker counts again the attempts it still runs, as its slots. */
const DRAIN_BEAT_MS = 1_000;

/** One BullMQ Worker on the analyses queue, with cancel messages and a graceful drain. */
export function createAnalysisWorker({
  config,
  log,
  connection,
  subscriber,
  implementations,
  cancelRecheckMs = 10_000,
}: WorkerDeps) {
  assertImplementations(implementations);
  const store = createJobRunStore({
    redis: connection,
    prefix: config.queuePrefix,
    fairLimits: config.limits,
    eventsMaxLen: config.eventsMaxLen,
  });
  const schedules = createScheduleRunStore({
    redis: connection,
    prefix: config.queuePrefix,
    backlogQuota: config.limits.tenantBacklog,
    backlogTtlSeconds: config.retention.tombstoneSeconds,
  });
  // Fan-out: children are added with BullMQ's own add script, on this queue's MULTI.
  const queue = new Queue<JobData>(QUEUES.analyses, {
    connection,
    prefix: config.queuePrefix,
    skipVersionCheck: true,
    skipWaitingForReady: true,
  });
  queue.on('error', (err) => log.debug({ err: err.message }, 'queue error'));
  const children = createChildRunStore({
    redis: connection,
    queue,
    layout: store.layout,
    eventsMaxLen: config.eventsMaxLen,
    indexTtlSeconds: config.retention.tombstoneSeconds + MAX_DELAY_SECONDS,
  });
  const processor = createProcessor({ config, log, store, schedules, implementations, children });
  const worker = new Worker<JobData>(QUEUES.analyses, processor.process, {
    connection,
    prefix: config.queuePrefix,
    autorun: false,
    concurrency: config.worker.concurrency,
    lockDuration: config.worker.lockDurationMs,
    stalledInterval: config.worker.stalledIntervalMs,
    maxStalledCount: config.worker.maxStalledCount,
    // Retention lives on the Worker, not on each job: every job gets it, however it was born.
    ...retentionOptions(config.retention),
    // No `name`: BullMQ would store it in every job (`pb`), and it is the same for every worker.
  });
  logWorkerErrors(worker, connection, log, 'worker error');
  worker.on('failed', (job, err) => {
    if (!job?.id || !job.finishedOn) return;
    log.info(
      { jobId: job.id, attempt: job.attemptsMade, analysis: job.name, failure: failureForLog(err) },
      'job failed for good',
    );
    // A job that ended keeps no checkpoint (retention would drop it with the job anyway).
    void store.clearCheckpoint(job.id).catch(() => undefined);
    // It leaves its tenant's share and backlog even when it failed outside the processor (stalled too often).
    void store
      .finish(job.data?.tenant ?? '', job.id, { ended: true, stillActive: false }, { done: true })
      .catch(() => undefined);
  });
  worker.on('stalled', (jobId) => log.warn({ jobId }, 'job stalled; handed to another worker'));

  const onCancel = (channel: string, jobId: string) => {
    if (channel !== store.layout.cancelChannel) return;
    const attempt = processor.attemptOf(jobId);
    if (processor.cancel(jobId, ABORT.cancel)) log.info({ jobId, ...attempt }, 'cancel requested; aborting');
  };
  /**
   * Pub/sub delivers a cancel message only to a connected subscriber. Whatever was published while
   * it was away is caught from the flags the cancel script sets with it: read for the jobs running
   * here once the subscriber is subscribed again (ioredis resubscribes on reconnecting; ours
   * resolves after its own), and every `cancelRecheckMs` in case a connection died unnoticed.
   * One read for the whole process, not one per job.
   */
  const recheckCancels = (why: string) =>
    void processor.recheckCancels().then(
      (aborted) => {
        if (aborted > 0) log.info({ aborted, why }, 'cancel flags found set; aborting');
      },
      (err) => log.debug({ err }, 'cancel flags not read'),
    );
  const onResubscribed = () =>
    void subscriber.subscribe(store.layout.cancelChannel).then(
      () => recheckCancels('reconnected'),
      () => undefined,
    );
  let rechecking: NodeJS.Timeout | undefined;

  // This worker's slots count for the fair-share dispatcher while it beats (fair-share.ts).
  const workerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  let beats = 0;
  const heartbeat = (concurrency: number) =>
    store.fair
      .heartbeat(workerId, concurrency, { repair: beats++ % FAIR_REPAIR_EVERY === 0 })
      .catch((err) => log.warn({ err }, 'fair-share heartbeat failed'));
  let beating: NodeJS.Timeout | undefined;
  /** Set by `drain`: a `start` still under way stops at its next step (a SIGTERM during start-up). */
  let draining = false;

  return {
    worker,
    async start(): Promise<void> {
      subscriber.on('message', onCancel);
      await subscriber.subscribe(store.layout.cancelChannel);
      if (draining) return;
      subscriber.on('ready', onResubscribed);
      rechecking = setInterval(() => recheckCancels('periodic'), cancelRecheckMs);
      rechecking.unref();
      // Each attempt's start (cancel flag, gate, checkpoint) rides in the script that takes its
      // job, once BullMQ's scripts are on the connection; jobs taken before then send it alone.
      await worker.waitUntilReady();
      if (draining) return;
      if (!store.startOnTake()) log.warn('attempt starts do not ride with the job fetch');
      void worker.run().catch((err) => log.error({ err }, 'worker stopped running'));
      await heartbeat(config.worker.concurrency);
      if (draining) return;
      beating = setInterval(() => void heartbeat(config.worker.concurrency), FAIR_HEARTBEAT_MS);
      beating.unref();
    },
    /**
     * Stops taking jobs and lets active ones finish for up to `graceMs`; then aborts the rest with
     * the shutdown reason, which hands them back to the queue unharmed (no attempt spent). Safe
     * while `start` is still under way: it goes no further.
     */
    async drain(graceMs: number): Promise<void> {
      draining = true;
      clearInterval(beating);
      // From now on its slots are the attempts still running here, which hold BullMQ's active
      // places: no job is handed out for it to take, and the other workers' free slots count in full
      // (with none, its running jobs would take their places until they end). Refreshed as they
      // end, and gone with the last. Not waited for past a second: while Redis is unreachable it
      // would wait for it, and the slots expire anyway.
      const beatWhileDraining = () => heartbeat(processor.running());
      await Promise.race([beatWhileDraining(), sleep(1_000)]);
      // Not while the connection is down: the beats would queue up behind it.
      const beatingWhileDraining = setInterval(() => {
        if (connection.status === 'ready') void beatWhileDraining();
      }, DRAIN_BEAT_MS);
      beatingWhileDraining.unref();
      try {
        await closeWithin(graceMs);
      } finally {
        clearInterval(beatingWhileDraining);
        await Promise.race([heartbeat(0), sleep(1_000)]);
        // Cancels are heard until every attempt here has ended or been handed back: a job cancelled
        // during the grace period is aborted as cancelled, not run to its end.
        subscriber.off('message', onCancel);
        subscriber.off('ready', onResubscribed);
        clearInterval(rechecking);
      }
    },
  };

  async function closeWithin(graceMs: number): Promise<void> {
    const closing = worker.close().finally(() => queue.close());
    // One wait for both phases: closed, or Redis unreachable with nothing left to wait for here
    // (no attempt running during the grace period; after it, the hand-back is a write that
    // cannot happen without Redis). See closedOrUnreachable.
    let handingBack = false;
    const ended = closedOrUnreachable(closing, connection, () => handingBack || processor.running() === 0).then(
      (closed) => {
        if (!closed)
          log.warn('redis is unreachable: not waiting for it to close; what ran here is recovered once it returns');
      },
    );
    const within = (ms: number) => Promise.race([ended.then(() => true), sleep(ms).then(() => false)]);
    if (await within(graceMs)) return;
    log.warn({ graceMs }, 'grace period over: handing active jobs back to the queue');
    handingBack = true;
    processor.cancelAll(ABORT.shutdown);
    if (await within(10_000)) return;
    log.error('active jobs did not stop; closing anyway (their locks expire and they run again)');
    await Promise.race([worker.close(true), ended]);
  }
}
