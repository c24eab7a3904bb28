import {
  type AttemptEnd,
  type ChildRunStore,
  type Config,
  DEFAULT_PRIORITY,
  encodeFailure,
  encodeResultSized,
  type JobData,
  type JobRunStore,
  type Logger,
  type Progress,
  ResultTooLargeError,
  recordQueueWait,
  type ScheduleRunStore,
  STORAGE_FREE_BYTES,
  tenantStorageBudget,
  withJobSpan,
} from '@longhaul/shared';
import { type Job, UnrecoverableError, WaitingChildrenError, WaitingError } from 'bullmq';
import type { Analysis, AnalysisContext } from './define-analysis.ts';
import { createDurableSteps } from './durable-steps.ts';
import { failureForLog } from './errors/failure-log.ts';
import { PermanentError } from './errors/permanent-error.ts';
import { createSpawn } from './spawn.ts';

/** An attempt ran past its analysis' `timeoutMs`: retried, with the reason `timeout: …`. */
class AttemptTimeoutError extends Error {
  constructor(message: string) {
    super(encodeFailure('timeout', message));
    this.name = 'AttemptTimeoutError';
  }
}

/**
 * The number of the attempt `job` is on: one more than the runs that failed and those its worker
 * died in (BullMQ's stall count), as the job view's `attempts.made` counts them. A shutdown's
 * hand-back spends none.
 */
export function attemptOf(job: Pick<Job, 'attemptsMade' | 'stalledCounter'>): number {
  return job.attemptsMade + job.stalledCounter + 1;
}

/** Why an attempt was aborted from outside: passed to the processor's `cancel` and `cancelAll`. */
export const ABORT = { cancel: 'cancel', shutdown: 'shutdown' } as const;
type AbortReason = (typeof ABORT)[keyof typeof ABORT];

/**
 * An attempt's door for aborts from outside (a cancel, a shutdown): a reason that arrives before
 * the attempt can abort is kept, and applied when it can.
 */
interface AbortSlot {
  /** The attempt, as its log lines name it. */
  attempt: { analysis: string; attempt: number };
  reason?: unknown;
  abort?: (reason: unknown) => void;
}

/**
 * The smallest gap between two progress writes of one job within one step (a new step and 100 %
 * go at once). Each write is a script and an event in Redis, read by every open stream: an
 * analysis that reports as it goes (dataset-profile reports each batch) writes once a second,
 * about 300 commands a minute, where 200 ms wrote five times as many.
 */
const PROGRESS_INTERVAL_MS = 1_000;

/** How long a job's first progress write is held (see {@link progressReporter}). */
const PROGRESS_HOLD_MS = 200;

export interface RunJobDeps {
  config: Config;
  log: Logger;
  store: JobRunStore;
  implementations: Record<string, Analysis>;
  /** Runs of schedules: overlap, counters and run list, recorded as each run starts. */
  schedules?: ScheduleRunStore;
  /** Fan-out (`ctx.spawn`): without it, a spawn fails the job. */
  children?: ChildRunStore;
}

/**
 * First progress writes held back (see {@link progressReporter}), released by one timer for the
 * whole process instead of one per job: a timer made and cleared for every job was about 4 µs of
 * a no-op job's CPU. The timer stops at a tick that finds nothing held (not when the last write
 * leaves, which a drain of short jobs does after nearly every job), and a held write goes out up
 * to {@link HELD_TICK_MS} after its hold ends.
 */
const HELD_TICK_MS = 50;
interface HeldWrite {
  due: number;
  release(): void;
}
const heldWrites = new Set<HeldWrite>();
let heldTicker: NodeJS.Timeout | undefined;
function hold(write: HeldWrite): void {
  heldWrites.add(write);
  if (!heldTicker) {
    heldTicker = setInterval(releaseHeld, HELD_TICK_MS);
    heldTicker.unref();
  }
}
function releaseHeld(): void {
  if (heldWrites.size === 0) {
    clearInterval(heldTicker);
    heldTicker = undefined;
    return;
  }
  const now = Date.now();
  for (const write of heldWrites) {
    if (write.due > now) continue;
    heldWrites.delete(write);
    write.release();
  }
}

