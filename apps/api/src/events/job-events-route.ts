import {
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
import { notFound } from '../http/http-error.ts';
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
}

/** Entries read per XRANGE while replaying after Last-Event-ID; the stream itself is capped by BullMQ. */
const REPLAY_BATCH = 500;
const REPLAY_MAX = 20_000;

const FINAL: readonly string[] = FINAL_STATUSES;

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
 * which the stream ends. Events carry the Redis stream id as their SSE id; a reconnect with
 * `Last-Event-ID` replays this job's events after that id that the (capped) stream still holds.
 */
export function jobEventsRoute(deps: JobEventsDeps): RequestHandler {
  const { hub, jobs, redis, layout, deadline, log, heartbeatMs, retryMs = 2_000 } = deps;
  const eventsKey = layout.events(QUEUES.analyses);

  /** The newest id in the events stream: everything after it is yet to come. */
  async function streamEnd(): Promise<string> {
    const [last] = (await redis.xrevrange(eventsKey, '+', '-', 'COUNT', 1)) as [string, string[]][];
    return last?.[0] ?? '0-0';
  }

  /** This job's events in (after, upTo], oldest first. */
  async function replay(jobId: string, after: string, upTo: string): Promise<QueueEvent[]> {
    const found: QueueEvent[] = [];
    let from = after;
    for (let read = 0; read < REPLAY_MAX; read += REPLAY_BATCH) {
      const batch = (await redis.xrange(eventsKey, `(${from}`, upTo, 'COUNT', REPLAY_BATCH)) as [string, string[]][];
      for (const entry of batch) {
        const event = parseEntry(entry);
        if (event?.jobId === jobId) found.push(event);
      }
      const last = batch.at(-1);
      if (!last || batch.length < REPLAY_BATCH) break;
      from = last[0];
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

    await deadline(hub.ready);
    // Subscribe before reading where the stream ends and the snapshot, and drop what the snapshot
    // already covers by stream id: nothing falls between the snapshot and the live events.
    const early: QueueEvent[] = [];
    let onEvent: (event: QueueEvent) => void = (event) => early.push(event);
    const unsubscribe = hub.subscribe(id, (event) => onEvent(event));
    let position: string;
    let view: JobView;
    try {
      position = await deadline(streamEnd());
      view = jobs.view(await deadline(jobs.snapshot(tenant, id)));
    } catch (err) {
      unsubscribe();
      throw err;
    }

    const stream = openStream(res, { heartbeatMs, retryMs });
    let startedMs = view.startedAt ? Date.parse(view.startedAt) : null;
    let cursor = position;
    let chain: Promise<void> = Promise.resolve();
    let unregister = () => {};
    const finish = () => {
      unsubscribe();
      unregister();
      stream.end();
    };
    stream.onClose(finish);
    unregister = hub.onClose(() => {
      unsubscribe();
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

    stream.send('snapshot', view);
    if (FINAL.includes(view.status)) {
      // Already over: the final event too, for clients that only listen for it, then the end.
      stream.send(view.status, view);
      finish();
      return;
    }
    if (lastEventId && compareStreamIds(lastEventId, position) < 0) {
      cursor = lastEventId;
      try {
        for (const event of await deadline(replay(id, lastEventId, position))) enqueue(event);
      } catch (err) {
        log.warn({ err, jobId: id }, 'Last-Event-ID replay failed; continuing from the snapshot');
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

/** Starts the SSE response: headers, the retry hint, heartbeats; `end` clears everything. */
function openStream(res: Response, { heartbeatMs, retryMs }: { heartbeatMs: number; retryMs: number }): Stream {
  res.status(200);
  res.set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    // nginx and some PaaS routers buffer responses unless told not to.
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  res.write(`retry: ${retryMs}\n\n`);
  let ended = false;
  const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
  const stream: Stream = {
    get ended() {
      return ended;
    },
    send(event, data, id) {
      if (ended) return;
      res.write(`${id ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
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
  return stream;
}
