import { setTimeout as sleep } from 'node:timers/promises';
import { type Logger, layoutFor, QUEUES, type RedisConnection } from '@longhaul/shared';
import { QueueEvents, type QueueEventsOptions } from 'bullmq';

/** The BullMQ events the SSE stream cares about, as read from the queue's events stream. */
export type QueueEventName = 'active' | 'waiting' | 'delayed' | 'progress' | 'completed' | 'failed' | 'cancelled';
const FORWARDED: readonly QueueEventName[] = [
  'active',
  'waiting',
  'delayed',
  'progress',
  'completed',
  'failed',
  'cancelled',
];

/** One event of one job. `id` is the Redis stream id (`<ms>-<seq>`): ordered, and what Last-Event-ID names. */
export interface QueueEvent {
  id: string;
  name: QueueEventName;
  jobId: string;
  /** The event's fields besides `jobId` (`data` for progress, `failedReason` for failed, …). */
  fields: Record<string, unknown>;
}

export type QueueEventListener = (event: QueueEvent) => void;

export interface JobEventHubDeps {
  /**
   * A worker-role connection (waits out outages). Each reader's QueueEvents blocks (XREAD BLOCK) on
   * a duplicate of it; {@link close} quits it.
   */
  connection: RedisConnection;
  prefix: string;
  log: Logger;
  /** Pause before restarting the event loop after an error. @defaultValue 1000 */
  restartDelayMs?: number;
  /**
   * How long the hub keeps reading the events stream after its last stream closed, so that a
   * client that reconnects does not start a new reader each time. @defaultValue 30000
   */
  idleMs?: number;
}

/** Compares two stream ids (`<ms>-<seq>`) numerically. */
export function compareStreamIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

export const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

/** A QueueEvents reading the events stream for the hub, from its start until stopped. */
interface Reader {
  /** Resolves once the reader knows where in the events stream it starts. */
  ready: Promise<void>;
  /** Its listeners on QueueEvents (one per forwarded event name). */
  listeners(): number;
  stop(): Promise<void>;
}

/**
 * One QueueEvents per API process, fanned out to any number of SSE streams: a map from job id to
 * its subscribers, so a client costs a map entry, not a Redis connection or a listener on
 * QueueEvents. It reads the queue's events stream in Redis, so it sees every job whichever worker
 * runs it and whichever API replica the client reached.
 *
 * It reads only while someone listens: the first subscription starts a reader (a QueueEvents
 * from the stream's end, read then), and the reader stops `idleMs` after the last one left. An API
 * replica with no open stream reads nothing, however many jobs the workers run.
 */