const SETTLED = Promise.resolve();

/**
 * Throttled progress writes that never throw into the analysis. Each write is sent at once: the
 * job's commands share one connection, so Redis applies them, and the completion after them, in
 * the order they were issued, without a round trip spent waiting on each.
 *
 * The first write is held for {@link PROGRESS_HOLD_MS}: a job that completes within it writes no
 * progress at all (`discardHeld`), since its completion says more (the view of a completed job
 * reads 100 %), and most of a short job's Redis commands would otherwise be its progress script
 * and event.
 */
function progressReporter(job: Job, log: Logger) {
  const inflight = new Set<Promise<unknown>>();
  let last: Progress | null = null;
  let lastWrite = 0;
  let pending: Progress | null = null;
  let timer: NodeJS.Timeout | undefined;
  const write = (p: Progress) => {
    lastWrite = Date.now();
    last = p;
    const sent = job.updateProgress(p).catch((err) => log.warn({ err }, 'progress write failed'));
    inflight.add(sent);
    void sent.finally(() => inflight.delete(sent));
  };
  /** Writes what is pending now: the trailing timer and the held write, if any, are done with. */
  const sendPending = () => {
    clearTimeout(timer);
    timer = undefined;
    heldWrites.delete(held);
    if (pending) write(pending);
    pending = null;
  };
  /** The held first write, once its interval is over. */
  const held = { due: Date.now() + PROGRESS_HOLD_MS, release: sendPending };
  /** Sends what is pending; the promise settles when every write has. */
  const flush = (): Promise<unknown> => {
    sendPending();
    return inflight.size === 0 ? SETTLED : Promise.all(inflight);
  };
  return {
    flush,
    report(percent: number, step: string, message?: string) {
      const p: Progress = { percent: Math.max(0, Math.min(100, Math.round(percent * 10) / 10)), step };
      if (message !== undefined) p.message = message;
      if (Date.now() < held.due) {
        pending = p;
        hold(held);
        return;
      }
      const urgent = !last || last.step !== step || p.percent >= 100;
      pending = p;
      if (urgent || Date.now() - lastWrite >= PROGRESS_INTERVAL_MS) sendPending();
      else timer ??= setTimeout(sendPending, PROGRESS_INTERVAL_MS);
    },
    /** On completion: drops the held first write if nothing was written yet, else as `flush`. */
    discardHeld(): Promise<unknown> {
      if (last === null) pending = null;
      return flush();
    },
  };
}

/**
 * The BullMQ processor: validates the job again, builds the context, runs the analysis and turns
 * every way it can end into the right BullMQ outcome (result, retry, permanent failure, or the job
 * handed back untouched on shutdown).
 */
