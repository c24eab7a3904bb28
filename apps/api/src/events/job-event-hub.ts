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
   * A worker-role connection (waits out outages). QueueEvents blocks (XREAD BLOCK) on a duplicate
   * of it; {@link close} quits both.
   */
  connection: RedisConnection;
  prefix: string;
  log: Logger;
  /** Pause before restarting the event loop after an error. @defaultValue 1000 */
  restartDelayMs?: number;
}

/** Compares two stream ids (`<ms>-<seq>`) numerically. */
export function compareStreamIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

export const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

/**
 * One QueueEvents per API process, fanned out to any number of SSE streams: a map from job id to
 * its subscribers, so a client costs a map entry, not a Redis connection or a listener on
 * QueueEvents. It reads the queue's events stream in Redis, so it sees every job whichever worker
 * runs it and whichever API replica the client reached.
 */
export function createJobEventHub({ connection, prefix, log, restartDelayMs = 1_000 }: JobEventHubDeps) {
  const subscribers = new Map<string, Set<QueueEventListener>>();
  /** Called on close, to end every open stream. */
  const closers = new Set<() => void>();
  const queueEvents = new QueueEvents(QUEUES.analyses, { connection, prefix, autorun: false });
  // An error listener keeps a Redis outage from becoming an uncaught 'error' that ends the API.
  queueEvents.on('error', (err) => log.debug({ err: err.message }, 'queue events error'));
  let lastSeen: string | undefined;
  let closed = false;

  const dispatch = (name: QueueEventName) => (args: { jobId?: string } & Record<string, unknown>, id: string) => {
    lastSeen = id;
    const { jobId, ...fields } = args;
    if (!jobId) return;
    const listeners = subscribers.get(jobId);
    if (!listeners) return;
    for (const listener of listeners) listener({ id, name, jobId, fields });
  };
  // `cancelled` is ours (the job store writes it when a cancel reaches a job no worker holds):
  // QueueEvents emits every entry of the stream under its event name, known to its types or not.
  const on = queueEvents.on.bind(queueEvents) as (name: string, listener: (...args: never[]) => void) => void;
  for (const name of FORWARDED) on(name, dispatch(name) as never);

  const ready = (async () => {
    // Start from the stream's current end, read now: every stream served after `ready` then has its
    // starting position (read later) covered, even if the first XREAD comes a little later.
    const [last] = await connection.xrevrange(layoutFor(prefix).events(QUEUES.analyses), '+', '-', 'COUNT', 1);
    lastSeen = last?.[0] ?? '0-0';
  })();
  ready.catch(() => undefined);

  const loop = (async () => {
    await ready.catch(() => undefined);
    while (!closed) {
      try {
        // After an error, carry on from the last event seen rather than from "now" ('$').
        if (lastSeen) (queueEvents.opts as QueueEventsOptions).lastEventId = lastSeen;
        await queueEvents.run();
        return;
      } catch (err) {
        if (closed) return;
        log.warn({ err: (err as Error).message }, 'queue events stopped; restarting');
        await sleep(restartDelayMs);
      }
    }
  })();

  return {
    /** Resolves once the hub knows where in the events stream it starts. */
    ready,
    /** Calls `listener` with each event of `jobId` until the returned function is called. */
    subscribe(jobId: string, listener: QueueEventListener): () => void {
      let set = subscribers.get(jobId);
      if (!set) {
        set = new Set();
        subscribers.set(jobId, set);
      }
      set.add(listener);
      return () => {
        const current = subscribers.get(jobId);
        if (!current) return;
        current.delete(listener);
        if (current.size === 0) subscribers.delete(jobId);
      };
    },
    /** Registers a stream to end on {@link close}; returns its unregister function. */
    onClose(end: () => void): () => void {
      closers.add(end);
      return () => closers.delete(end);
    },
    /** Open subscriptions and the jobs they follow: what a leak test watches. */
    stats(): { subscribers: number; jobs: number; streams: number; queueEventListeners: number } {
      let count = 0;
      for (const set of subscribers.values()) count += set.size;
      const queueEventListeners = FORWARDED.reduce((n, name) => n + queueEvents.listenerCount(name), 0);
      return { subscribers: count, jobs: subscribers.size, streams: closers.size, queueEventListeners };
    },
    /** Ends every open stream. Call first on shutdown: `server.close()` waits for open responses. */
    endStreams(): void {
      for (const end of [...closers]) end();
    },
    /** Ends every open stream and stops reading events (closes the connection). */
    async close(): Promise<void> {
      closed = true;
      this.endStreams();
      await queueEvents.close().catch(() => undefined);
      await loop;
      // QueueEvents reads on a duplicate of `connection` (BullMQ duplicates blocking clients);
      // the original served the start position and is ours to quit.
      await connection.quit().catch(() => connection.disconnect());
    },
  };
}

export type JobEventHub = ReturnType<typeof createJobEventHub>;
