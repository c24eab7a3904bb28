import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { ApiError, ConnectionError, errorFromResponse, UnexpectedResponseError } from './errors.ts';
import { describeFetchFailure } from './fetch-failure.ts';
import { sleep } from './sleep.ts';
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

const KNOWN = new Set(['snapshot', 'status', 'progress', 'reset', ...FINAL_STATUSES]);

/**
 * 4xx answers other than 429 will not change by retrying, nor will an answer that is not an event
 * stream at all (a proxy's or a web app's page).
 */
function isPermanent(err: unknown): boolean {
  if (err instanceof UnexpectedResponseError) return true;
  return err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429;
}

/** An event's data, which the API always sends as JSON. */
function parseData(message: EventSourceMessage, res: Response, contentType: string): unknown {
  try {
    return JSON.parse(message.data);
  } catch (err) {
    throw new UnexpectedResponseError(
      `the event stream sent a ${message.event ?? 'message'} event whose data is not JSON`,
      res.status,
      contentType,
      { cause: err },
    );
  }
}

/**
 * Reads one job's Server-Sent Events, reconnecting with `Last-Event-ID` when the connection drops
 * before the final event (a restarted API replica, a proxy timeout). Ends after `completed`,
 * `failed` or `cancelled`. Each reconnect starts with a fresh `snapshot`. Gives up after
 * `maxReconnects` attempts in a row that bring no event (refused, dropped, or ended empty), and at
 * once on an answer that will not change: a 4xx other than 429, or a 2xx that is not an event stream.
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
        throw new ConnectionError(`could not reach ${new URL(url).origin}: ${describeFetchFailure(err)}`, {
          cause: err,
        });
      }
      if (!res.ok) throw await errorFromResponse(res);
      const contentType = res.headers.get('content-type');
      if (!contentType?.startsWith('text/event-stream')) {
        await res.body?.cancel().catch(() => undefined);
        throw new UnexpectedResponseError(
          `the event stream cannot be had from ${new URL(url).origin}: it answered ${res.status} ${contentType ?? 'without a content type'}, expected text/event-stream`,
          res.status,
          contentType,
        );
      }
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
            const data = parseData(message, res, contentType);
            if (message.id) lastEventId = message.id;
            delivered = true;
            failures = 0;
            yield { type, data, ...(message.id ? { id: message.id } : {}) } as JobEvent;
            if ((FINAL_STATUSES as readonly string[]).includes(type)) return;
          }
        }
      } finally {
        await reader.cancel().catch(() => undefined);
      }
      // The server closed the stream before a final event (it is shutting down): resume elsewhere.
      // A stream that ends without a single event is a failed attempt, or something that is not
      // the API (a buffering proxy) would have us reconnect forever.
      if (!delivered) throw new ConnectionError(`the event stream from ${new URL(url).origin} ended without an event`);
    } catch (err) {
      if (signal?.aborted) return;
      if (isPermanent(err)) throw err;
      if (!delivered && ++failures > maxReconnects) throw err;
    }
    await sleep(delayMs, signal);
  }
}
