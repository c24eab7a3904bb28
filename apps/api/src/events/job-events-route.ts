import {
  type Config,
  decodeFailure,
  FINAL_STATUSES,
  isJobId,
  type JobView,
  type Layout,
  type Logger,
  QUEUES,
  type RedisConnection,
} from '@longhaul/shared';
import type { RequestHandler, Response } from 'express';
import { tenantOf } from '../http/auth.ts';
import { HttpError, notFound } from '../http/http-error.ts';
import type { JobService } from '../jobs/job-service.ts';
import type { Deadline } from '../jobs/routes.ts';
import {
  compareStreamIds,
  type JobEventHub,
  type QueueEvent,
  type QueueEventName,
  STREAM_ID,
} from './job-event-hub.ts';

export interface JobEventsDeps {
  hub: JobEventHub;
  jobs: JobService;
  /** The producer connection, for the Last-Event-ID replay (XRANGE) and final views. */
  redis: RedisConnection;
  layout: Layout;
  deadline: Deadline;
  log: Logger;
  /** A comment line is sent this often on an idle stream, so proxies do not close it. */
  heartbeatMs: number;
  /** Sent as SSE `retry:`, the client's reconnection delay. @defaultValue 2000 */
  retryMs?: number;
  /** Stream and replay bounds (`EVENTS_*` in config). */
  limits: Config['events'];
}

/** Why a Last-Event-ID replay could not be served; sent to the client as a `reset` event. */
export type ReplayRefusal = 'trimmed' | 'too_far_behind' | 'unavailable';

const REPLAY_REFUSED: Record<ReplayRefusal, string> = {
  trimmed: 'the events after Last-Event-ID are no longer kept; the snapshot above is the current state',
  too_far_behind: 'too many events since Last-Event-ID to replay; the snapshot above is the current state',
  unavailable: 'the missed events could not be read now; the snapshot above is the current state',
};

/**
 * Open streams per tenant and in all, in this process. `admit` answers a release function, or
 * throws a 429 naming the limit that was reached.
 */
function createStreamLimiter({ maxStreams, maxStreamsPerTenant }: Config['events']) {
  const perTenant = new Map<string, number>();
  let total = 0;
  const refuse = (message: string) =>
    new HttpError(429, 'too_many_streams', message, undefined, { 'Retry-After': '5' });
  return {
    admit(tenant: string): () => void {
      const open = perTenant.get(tenant) ?? 0;
      if (open >= maxStreamsPerTenant) {
        throw refuse(
          `this tenant already has ${open} open event streams (EVENTS_MAX_STREAMS_PER_TENANT); close one or poll`,
        );
      }
      if (total >= maxStreams) throw refuse('this server holds as many event streams as it allows; try again or poll');
      perTenant.set(tenant, open + 1);
      total++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        total--;
        const left = (perTenant.get(tenant) ?? 1) - 1;
        if (left > 0) perTenant.set(tenant, left);
        else perTenant.delete(tenant);
      };
    },
  };
}

const FINAL: readonly string[] = FINAL_STATUSES;

/** The events a snapshot read after them makes stale; the rest (final events) end a stream. */
const LIVE_ONLY: ReadonlySet<QueueEventName> = new Set(['progress', 'active', 'waiting', 'delayed']);

function streamTime(id: string): number {
  return Number(id.split('-')[0]);
}

/** An entry of the raw events stream → a {@link QueueEvent}, as QueueEvents would have parsed it. */
function parseEntry([id, flat]: [string, string[]]): QueueEvent | null {
  const fields: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1];
  const { event, jobId, ...rest } = fields;
  if (typeof jobId !== 'string' || typeof event !== 'string') return null;
  if (event === 'progress' && typeof rest.data === 'string') {
    try {
      rest.data = JSON.parse(rest.data);
    } catch {
      return null;
    }
  }
  return { id, name: event as QueueEventName, jobId, fields: rest };
}

/**
 * `GET /v1/jobs/:id/events`: Server-Sent Events for one job. The first event is a `snapshot` (the
 * job view), then `status`, `progress`, and one final `completed`, `failed` or `cancelled`, after
 * which the stream ends. Events carry the Redis stream id as their SSE id, and the snapshot the
 * position it covers. A reconnect with `Last-Event-ID` gets a fresh snapshot, which covers the
 * events missed since that id, so only a final one among them is sent again: a client is never
 * shown state older than it has already been shown.
 */