export function createJobEventHub({
  connection,
  prefix,
  log,
  restartDelayMs = 1_000,
  idleMs = 30_000,
}: JobEventHubDeps) {
  /** Listeners by job id; a job's entry goes with its last listener, so empty means no stream. */
  const subscribers = new Map<string, Set<QueueEventListener>>();
  /** Called on close, to end every open stream. */
  const closers = new Set<() => void>();
  const eventsKey = layoutFor(prefix).events(QUEUES.analyses);
  let reader: Reader | undefined;
  /** The last reader's stop: a new reader starts once its connection is closed. */
  let stopped: Promise<void> = Promise.resolve();
  let idleTimer: NodeJS.Timeout | undefined;
  let closed = false;

  /** One event of the stream to the subscribers of its job, if any. */
  const dispatch = (name: QueueEventName, args: { jobId?: string } & Record<string, unknown>, id: string) => {
    const listeners = args.jobId ? subscribers.get(args.jobId) : undefined;
    if (!listeners) return;
    const { jobId, ...fields } = args;
    for (const listener of listeners) listener({ id, name, jobId: jobId as string, fields });
  };

  function startReader(after: Promise<void>): Reader {
    const queueEvents = new QueueEvents(QUEUES.analyses, { connection, prefix, autorun: false });
    // An error listener keeps a Redis outage from becoming an uncaught 'error' that ends the API.
    queueEvents.on('error', (err) => log.debug({ err: err.message }, 'queue events error'));
    let lastSeen: string | undefined;
    let stopping = false;
    let stop: () => void = () => {};
    const stopSignal = new Promise<void>((resolve) => {
      stop = resolve;
    });
    // `cancelled` is ours (the job store writes it when a cancel reaches a job no worker holds):
    // QueueEvents emits every entry of the stream under its event name, known to its types or not.
    const on = queueEvents.on.bind(queueEvents) as (name: string, listener: (...args: never[]) => void) => void;
    for (const name of FORWARDED) {
      on(name, ((args: { jobId?: string } & Record<string, unknown>, id: string) => {
        lastSeen = id;
        dispatch(name, args, id);
      }) as never);
    }

    const ready = (async () => {
      await after;
      // Start from the stream's current end, read now: every stream served after `ready` then has
      // its starting position (read later) covered, even if the first XREAD comes a little later.
      const [last] = await connection.xrevrange(eventsKey, '+', '-', 'COUNT', 1);
      lastSeen = last?.[0] ?? '0-0';
    })();
    ready.catch(() => undefined);

    const loop = (async () => {
      await Promise.race([ready.catch(() => undefined), stopSignal]);
      while (!stopping) {
        try {
          // After an error, carry on from the last event seen rather than from "now" ('$').
          if (lastSeen) (queueEvents.opts as QueueEventsOptions).lastEventId = lastSeen;
          await queueEvents.run();
          return;
        } catch (err) {
          if (stopping) return;
          log.warn({ err: (err as Error).message }, 'queue events stopped; restarting');
          await Promise.race([sleep(restartDelayMs), stopSignal]);
        }
      }
    })();

    return {
      ready,
      listeners: () => FORWARDED.reduce((n, name) => n + queueEvents.listenerCount(name), 0),
      async stop() {
        stopping = true;
        stop();
        await queueEvents.close().catch(() => undefined);
        await loop;
      },
    };
  }

  /** Stops the reader (when no subscription came back meanwhile). */
  function stopReader(): void {
    idleTimer = undefined;
    const current = reader;
    if (!current || subscribers.size > 0) return;
    reader = undefined;
    stopped = current.stop();
  }

  return {
    /**
     * Resolves once the hub reads the events stream from a position no later than now: a stream
     * subscribes first, then waits for this, then reads its own position.
     */
    reading(): Promise<void> {
      return reader?.ready ?? Promise.resolve();
    },
    /**
     * Calls `listener` with each event of `jobId` until the returned function is called. Starts
     * the reader if none runs.
     */
    subscribe(jobId: string, listener: QueueEventListener): () => void {
      let set = subscribers.get(jobId);
      if (!set) {
        set = new Set();
        subscribers.set(jobId, set);
      }
      set.add(listener);
      clearTimeout(idleTimer);
      idleTimer = undefined;
      if (!closed) reader ??= startReader(stopped);
      let unsubscribed = false;
      return () => {
        if (unsubscribed) return;
        unsubscribed = true;
        const current = subscribers.get(jobId);
        if (current) {
          current.delete(listener);
          if (current.size === 0) subscribers.delete(jobId);
        }
        if (subscribers.size === 0 && !closed) {
          clearTimeout(idleTimer);
          idleTimer = setTimeout(stopReader, idleMs);
          idleTimer.unref();
        }
      };
    },
    /**
     * Registers a stream to end on {@link close}; returns its unregister function. A stream that
     * opens after close (a request already in flight at shutdown) is ended at once.
     */
    onClose(end: () => void): () => void {
      if (closed) {
        queueMicrotask(end);
        return () => {};
      }
      closers.add(end);
      return () => closers.delete(end);
    },
    /** Open subscriptions and the jobs they follow, and whether a reader runs: what a leak test watches. */
    stats(): { subscribers: number; jobs: number; streams: number; queueEventListeners: number; reading: boolean } {
      let count = 0;
      for (const set of subscribers.values()) count += set.size;
      return {
        subscribers: count,
        jobs: subscribers.size,
        streams: closers.size,
        queueEventListeners: reader?.listeners() ?? 0,
        reading: reader !== undefined,
      };
    },
    /** Ends every open stream. Call first on shutdown: `server.close()` waits for open responses. */
    endStreams(): void {
      for (const end of [...closers]) end();
    },
    /** Ends every open stream and stops reading events (closes the connection). */
    async close(): Promise<void> {
      closed = true;
      this.endStreams();
      clearTimeout(idleTimer);
      const current = reader;
      reader = undefined;
      await current?.stop();
      await stopped;
      // QueueEvents reads on a duplicate of `connection` (BullMQ duplicates blocking clients);
      // the original served the start positions and is ours to quit.
      await connection.quit().catch(() => connection.disconnect());
    },
  };
}

export type JobEventHub = ReturnType<typeof createJobEventHub>;
