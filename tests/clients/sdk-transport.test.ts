import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConnectionError,
  createClient,
  type JobEvent,
  type JobView,
  LonghaulError,
  NotFoundError,
  UnexpectedResponseError,
} from '../../packages/client/src/index.ts';

/**
 * The SDK against what stands between it and the API in real deployments, or instead of it: a
 * proxy or a web app answering 200 with a page, a stream that ends at once, a server that never
 * answers, nothing listening. Each is a real HTTP server on a free port; no Redis is involved.
 */

const KEY = 'transport-key-0123456789';
const servers: Server[] = [];

/** An HTTP server on a free port, answering with `handle`; closed after the test. */
async function serve(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handle);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const HTML = '<!doctype html><html><body>the web app</body></html>';
const page = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(HTML);
const json = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

function view(status: JobView['status'], percent: number | null = null): JobView {
  return {
    id: 'job_01ARZ3NDEKTSV4RRFFQ69G5FAV',
    type: 'simulate',
    status,
    progress: percent === null ? null : { percent, step: 'running' },
    attempts: { made: 1, max: 3 },
    priority: 500,
    createdAt: new Date(0).toISOString(),
    startedAt: null,
    finishedAt: null,
    expiresAt: null,
    etaSeconds: null,
    error: null,
  } as JobView;
}
const JOB = view('active').id;

/**
 * A stand-in for a stream route that would answer forever with something that is not an event
 * stream: after `limit` requests it answers 404, so a client that keeps reconnecting fails the test
 * instead of hanging it.
 */
function boundedStream(limit: number, answer: (res: ServerResponse) => void) {
  let requests = 0;
  return {
    requests: () => requests,
    handle(res: ServerResponse) {
      requests++;
      if (requests > limit) json(res, 404, { error: { code: 'not_found', message: 'gave up reconnecting' } });
      else answer(res);
    },
  };
}

