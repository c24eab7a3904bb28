import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { ApiError, ConnectionError, errorFromResponse } from './errors.ts';
import { FINAL_STATUSES, type JobEvent } from './types.ts';

export interface EventStreamOptions {
  url: string;
  headers: Record<string, string>;
  fetch: typeof fetch;
  /** Resume after this event id (sent as `Last-Event-ID`). */
  lastEventId?: string;
  signal?: AbortSignal;
  /** Wait before reconnecting; the server's `retry:` hint replaces it. @defaultValue 1000 */
  reconnectDelayMs?: number;
  /** Give up after this many reconnects in a row that deliver nothing. @defaultValue 5 */
  maxReconnects?: number;
}

const KNOWN = new Set(['snapshot', 'status', 'progress', ...FINAL_STATUSES]);

/** 4xx answers other than 429 will not change by retrying. */
function isPermanent(err: unknown): boolean {
  return err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Reads one job's Server-Sent Events, reconnecting with `Last-Event-ID` when the connection drops
 * before the final event (a restarted API replica, a proxy timeout). Ends after `completed`,
 * `failed` or `cancelled`. Each reconnect starts with a fresh `snapshot`.
 */
export async function* readJobEvents(opts: EventStreamOptions): AsyncGenerator<JobEvent> {
  const { url, headers, signal, maxReconnects = 5 } = opts;
  let lastEventId = opts.lastEventId;
  let delayMs = opts.reconnectDelayMs ?? 1_000;
  let failures = 0;

  while (!signal?.aborted) {
    let delivered = false;
    try {
      let res: Response;
      try {
        res = await opts.fetch(url, {
          headers: {
            ...headers,
            accept: 'text/event-stream',
            ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
          },
          signal,
        });
      } catch (err) {
        throw new ConnectionError(`could not reach ${new URL(url).origin}: ${(err as Error).message}`, { cause: err });
      }
      if (!res.ok) throw await errorFromResponse(res);
      if (!res.body) throw new ConnectionError('the event stream has no body');

      const pending: EventSourceMessage[] = [];
      const parser = createParser({
        onEvent: (message) => pending.push(message),
        onRetry: (ms) => {
          delayMs = ms;
        },
      });
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.feed(decoder.decode(value, { stream: true }));
          while (pending.length > 0) {
            const message = pending.shift() as EventSourceMessage;
            const type = message.event ?? 'message';
            if (!KNOWN.has(type)) continue;
            if (message.id) lastEventId = message.id;
            delivered = true;
            failures = 0;
            const event = { type, data: JSON.parse(message.data), ...(message.id ? { id: message.id } : {}) };
            yield event as JobEvent;
            if ((FINAL_STATUSES as readonly string[]).includes(type)) return;
          }
        }
      } finally {
        await reader.cancel().catch(() => undefined);
      }
      // The server closed the stream before a final event (it is shutting down): resume elsewhere.
    } catch (err) {
      if (signal?.aborted) return;
      if (isPermanent(err)) throw err;
      if (!delivered && ++failures > maxReconnects) throw err;
    }
    await sleep(delayMs, signal);
  }
}