export function createProcessor(deps: RunJobDeps) {
  const attempt = createAttempt(deps);
  const { store, log } = deps;
  /**
   * Each attempt this process runs, by job id: cancels and the shutdown reach it here. BullMQ
   * would make an AbortController per job for a processor that takes its signal (a third
   * parameter), and forwarding it into ours cost a listener too: together 5–6 % of the drain of
   * no-op jobs. So the processor takes none, and this is the one way in.
   */
  const running = new Map<string, AbortSlot>();
  const abortWith = (slot: AbortSlot, reason: unknown) => {
    slot.reason ??= reason;
    slot.abort?.(slot.reason);
  };
  /**
   * A job that ends (a permanent failure, or its last attempt failed) keeps no checkpoint. Dropped
   * before BullMQ records the failure, on the same connection, so no reader sees a failed job
   * with one; the Worker's `failed` handler covers jobs failed elsewhere (stalled too often).
   *
   * Its worker slot goes to the next tenant in turn (fair-share.ts): the dispatch is sent, not
   * awaited, just before BullMQ's completion on the same connection (a completed job's inside it,
   * in one script), so the completion's own fetch of the next job finds the one it promoted. A
   * job that ended (or now waits for its children) also leaves its tenant's share; one to be
   * retried keeps it through its backoff.
   */
  async function runAttempt(job: Job<JobData>, token?: string): Promise<unknown> {
    const id = job.id ?? '';
    const tenant = job.data?.tenant ?? '';
    const slot: AbortSlot = { attempt: { analysis: job.name, attempt: attemptOf(job) } };
    running.set(id, slot);
    const finish = (ended: boolean, stillActive: boolean, end?: AttemptEnd) =>
      void store
        .finish(tenant, id, { ended, stillActive }, end)
        .catch((e) => log.warn({ err: e, jobId: id }, 'could not hand the slot on'));
    try {
      const { stored, resultBytes } = await attempt(job, token, slot);
      // The result's bytes are counted against the storage budget in the same script, which runs
      // inside BullMQ's completion of the job (or alone just after, if BullMQ does not complete it).
      const end = { resultBytes, done: true };
      store.finishOnCompletion(tenant, id, { ended: true, stillActive: true }, end, () => finish(true, true, end));
      return stored;
    } catch (err) {
      // Handed back on shutdown: it keeps its share.
      if (err instanceof WaitingError) throw err;
      // Waiting for its children, or parked for its tenant's turn: its slot is free, its share too.
      if (err instanceof WaitingChildrenError) {
        finish(true, false);
        throw err;
      }
      const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      const ended = err instanceof UnrecoverableError || last;
      if (job.id && ended) {
        await store.clearCheckpoint(job.id).catch((e) => log.warn({ err: e }, 'could not drop the checkpoint'));
      }
      finish(ended, true, { done: ended });
      throw err;
    } finally {
      if (running.get(id) === slot) running.delete(id);
    }
  }
  /**
   * Each attempt is a span in the trace of the request that submitted the job (its context travels
   * in the job's options); the first one also records the time the job waited in the queue.
   */
  function processJob(job: Job<JobData>, token?: string): Promise<unknown> {
    const attributes = {
      'longhaul.job.id': job.id ?? '',
      'longhaul.job.type': job.name,
      'longhaul.job.attempt': attemptOf(job),
    };
    if (job.attemptsStarted <= 1 && job.processedOn) {
      recordQueueWait(job, job.timestamp, job.processedOn, attributes);
    }
    return withJobSpan(job, 'job.attempt', attributes, () => runAttempt(job, token));
  }
  return {
    /** The processor to give BullMQ's Worker. */
    process: processJob,
    /** Aborts the attempt of `jobId` running here with `reason`; false when none runs here. */
    cancel(jobId: string, reason: AbortReason): boolean {
      const slot = running.get(jobId);
      if (slot) abortWith(slot, reason);
      return slot !== undefined;
    },
    /** The analysis and attempt number of `jobId`'s attempt running here, for log lines. */
    attemptOf(jobId: string): AbortSlot['attempt'] | undefined {
      return running.get(jobId)?.attempt;
    },
    /** Aborts every attempt running here with `reason`. */
    cancelAll(reason: AbortReason): void {
      for (const slot of running.values()) abortWith(slot, reason);
    },
    /** How many attempts run here. */
    running(): number {
      return running.size;
    },
    /**
     * Reads the cancel flags of the jobs running here, in one round trip, and aborts those that
     * are set: for cancels whose pub/sub message this process missed (see worker.ts). Answers how
     * many it aborted.
     */
    async recheckCancels(): Promise<number> {
      if (running.size === 0) return 0;
      const cancelled = await store.cancelledAmong([...running.keys()]);
      let aborted = 0;
      for (const id of cancelled) {
        const slot = running.get(id);
        if (slot && slot.reason === undefined) {
          abortWith(slot, ABORT.cancel);
          aborted++;
        }
      }
      return aborted;
    },
  };
}