export function jobEventsRoute(deps: JobEventsDeps): RequestHandler {
  const { hub, jobs, redis, layout, deadline, log, heartbeatMs, retryMs = 2_000, limits } = deps;
  const eventsKey = layout.events(QUEUES.analyses);
  const limiter = createStreamLimiter(limits);

  /** The newest id in the events stream: everything after it is yet to come. */
  async function streamEnd(): Promise<string> {
    const [last] = (await redis.xrevrange(eventsKey, '+', '-', 'COUNT', 1)) as [string, string[]][];
    return last?.[0] ?? '0-0';
  }

  /**
   * This job's events in (after, upTo], oldest first, read in one round trip from `after` on
   * (never from the stream's start), at most `limits.replayMax` entries; or why that cannot be
   * served: `after` is older than the stream's first entry (trimmed away), or more entries than the
   * bound lie between.
   */
  async function replay(jobId: string, after: string, upTo: string): Promise<QueueEvent[] | ReplayRefusal> {
    const results = await redis
      .pipeline()
      .xrange(eventsKey, '-', '+', 'COUNT', 1)
      .xrange(eventsKey, `(${after}`, upTo, 'COUNT', limits.replayMax + 1)
      .exec();
    const [[firstErr, first] = [], [batchErr, batch] = []] = results ?? [];
    if (firstErr || batchErr) throw firstErr ?? batchErr;
    const oldest = (first as [string, string[]][] | undefined)?.[0]?.[0];
    if (oldest && compareStreamIds(after, oldest) < 0) return 'trimmed';
    const entries = (batch as [string, string[]][] | undefined) ?? [];
    if (entries.length > limits.replayMax) return 'too_far_behind';
    const found: QueueEvent[] = [];
    for (const entry of entries) {
      const event = parseEntry(entry);
      if (event?.jobId === jobId) found.push(event);
    }
    return found;
  }

  return async (req, res) => {
    const raw = req.params.id;
    const id = Array.isArray(raw) ? raw[0] : raw;
    if (!id || !isJobId(id)) throw notFound();
    const tenant = tenantOf(req);
    const header = req.get('last-event-id');
    const lastEventId = header && STREAM_ID.test(header) ? header : undefined;

    const release = limiter.admit(tenant);
    // Subscribe, wait until the hub reads from no later than now, then read where the stream ends
    // and the snapshot, and drop what the snapshot already covers by stream id: nothing falls
    // between the snapshot and the live events.
    const early: QueueEvent[] = [];
    let onEvent: (event: QueueEvent) => void = (event) => early.push(event);
    const unsubscribe = hub.subscribe(id, (event) => onEvent(event));
    let position: string;
    let view: JobView;
    try {
      await deadline(hub.reading());
      position = await deadline(streamEnd());
      view = jobs.view(await deadline(jobs.snapshot(tenant, id)));
    } catch (err) {
      unsubscribe();
      release();
      throw err;
    }

    const stream = openStream(res, {
      heartbeatMs,
      retryMs,
      bufferBytes: limits.bufferBytes,
      onDrop: (buffered) => log.info({ jobId: id, buffered }, 'slow event stream client dropped'),
    });
    let startedMs = view.startedAt ? Date.parse(view.startedAt) : null;
    let cursor = position;
    let chain: Promise<void> = Promise.resolve();
    let unregister = () => {};
    const finish = () => {
      unsubscribe();
      unregister();
      release();
      stream.end();
    };
    stream.onClose(finish);
    unregister = hub.onClose(() => {
      unsubscribe();
      release();
      stream.end({ closeConnection: true });
    });

    /** The job's final view, read again so the event carries the result of the whole run. */
    async function finalView(event: QueueEvent): Promise<{ name: string; data: unknown }> {
      const fallback =
        event.name === 'completed'
          ? 'completed'
          : event.name === 'failed' && decodeFailure(String(event.fields.failedReason ?? '')).code !== 'cancelled'
            ? 'failed'
            : 'cancelled';
      try {
        const final = jobs.view(await deadline(jobs.snapshot(tenant, id as string)));
        if (FINAL.includes(final.status)) return { name: final.status, data: final };
      } catch (err) {
        log.debug({ err, jobId: id }, 'final view unavailable; sending the event alone');
      }
      return { name: fallback, data: { id, status: fallback } };
    }

    async function handle(event: QueueEvent): Promise<void> {
      if (stream.ended || compareStreamIds(event.id, cursor) <= 0) return;
      cursor = event.id;
      switch (event.name) {
        case 'progress': {
          const progress = event.fields.data;
          const percent =
            progress && typeof progress === 'object' && 'percent' in progress ? Number(progress.percent) : null;
          const now = streamTime(event.id);
          const etaSeconds =
            startedMs && percent && percent > 0 && percent < 100
              ? Math.round(((now - startedMs) * (100 - percent)) / percent / 1000)
              : null;
          stream.send('progress', { id, status: 'active', progress, etaSeconds }, event.id);
          return;
        }
        case 'active':
          startedMs = streamTime(event.id);
          stream.send('status', { id, status: 'active' }, event.id);
          return;
        case 'waiting':
          stream.send('status', { id, status: 'queued' }, event.id);
          return;
        case 'delayed':
          stream.send('status', { id, status: 'delayed' }, event.id);
          return;
        default: {
          const { name, data } = await finalView(event);
          stream.send(name, data, event.id);
          finish();
        }
      }
    }
    const enqueue = (event: QueueEvent) => {
      chain = chain.then(() => handle(event)).catch((err) => log.warn({ err, jobId: id }, 'event stream failed'));
    };

    if (FINAL.includes(view.status)) {
      stream.send('snapshot', view);
      // Already over: the final event too, for clients that only listen for it, then the end.
      stream.send(view.status, view);
      finish();
      return;
    }
    // Its id is the position it covers, so a client that reconnects after it resumes from there
    // (no id on an empty events stream: `0-0` would read as trimmed away).
    stream.send('snapshot', view, position === '0-0' ? undefined : position);
    if (lastEventId && compareStreamIds(lastEventId, position) < 0) {
      cursor = lastEventId;
      let replayed: QueueEvent[] | ReplayRefusal;
      try {
        replayed = await deadline(replay(id, lastEventId, position));
      } catch (err) {
        log.warn({ err, jobId: id }, 'Last-Event-ID replay failed; the client is told to rely on the snapshot');
        replayed = 'unavailable';
      }
      if (typeof replayed === 'string') {
        // Said out loud: the client asked for what it missed and does not get it.
        stream.send('reset', { id, reason: replayed, message: REPLAY_REFUSED[replayed], lastEventId });
        cursor = position;
      } else {
        // The snapshot above was read after all of them: a progress or status event among them
        // would show the client older state than the snapshot just did (67 %, then 25 % again).
        // Only a final event is sent, which ends the stream.
        for (const event of replayed) if (!LIVE_ONLY.has(event.name)) enqueue(event);
      }
      chain = chain.then(() => {
        if (compareStreamIds(cursor, position) < 0) cursor = position;
      });
    }
    onEvent = enqueue;
    for (const event of early) enqueue(event);
  };
}