describe('the SDK against servers that are not (or not quite) the longhaul API', () => {
  it('when a 2xx answer is not JSON, then the client throws an UnexpectedResponseError naming the server and the content type', async () => {
    const base = await serve((_req, res) => page(res));
    const err = await createClient({ baseUrl: base, apiKey: KEY })
      .get(JOB)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnexpectedResponseError);
    // Of the documented family: a ConnectionError (the API itself was not reached), so a LonghaulError.
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toBeInstanceOf(LonghaulError);
    expect(err).toMatchObject({ status: 200, contentType: 'text/html; charset=utf-8' });
    expect((err as Error).message).toBe(
      `the server at ${base} is not a longhaul API: GET /v1/jobs/${JOB} answered 200 text/html; charset=utf-8, expected JSON`,
    );
  });

  it('when the events route answers 200 with a page, then events() throws an UnexpectedResponseError at once, without reconnecting', async () => {
    const stream = boundedStream(10, page);
    const base = await serve((_req, res) => stream.handle(res));
    const client = createClient({ baseUrl: base, apiKey: KEY });
    const err = await (async () => {
      for await (const _ of client.events(JOB)) {
        // nothing comes
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnexpectedResponseError);
    expect((err as Error).message).toMatch(/expected text\/event-stream/);
    expect(stream.requests()).toBe(1);
  });

  it('when event streams end without an event, then events() gives up after maxReconnects with a ConnectionError', async () => {
    // An event stream in name only: the retry hint (so the test reconnects at once), then the end.
    const stream = boundedStream(20, (res) =>
      res.writeHead(200, { 'content-type': 'text/event-stream' }).end('retry: 1\n\n'),
    );
    const base = await serve((_req, res) => stream.handle(res));
    const client = createClient({ baseUrl: base, apiKey: KEY });
    const err = await (async () => {
      for await (const _ of client.events(JOB, { maxReconnects: 3 })) {
        // nothing comes
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toMatch(/ended without an event/);
    expect(stream.requests()).toBe(4);
  });

  it('when the event stream cannot be had (a page instead), then waitFor() falls back to polling and resolves with the final view', async () => {
    const stream = boundedStream(10, page);
    let polls = 0;
    const base = await serve((req, res) => {
      if (req.url?.endsWith('/events')) return stream.handle(res);
      polls++;
      json(res, 200, polls < 3 ? view('active', 50) : view('completed', 100));
    });
    const seen: JobEvent['type'][] = [];
    const final = await createClient({ baseUrl: base, apiKey: KEY }).waitFor(JOB, {
      pollIntervalMs: 10,
      onEvent: (e) => seen.push(e.type),
    });
    expect(final.status).toBe('completed');
    expect(stream.requests()).toBe(1);
    expect(seen).toEqual(['snapshot', 'snapshot', 'snapshot']);
  });

  it('when the server sends a reset after the snapshot, then events() yields it with its reason', async () => {
    const base = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const send = (event: string, data: unknown, id?: string) =>
        res.write(`${id ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      send('snapshot', view('active', 40), '5-0');
      send('reset', { id: JOB, reason: 'trimmed', message: 'no longer kept', lastEventId: '1-0' });
      send('completed', view('completed', 100), '6-0');
      res.end();
    });
    const events: JobEvent[] = [];
    for await (const event of createClient({ baseUrl: base, apiKey: KEY }).events(JOB, { lastEventId: '1-0' }))
      events.push(event);
    expect(events.map((e) => e.type)).toEqual(['snapshot', 'reset', 'completed']);
    expect(events[1]).toEqual({
      type: 'reset',
      data: { id: JOB, reason: 'trimmed', message: 'no longer kept', lastEventId: '1-0' },
    });
  });

  it("when the caller aborts a request, then it rejects with the signal's reason, not a ConnectionError", async () => {
    // Never answers: only the abort ends the request.
    const base = await serve(() => undefined);
    const client = createClient({ baseUrl: base, apiKey: KEY });

    const plain = new AbortController();
    const submitted = client.submit('simulate', { durationMs: 10 }, { signal: plain.signal }).catch((e: unknown) => e);
    plain.abort();
    const err = await submitted;
    expect(err).not.toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ name: 'AbortError' });

    const withReason = new AbortController();
    const reason = new Error('the user navigated away');
    const again = client.submit('simulate', { durationMs: 10 }, { signal: withReason.signal }).catch((e: unknown) => e);
    withReason.abort(reason);
    expect(await again).toBe(reason);
  });

  it('when the server does not answer within timeoutMs, then it is still a ConnectionError that says so', async () => {
    const base = await serve(() => undefined);
    const err = await createClient({ baseUrl: base, apiKey: KEY, timeoutMs: 50 })
      .get(JOB)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toMatch(/no answer within 50 ms/);
  });

  it('when waitFor() is aborted, then it rejects with the AbortError', async () => {
    const base = await serve((_req, res) => {
      // A stream that stays open with the job running.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: snapshot\ndata: ${JSON.stringify(view('active', 10))}\n\n`);
    });
    const abort = new AbortController();
    const waiting = createClient({ baseUrl: base, apiKey: KEY })
      .waitFor(JOB, { signal: abort.signal, onEvent: () => abort.abort() })
      .catch((e: unknown) => e);
    expect(await waiting).toMatchObject({ name: 'AbortError' });
  });

  it('when nothing listens at baseUrl, then the ConnectionError says why (ECONNREFUSED), not only "fetch failed"', async () => {
    const base = await serve(() => undefined);
    const server = servers.pop() as Server;
    await new Promise((resolve) => server.close(resolve));
    const err = await createClient({ baseUrl: base, apiKey: KEY })
      .get(JOB)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toMatch(/ECONNREFUSED 127\.0\.0\.1:\d+/);

    const streamErr = await (async () => {
      for await (const _ of createClient({ baseUrl: base, apiKey: KEY }).events(JOB, { maxReconnects: 0 })) {
        // nothing comes
      }
    })().catch((e: unknown) => e);
    expect((streamErr as Error).message).toMatch(/ECONNREFUSED/);
  });
});

// The not-found stand-in above must stay a typed 404, or a test that reconnects forever would pass.
describe('the bounded stream stand-in', () => {
  it('when it has answered its limit, then the SDK sees a NotFoundError', async () => {
    const stream = boundedStream(0, page);
    const base = await serve((_req, res) => stream.handle(res));
    await expect(
      (async () => {
        for await (const _ of createClient({ baseUrl: base, apiKey: KEY }).events(JOB)) {
          // nothing comes
        }
      })(),
    ).rejects.toBeInstanceOf(NotFoundError);
  });
});