function createAttempt({ config, log, store, schedules, implementations, children }: RunJobDeps) {
  /** The result to store, and its size when the tenant has a storage budget. */
  return async function runAttempt(
    job: Job<JobData>,
    token: string | undefined,
    slot: AbortSlot,
  ): Promise<{ stored: unknown; resultBytes?: number }> {
    const id = job.id ?? '';
    const attempt = attemptOf(job);
    const jobLog = log.child({ jobId: id, attempt, analysis: job.name });
    const analysis = implementations[job.name];
    if (!analysis) throw new PermanentError(`no analysis named "${job.name}"`, 'unknown_analysis');

    // Validate again: the API may run another version, or the data may have been written by hand.
    const parsed = analysis.contract.input.safeParse(job.data?.input);
    if (!parsed.success) {
      const detail = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
      throw new PermanentError(detail, 'invalid_input');
    }

    const { tenant } = job.data;
    const {
      cancelled,
      park,
      checkpoint: saved,
      steps: storedSteps,
    } = await store.start(id, tenant, job.opts.priority ?? DEFAULT_PRIORITY, token);
    if (cancelled) throw new PermanentError('cancelled by request', 'cancelled');
    if (park) {
      // Its tenant is at its cap, or other tenants wait their turn: the gate parked it in its lane.
      jobLog.info('parked until its tenant has a turn');
      throw new WaitingChildrenError();
    }
    const scheduleId = job.data?.scheduleId;
    if (scheduleId && schedules) {
      // The API never admitted a run: its input is counted against the tenant's storage budget
      // here (idempotently, so a retried run is not counted twice).
      const inputBytes = Buffer.byteLength(JSON.stringify(job.data.input) ?? '');
      if (!(await store.chargeInput(tenant, id, inputBytes, tenantStorageBudget(config.limits, tenant)))) {
        throw new PermanentError("the tenant's storage budget is full (TENANT_STORAGE_BYTES)", 'skipped');
      }
      const run = await schedules.startRun(tenant, scheduleId, id);
      if (run === 'skip') {
        throw new PermanentError('the previous run of its schedule was still active (overlap: skip)', 'skipped');
      }
      if (run === 'full') throw new PermanentError("the tenant's backlog quota was full", 'skipped');
      if (run === 'gone') throw new PermanentError('its schedule was deleted before it started', 'skipped');
      if (run === 'ended') throw new PermanentError("it was due after its schedule's endAt", 'skipped');
    }

    const timeout = new AbortController();
    const timer = setTimeout(
      () =>
        timeout.abort(
          new AttemptTimeoutError(`the attempt ran longer than ${analysis.contract.defaults.timeoutMs} ms`),
        ),
      analysis.contract.defaults.timeoutMs,
    );
    // A cancel or the shutdown, from now on, or already (it arrived while the attempt started).
    slot.abort = (reason) => timeout.abort(reason);
    if (slot.reason !== undefined) timeout.abort(slot.reason);
    const aborts = timeout.signal;
    const progress = progressReporter(job, jobLog);
    let checkpointed = saved !== null;
    // Every start counts (BullMQ's attemptsStarted): a restart after a crash is a new attempt.
    const run = Math.max(1, job.attemptsStarted);
    // A checkpoint over the cap fails the job for good, even if the analysis catches the throw.
    let oversized: PermanentError | undefined;
    const ctx: AnalysisContext = {
      jobId: id,
      attempt,
      run,
      progress: progress.report,
      checkpoint: async (state) => {
        const json = JSON.stringify(state) ?? 'null';
        const bytes = Buffer.byteLength(json);
        if (bytes > config.limits.checkpointMaxBytes) {
          oversized = new PermanentError(
            `the checkpoint is ${bytes} bytes; the cap is ${config.limits.checkpointMaxBytes} (CHECKPOINT_MAX_BYTES)`,
            'checkpoint_too_large',
          );
          throw oversized;
        }
        checkpointed = true;
        await store.saveCheckpoint(id, json);
      },
      restored: saved === null ? undefined : JSON.parse(saved),
      step: createDurableSteps({
        store,
        jobId: id,
        attempt: run,
        stored: storedSteps,
        maxResultBytes: config.limits.stepResultMaxBytes,
        log: jobLog,
      }),
      spawn: children
        ? createSpawn({
            store: children,
            job,
            token,
            tenant: job.data.tenant,
            maxChildren: config.limits.maxChildrenPerJob,
            log: jobLog,
          })
        : () => Promise.reject(new PermanentError('fan-out (ctx.spawn) is not available in this worker')),
      signal: aborts,
      log: jobLog,
    };

    const startedAt = Date.now();
    jobLog.info({ resumed: saved !== null }, 'analysis started');
    try {
      const raw = await analysis.run(parsed.data, ctx);
      if (oversized) throw oversized;
      const result = analysis.contract.result.safeParse(raw);
      if (!result.success) throw new PermanentError('the analysis returned a result that does not match its schema');
      // Sent, not awaited: the completion follows them on the same connection.
      void progress.discardHeld();
      const { stored, bytes, compressed } = encodeResultSized(result.data, {
        compressBytes: config.limits.resultCompressBytes,
        maxBytes: config.limits.resultMaxBytes,
      });
      if (checkpointed) void store.clearCheckpoint(id).catch(() => undefined);
      jobLog.info({ ms: Date.now() - startedAt, encoding: compressed ? 'gzip' : 'json' }, 'analysis completed');
      // Counted against the tenant's storage budget just before BullMQ stores the result. A result
      // within the free bytes counts nothing, and a first attempt has no earlier result's figure to
      // replace: then the budget is left alone, and costs no command.
      const counted = bytes > STORAGE_FREE_BYTES || job.attemptsStarted > 1;
      return counted && tenantStorageBudget(config.limits, tenant) > 0 ? { stored, resultBytes: bytes } : { stored };
    } catch (err) {
      void progress.flush();
      if (err instanceof WaitingChildrenError) {
        // The job waits for its children in BullMQ's waiting-children set (ctx.spawn), holding no
        // worker: its slot is free from here, whatever the signal says. It runs again once they end.
        jobLog.info({ ms: Date.now() - startedAt }, 'analysis waits for its children');
        throw err;
      }
      const reason = aborts.aborted ? aborts.reason : undefined;
      if (reason === ABORT.shutdown && token) {
        // Shutdown: give the job back as it was (no attempt spent); its checkpoint stays.
        jobLog.info('handing the job back to the queue for another worker');
        await job.moveToWait(token);
        throw new WaitingError();
      }
      if (reason === ABORT.cancel) {
        jobLog.info('analysis cancelled');
        throw new PermanentError('cancelled by request', 'cancelled');
      }
      if (oversized) {
        jobLog.warn({ failure: failureForLog(oversized) }, 'analysis failed permanently');
        throw oversized;
      }
      if (reason instanceof AttemptTimeoutError) {
        jobLog.warn({ ms: Date.now() - startedAt }, 'analysis timed out');
        throw reason;
      }
      if (err instanceof ResultTooLargeError) throw new PermanentError(err.message, 'result_too_large');
      if (err instanceof UnrecoverableError) {
        jobLog.warn({ failure: failureForLog(err) }, 'analysis failed permanently');
        throw err;
      }
      jobLog.warn({ failure: failureForLog(err) }, 'analysis failed; it will be retried if attempts remain');
      throw err;
    } finally {
      slot.abort = undefined;
      clearTimeout(timer);
    }
  };
}