interface Stream {
  readonly ended: boolean;
  send(event: string, data: unknown, id?: string): void;
  onClose(fn: () => void): void;
  end(opts?: { closeConnection?: boolean }): void;
}

export interface StreamOptions {
  heartbeatMs: number;
  retryMs: number;
  /**
   * Bytes left unsent (the socket refused them and Node buffers them) past which the client is
   * dropped: a client that does not read would otherwise grow this process' memory without bound.
   * It can reconnect with Last-Event-ID.
   */
  bufferBytes: number;
  /** Called when a slow client is dropped, with the bytes it left buffered. */
  onDrop?: (buffered: number) => void;
}

/**
 * Starts the SSE response: headers, the retry hint, heartbeats; `end` clears everything. Every write
 * respects backpressure: past `bufferBytes` unsent, the connection is destroyed.
 */
export function openStream(res: Response, { heartbeatMs, retryMs, bufferBytes, onDrop }: StreamOptions): Stream {
  res.status(200);
  res.set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    // nginx and some PaaS routers buffer responses unless told not to.
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  let ended = false;
  const write = (chunk: string) => {
    if (ended || res.writableEnded || res.destroyed) return;
    if (res.write(chunk) || res.writableLength <= bufferBytes) return;
    const buffered = res.writableLength;
    ended = true;
    clearInterval(heartbeat);
    // Destroyed, not ended: ending would wait to flush what the client does not read.
    res.destroy();
    onDrop?.(buffered);
  };
  const heartbeat = setInterval(() => write(': heartbeat\n\n'), heartbeatMs);
  const stream: Stream = {
    get ended() {
      return ended;
    },
    send(event, data, id) {
      write(`${id ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    onClose(fn) {
      res.once('close', fn);
    },
    end({ closeConnection = false } = {}) {
      if (ended) return;
      ended = true;
      clearInterval(heartbeat);
      if (!res.writableEnded) res.end();
      // On shutdown the connection goes too: server.close() waits for every open socket.
      if (closeConnection) res.socket?.destroySoon();
    },
  };
  write(`retry: ${retryMs}\n\n`);
  return stream;
}
