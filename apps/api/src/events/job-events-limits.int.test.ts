import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import type { JobData } from '@longhaul/shared';
import { Job, type Queue } from 'bullmq';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSse, type SseConnection } from '../../../../tests/clients/sse-reader.ts';
import { api } from '../../../../tests/support/http.ts';
import { uniquePrefix } from '../../../../tests/support/redis.ts';
import { waitFor } from '../../../../tests/support/wait.ts';
import { startEventsApp } from './events-test-app.ts';
import type { JobEventHub } from './job-event-hub.ts';
import { openStream } from './job-events-route.ts';

const KEY_A = 'sse-limits-a-key-0123456789';
const KEY_B = 'sse-limits-b-key-0123456789';

describe('event stream limits, bounded replay and slow clients, against a real Redis', () => {
  const prefix = uniquePrefix();
  let queue: Queue<JobData>;
  let hub: JobEventHub;
  let base: string;
  const open: SseConnection[] = [];

  let app: Awaited<ReturnType<typeof startEventsApp>>;

  beforeAll(async () => {
    app = await startEventsApp(
      prefix,
      { a: KEY_A, b: KEY_B },
      {
        EVENTS_MAX_STREAMS_PER_TENANT: '2',
        EVENTS_MAX_STREAMS: '3',
        EVENTS_REPLAY_MAX: '5',
      },
    );
    ({ queue, hub, base } = app);
  });

  afterAll(async () => {
    for (const sse of open) sse.close();
    await app.close();
  });

  const submit = async (key = KEY_A) => {
    const res = await api(base, key).post('/v1/jobs', { type: 'simulate', input: { durationMs: 10 } });
    expect(res.status).toBe(202);
    return res.body.id as string;
  };
  const progress = async (id: string, percent: number) => {
    const job = await Job.fromId(queue, id);
    await job?.updateProgress({ percent, step: 'running' });
  };
  const stream = async (id: string, key = KEY_A, lastEventId?: string) => {
    const sse = await openSse(`${base}/v1/jobs/${id}/events`, key, lastEventId ? { lastEventId } : {});
    open.push(sse);
    return sse;
  };

  it('when a tenant or the process is at its stream limit, then a new stream answers 429 with Retry-After, and a closed stream frees its place', async () => {
    const a = await submit(KEY_A);
    const b = await submit(KEY_B);
    const [a1, a2] = [await stream(a), await stream(a)];
    expect([a1.status, a2.status]).toEqual([200, 200]);
    const a3 = await stream(a);
    expect(a3.status).toBe(429);
    expect(a3.headers.get('retry-after')).toBeTruthy();
    expect(await a3.next()).toBeNull();

    const b1 = await stream(b, KEY_B);
    expect(b1.status).toBe(200);
    // Tenant b is under its own limit, but the process holds EVENTS_MAX_STREAMS (3).
    const b2 = await fetch(`${base}/v1/jobs/${b}/events`, { headers: { authorization: `Bearer ${KEY_B}` } });
    expect(b2.status).toBe(429);
    expect(b2.headers.get('retry-after')).toBeTruthy();
    expect(((await b2.json()) as { error: { code: string } }).error.code).toBe('too_many_streams');

    a1.close();
    const again = await waitFor(
      async () => {
        const res = await stream(a);
        if (res.status === 200) return res;
        res.close();
        return undefined;
      },
      { timeoutMs: 5_000, what: "the closed stream's place to be freed" },
    );
    expect((await again.next())?.event).toBe('snapshot');
    for (const sse of [a2, again, b1]) sse.close();
    await waitFor(() => hub.stats().streams === 0, { timeoutMs: 5_000, what: 'every stream to close' });
  });

  it('when Last-Event-ID is older than the first entry the events stream keeps, then the client gets the snapshot and a reset event saying so', async () => {
    const id = await submit();
    const sse = await stream(id, KEY_A, '0-0');
    expect((await sse.next())?.event).toBe('snapshot');
    const reset = await sse.next();
    expect(reset?.event).toBe('reset');
    expect(reset?.data).toMatchObject({ id, reason: 'trimmed', lastEventId: '0-0' });
    // Live events still follow.
    await progress(id, 60);
    expect((await sse.next())?.data.progress.percent).toBe(60);
    sse.close();
  });

  it('when more entries than EVENTS_REPLAY_MAX lie after Last-Event-ID, then the client gets a reset event instead of a silent gap', async () => {
    const id = await submit();
    const other = await submit();
    const first = await stream(id);
    expect((await first.next())?.event).toBe('snapshot');
    await progress(id, 10);
    const e10 = await first.next();
    first.close();
    for (let p = 1; p <= 8; p++) await progress(other, p);
    await progress(id, 20);

    const resumed = await stream(id, KEY_A, e10?.id);
    expect((await resumed.next())?.event).toBe('snapshot');
    const reset = await resumed.next();
    expect(reset?.event).toBe('reset');
    expect(reset?.data.reason).toBe('too_far_behind');
    resumed.close();
  });

  it('when few entries lie after Last-Event-ID, then the snapshot covers them and none of them is sent again', async () => {
    const id = await submit();
    const first = await stream(id);
    expect((await first.next())?.event).toBe('snapshot');
    await progress(id, 10);
    const e10 = await first.next();
    first.close();
    await progress(id, 20);
    await progress(id, 30);
    const resumed = await stream(id, KEY_A, e10?.id);
    expect(await resumed.next()).toMatchObject({ event: 'snapshot', data: { progress: { percent: 30 } } });
    await progress(id, 40);
    expect((await resumed.next())?.data.progress.percent).toBe(40);
    resumed.close();
  });
});

describe('openStream backpressure, over a real socket', () => {
  it('when a client stops reading and the unsent bytes pass the bound, then the connection is dropped', async () => {
    let dropped: number | undefined;
    let closed = false;
    let sent = 0;
    const app = express().get('/', (_req, res) => {
      const stream = openStream(res, {
        heartbeatMs: 60_000,
        retryMs: 1000,
        bufferBytes: 64 * 1024,
        onDrop: (buffered) => {
          dropped = buffered;
        },
      });
      res.once('close', () => {
        closed = true;
      });
      const chunk = 'x'.repeat(64 * 1024);
      // Far more than the socket buffers hold: the writes past them are what the bound is for.
      const pump = () => {
        for (let i = 0; i < 16 && !stream.ended; i++, sent++) stream.send('progress', chunk);
        if (!stream.ended && sent < 4096) setImmediate(pump);
      };
      pump();
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const port = (server.address() as AddressInfo).port;
    const socket = connect(port, '127.0.0.1');
    try {
      socket.write('GET / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
      socket.once('data', () => socket.pause());
      await waitFor(() => closed, { timeoutMs: 20_000, what: 'the slow client to be dropped' });
      expect(dropped).toBeGreaterThan(64 * 1024);
      expect(sent).toBeLessThan(4096);
    } finally {
      socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
