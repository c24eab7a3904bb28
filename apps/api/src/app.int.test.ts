import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createLogger,
  createRedisConnection,
  isIndexed,
  layoutFor,
  loadConfig,
  OWN_FIELDS,
  type RedisConnection,
} from '@longhaul/shared';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix, watchCommands } from '../../../tests/support/redis.ts';
import { startRedisServer } from '../../../tests/support/redis-server.ts';
import { createApp } from './app.ts';
import { createApiServices } from './services.ts';

const A = 'Bearer tenant-a-key-0123456789';
const B = 'Bearer tenant-b-key-0123456789';
const sim = (input: object = {}) => ({ type: 'simulate', input: { durationMs: 10, ...input } });

function build(url: string, prefix: string, extra: Record<string, string> = {}) {
  const config = loadConfig(
    {
      REDIS_URL: url,
      API_KEYS: 'a:tenant-a-key-0123456789,b:tenant-b-key-0123456789',
      QUEUE_PREFIX: prefix,
      BODY_LIMIT_BYTES: '4096',
      ...extra,
    },
    'api',
  );
  const redis = createRedisConnection(url, 'producer', { commandTimeoutMs: 300 });
  redis.on('error', () => undefined);
  const log = createLogger({ name: 't', level: 'silent', pretty: false });
  const services = createApiServices({ config, log, redis });
  const app = createApp({ config, log, redis, ...services });
  return { app, redis, services, config };
}

describe('the HTTP API against a real Redis (no worker)', () => {
  const prefix = uniquePrefix();
  let ctx: ReturnType<typeof build>;
  let redis: RedisConnection;

  beforeAll(async () => {
    ctx = build(redisUrl(), prefix);
    redis = ctx.redis;
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  });
  afterAll(async () => {
    await ctx.services.close();
    await redis.quit().catch(() => redis.disconnect());
    await cleanupPrefix(redisUrl(), prefix);
  });

  const submit = (body: unknown, auth = A) =>
    request(ctx.app)
      .post('/v1/jobs')
      .set('Authorization', auth)
      .send(body as object);

  it('when no key or a wrong key is sent, then it answers 401 with the error body', async () => {
    const none = await request(ctx.app).get('/v1/jobs');
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('unauthorized');
    expect(none.headers['x-request-id']).toBeTruthy();
    const wrong = await request(ctx.app).get('/v1/jobs').set('Authorization', 'Bearer not-a-real-key-000000');
    expect(wrong.status).toBe(401);
  });

  it('when a job is submitted, then it answers 202 with the job view and a Location', async () => {
    const res = await submit(sim());
    expect(res.status).toBe(202);
    expect(res.headers.location).toBe(`/v1/jobs/${res.body.id}`);
    expect(res.body).toMatchObject({ type: 'simulate', status: 'queued', attempts: { made: 0, max: 3 }, error: null });
    expect(res.body.id).toMatch(/^job_[0-9A-Z]{26}$/);
    const get = await request(ctx.app)
      .get(res.headers.location ?? '')
      .set('Authorization', A);
    expect(get.status).toBe(200);
    expect(get.body.id).toBe(res.body.id);
    expect(get.body.createdAt).toBe(res.body.createdAt);
  });

  it('when jobs are submitted at once, then each 202 shows the createdAt that later reads show', async () => {
    const accepted = await Promise.all(Array.from({ length: 20 }, () => submit(sim())));
    for (const res of accepted) {
      expect(res.status).toBe(202);
      const get = await request(ctx.app).get(`/v1/jobs/${res.body.id}`).set('Authorization', A);
      expect(get.body.createdAt, res.body.id).toBe(res.body.createdAt);
    }
  });

  it('when the type is unknown, then it answers 400 naming the known analyses', async () => {
    const res = await submit({ type: 'nope', input: {} });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('unknown_analysis');
    expect(res.body.error.details.known).toContain('simulate');
  });

  it('when the input breaks the schema, then it answers 400 with field-level details', async () => {
    const res = await submit(sim({ durationMs: -5, steps: 'many' }));
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    const paths = res.body.error.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['input.durationMs', 'input.steps']));
  });

  it('when a field is missing or unknown, or a query parameter unknown, then the 400 names it in words', async () => {
    const missing = await submit({ type: 'simulate' });
    expect(missing.status).toBe(400);
    expect(missing.body.error.details).toEqual([{ path: 'input', message: 'required' }]);
    const noType = await submit({ input: {} });
    expect(noType.body.error.details).toEqual([{ path: 'type', message: 'required (string)' }]);
    const unknown = await submit({ ...sim(), colour: 'red', size: 2 });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.details).toEqual([
      { path: 'colour', message: 'not a field of this request' },
      { path: 'size', message: 'not a field of this request' },
    ]);
    const query = await request(ctx.app).get('/v1/jobs?foo=1').set('Authorization', A);
    expect(query.status).toBe(400);
    expect(query.body.error.details).toEqual([{ path: 'foo', message: 'not a parameter of this route' }]);
  });

  it('when the Idempotency-Key header is sent twice, then it answers 400 saying to send one', async () => {
    // Two header lines, as a proxy that appends its own would send them (Node keeps them apart).
    const server = ctx.app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const { status, body } = await new Promise<{ status: number; body: { error: { message: string } } }>(
      (resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v1/jobs' }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => {
            text += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        });
        req.setHeader('authorization', A);
        req.setHeader('content-type', 'application/json');
        req.setHeader('idempotency-key', ['key-one', 'key-two']);
        req.on('error', reject);
        req.end(JSON.stringify(sim()));
      },
    );
    server.close();
    expect(status).toBe(400);
    expect(body.error.message).toBe('send one Idempotency-Key header, not several');
    // The same keys joined in one header line (as fetch joins them) are told the same.
    const joined = await request(ctx.app)
      .post('/v1/jobs')
      .set('Authorization', A)
      .set('Idempotency-Key', 'key-one, key-two')
      .send(sim() as object);
    expect(joined.status).toBe(400);
    expect(joined.body.error.message).toBe('send one Idempotency-Key header, not several');
  });

  it('when the body is not JSON or not an object, then it answers 400 saying which; when not sent as JSON, 415', async () => {
    const bad = await request(ctx.app)
      .post('/v1/jobs')
      .set('Authorization', A)
      .set('Content-Type', 'application/json')
      .send('{"type":');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'bad_request', message: 'the body is not valid JSON' });
    for (const body of ['null', '5', '"job"']) {
      const notObject = await request(ctx.app)
        .post('/v1/jobs')
        .set('Authorization', A)
        .set('Content-Type', 'application/json')
        .send(body);
      expect(notObject.status).toBe(400);
      expect(notObject.body.error).toMatchObject({ code: 'bad_request', message: 'the body must be a JSON object' });
    }
    const text = await request(ctx.app)
      .post('/v1/jobs')
      .set('Authorization', A)
      .set('Content-Type', 'text/plain')
      .send('hi');
    expect(text.status).toBe(415);
  });

  it('when the body is over the limit, then it answers 413', async () => {
    const res = await submit({ ...sim(), pad: 'x'.repeat(10_000) });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
  });

  it('when an Idempotency-Key is replayed, then it answers 200 with the same job; with another body, 409', async () => {
    const key = `idem-${Date.now()}`;
    const first = await submit(sim()).set('Idempotency-Key', key);
    expect(first.status).toBe(202);
    const again = await submit(sim()).set('Idempotency-Key', key);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const other = await submit(sim({ durationMs: 99 })).set('Idempotency-Key', key);
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('idempotency_conflict');
    // The same key is another tenant's own: no clash.
    const b = await submit(sim(), B).set('Idempotency-Key', key);
    expect(b.status).toBe(202);
    expect(b.body.id).not.toBe(first.body.id);
  });

  it("when a tenant asks for another tenant's job, then every route answers 404 as for a missing one", async () => {
    const { body } = await submit(sim());
    for (const [method, path] of [
      ['get', `/v1/jobs/${body.id}`],
      ['get', `/v1/jobs/${body.id}/result`],
      ['delete', `/v1/jobs/${body.id}`],
    ] as const) {
      const res = await request(ctx.app)[method](path).set('Authorization', B);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    }
    const list = await request(ctx.app).get('/v1/jobs?limit=100').set('Authorization', B);
    expect(list.body.jobs.map((j: { id: string }) => j.id)).not.toContain(body.id);
  });

  it('when an id is malformed or unknown, then it answers 404 without touching Redis data', async () => {
    for (const id of ['..%2F..%2Fetc', 'job_%00', 'a:b', 'x'.repeat(10_000), 'job_01J00000000000000000000000']) {
      const res = await request(ctx.app).get(`/v1/jobs/${id}`).set('Authorization', A);
      expect([400, 404]).toContain(res.status);
    }
  });

  it('when the result of an unfinished job is asked, then it answers 409 with the job view', async () => {
    const { body } = await submit(sim());
    const res = await request(ctx.app).get(`/v1/jobs/${body.id}/result`).set('Authorization', A);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('not_completed');
    expect(res.body.error.details.status).toBe('queued');
  });

  it('when a queued job is cancelled, then it shows cancelled and waits at the head of the queue to be drained; a second cancel answers 409', async () => {
    const { body } = await submit(sim());
    const res = await request(ctx.app).delete(`/v1/jobs/${body.id}`).set('Authorization', A);
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('cancelled');
    expect(res.body.error.code).toBe('cancelled');
    // Moved from the prioritized set to the wait list, which workers serve first.
    expect(await redis.lpos(ctx.services.store.layout.wait('analyses'), body.id)).not.toBeNull();
    const again = await request(ctx.app).delete(`/v1/jobs/${body.id}`).set('Authorization', A);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('already_finished');
    // Its result will never come: the answer does not say "yet".
    const result = await request(ctx.app).get(`/v1/jobs/${body.id}/result`).set('Authorization', A);
    expect(result.status).toBe(409);
    expect(result.body.error).toMatchObject({
      code: 'not_completed',
      message: 'the job was cancelled; it has no result',
    });
  });

  it('when retention has removed a job, then its id answers 410 from the tombstone', async () => {
    const { body } = await submit(sim());
    await ctx.services.queue.remove(body.id);
    const res = await request(ctx.app).get(`/v1/jobs/${body.id}`).set('Authorization', A);
    expect(res.status).toBe(410);
    expect(res.body.error.code).toBe('gone');
    // Another tenant still gets 404: the tombstone is the owner's index entry.
    const other = await request(ctx.app).get(`/v1/jobs/${body.id}`).set('Authorization', B);
    expect(other.status).toBe(404);
  });

  it('when the Idempotency-Key of a removed job is replayed, then it answers 410 and adds no job', async () => {
    const key = `idem-gone-${Date.now()}`;
    const first = await submit(sim()).set('Idempotency-Key', key);
    expect(first.status).toBe(202);
    await ctx.services.queue.remove(first.body.id);
    const again = await submit(sim()).set('Idempotency-Key', key);
    expect(again.status).toBe(410);
    expect(await ctx.services.queue.getJob(first.body.id)).toBeUndefined();
  });

  it('when the Idempotency-Key of a cancelled delayed job is replayed, then it answers 200 cancelled and the job is not re-added', async () => {
    const key = `idem-cancel-${Date.now()}`;
    const first = await submit({ ...sim(), delayMs: 60_000 }).set('Idempotency-Key', key);
    expect(first.body.status).toBe('delayed');
    await request(ctx.app).delete(`/v1/jobs/${first.body.id}`).set('Authorization', A).expect(202);
    const again = await submit({ ...sim(), delayMs: 60_000 }).set('Idempotency-Key', key);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('cancelled');
    expect(await redis.zscore(ctx.services.store.layout.delayed('analyses'), first.body.id)).toBeNull();
  });

  it('when a job is delayed, then it shows delayed', async () => {
    const res = await submit({ ...sim(), delayMs: 60_000, priority: 3 });
    expect(res.body.status).toBe('delayed');
    expect(res.body.priority).toBe(3);
  });

  it("when listing, then the tenant's jobs come newest first, paged with a cursor, filtered by status", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submit(sim(), B)).body.id);
    const page1 = await request(ctx.app).get('/v1/jobs?limit=3&status=queued').set('Authorization', B);
    expect(page1.status).toBe(200);
    expect(page1.body.jobs.map((j: { id: string }) => j.id)).toEqual(ids.slice(-3).reverse());
    const page2 = await request(ctx.app)
      .get(`/v1/jobs?limit=3&status=queued&cursor=${page1.body.nextCursor}`)
      .set('Authorization', B);
    expect(page2.body.jobs.map((j: { id: string }) => j.id)).toEqual(expect.arrayContaining(ids.slice(0, 2).reverse()));
    const bad = await request(ctx.app).get('/v1/jobs?status=weird').set('Authorization', B);
    expect(bad.status).toBe(400);
    // A parameter given twice is named, not read as a number that is not one.
    const twice = await request(ctx.app).get('/v1/jobs?limit=1&limit=2&status=queued').set('Authorization', B);
    expect(twice.status).toBe(400);
    expect(twice.body.error.details).toEqual([{ path: 'limit', message: 'given more than once: give it once' }]);
    const word = await request(ctx.app).get('/v1/jobs?limit=ten').set('Authorization', B);
    expect(word.status).toBe(400);
    expect(word.body.error.details).toEqual([{ path: 'limit', message: 'must be a whole number from 1 to 100' }]);
  });

  it('when the analyses are listed, then each has its input JSON Schema', async () => {
    const res = await request(ctx.app).get('/v1/analyses').set('Authorization', A);
    expect(res.status).toBe(200);
    const simulate = res.body.analyses.find((a: { name: string }) => a.name === 'simulate');
    expect(simulate.input.properties.durationMs.type).toBe('integer');
  });

  it('when Redis answers, then /readyz and /healthz answer 200', async () => {
    expect((await request(ctx.app).get('/healthz')).status).toBe(200);
    const ready = await request(ctx.app).get('/readyz');
    expect(ready.status).toBe(200);
    // Anonymous: the status alone (the checks are for the metrics token holder).
    expect(ready.body).toEqual({ status: 'ready' });
  });

  it('when a route answers with an error, then its duration is labelled by its whole template, as a success is', async () => {
    const get = (path: string) => request(ctx.app).get(path).set('Authorization', A);
    expect((await get('/v1/jobs/job_00000000000000000000000000')).status).toBe(404);
    expect((await get('/v1/schedules/sch_00000000000000000000000000')).status).toBe(404);
    expect((await get('/v1/jobs?limit=0')).status).toBe(400);
    expect((await submit({ type: 'simulate' })).status).toBe(400);
    const job = await submit(sim());
    expect((await get(`/v1/jobs/${job.body.id}`)).status).toBe(200);

    const text = (await request(ctx.app).get('/metrics')).text;
    const counted = (method: string, route: string, status: number) =>
      text.includes(`method="${method}",route="${route}",status="${status}"}`);
    expect(counted('GET', '/v1/jobs/:id', 404)).toBe(true);
    expect(counted('GET', '/v1/schedules/:id', 404)).toBe(true);
    expect(counted('GET', '/v1/jobs', 400)).toBe(true);
    expect(counted('POST', '/v1/jobs', 400)).toBe(true);
    expect(counted('GET', '/v1/jobs/:id', 200)).toBe(true);
    // Before, a failed route lost its mount path: /v1/jobs/:id and /v1/schedules/:id both read `/:id`.
    expect(text).not.toMatch(/route="\/(:id)?"/);
  });
});

describe('the HTTP API with a submit rate limit', () => {
  it('when a tenant passes its submit rate, then it gets 429 with Retry-After and RateLimit headers, counted in the admission; another tenant does not', async () => {
    const prefix = uniquePrefix();
    const ctx = build(redisUrl(), prefix, { RATE_LIMIT_PER_MINUTE: '2' });
    if (ctx.redis.status !== 'ready') await new Promise((resolve) => ctx.redis.once('ready', resolve));
    try {
      const send = (auth: string) => request(ctx.app).post('/v1/jobs').set('Authorization', auth).send(sim());
      const first = await send(A);
      expect(first.status).toBe(202);
      expect(first.headers['ratelimit-policy']).toBe('2;w=60');
      expect(first.headers.ratelimit).toMatch(/^limit=2, remaining=1, reset=\d+$/);
      expect((await send(A)).status).toBe(202);
      const refused = await send(A);
      expect(refused.status).toBe(429);
      expect(refused.body.error.code).toBe('rate_limited');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(refused.headers.ratelimit).toMatch(/remaining=0/);
      expect((await send(B)).status).toBe(202);
    } finally {
      await ctx.services.close();
      await ctx.redis.quit().catch(() => ctx.redis.disconnect());
      await cleanupPrefix(redisUrl(), prefix);
    }
  });
  it("when a tenant submits within its window, then one counter holds the count and the window's end: set once with its expiry, then only counted, never reported to end before it does", async () => {
    const prefix = uniquePrefix();
    const ctx = build(redisUrl(), prefix, { RATE_LIMIT_PER_MINUTE: '5' });
    if (ctx.redis.status !== 'ready') await new Promise((resolve) => ctx.redis.once('ready', resolve));
    const key = layoutFor(prefix).rate('a');
    const reset = (res: { headers: Record<string, string> }) =>
      Number(/reset=(\d+)/.exec(res.headers.ratelimit ?? '')?.[1]);
    try {
      const send = () => request(ctx.app).post('/v1/jobs').set('Authorization', A).send(sim());
      const watch = await watchCommands(redisUrl(), prefix);
      const first = await send();
      const second = await send();
      const commands = (await watch.stop()).filter(([, k]) => k === key).map(([name]) => name);
      // The window's first submission opens it; the next one costs one command, with no PTTL.
      expect(commands).toEqual(['INCR', 'SET', 'INCR']);
      expect(first.headers.ratelimit).toMatch(/^limit=5, remaining=4, reset=60$/);
      expect(second.headers.ratelimit).toMatch(/^limit=5, remaining=3, reset=\d+$/);
      const left = await ctx.redis.pttl(key);
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThanOrEqual(60_000);
      // Reported to the second, rounded up: never before the key expires, never past a window.
      expect(reset(second)).toBeGreaterThanOrEqual(Math.ceil(left / 1000));
      expect(reset(second)).toBeLessThanOrEqual(60);

      // A counter that lost its expiry, its window long over, starts a new window.
      await ctx.redis.set(key, String(2 ** 23 + 5));
      const after = await send();
      expect(after.status).toBe(202);
      expect(after.headers.ratelimit).toMatch(/^limit=5, remaining=4, reset=60$/);
      expect(await ctx.redis.pttl(key)).toBeGreaterThan(0);
    } finally {
      await ctx.services.close();
      await ctx.redis.quit().catch(() => ctx.redis.disconnect());
      await cleanupPrefix(redisUrl(), prefix);
    }
  });
});

describe('the HTTP API on a Redis that forgets its scripts (a redis-server of its own)', () => {
  it('when Redis flushes its scripts while the API stays connected, then the next submissions land whole, with a webhook too', async () => {
    const server = await startRedisServer();
    const prefix = uniquePrefix();
    const ctx = build(server.url, prefix, { WEBHOOK_SECRETS: 'a:whsec-0123456789abcdef' });
    const admin = createRedisConnection(server.url, 'worker');
    try {
      if (ctx.redis.status !== 'ready') await new Promise((resolve) => ctx.redis.once('ready', resolve));
      const layout = layoutFor(prefix);
      const send = (body: object) => request(ctx.app).post('/v1/jobs').set('Authorization', A).send(body);
      const hook = { webhook: { url: 'https://example.com/hook' } };
      // Every script this connection uses is loaded (sent once with its text), then forgotten.
      expect((await send(sim())).status).toBe(202);
      expect((await send({ ...sim(), ...hook })).status).toBe(202);
      await admin.script('FLUSH');
      const plain = await send(sim());
      expect(plain.status).toBe(202);
      await admin.script('FLUSH');
      const withHook = await send({ ...sim(), ...hook });
      expect(withHook.status).toBe(202);
      for (const id of [plain.body.id, withHook.body.id]) {
        expect((await request(ctx.app).get(`/v1/jobs/${id}`).set('Authorization', A)).body.status).toBe('queued');
        expect(await isIndexed(admin, layout, 'a', id)).toBe(true);
      }
      expect(await admin.hget(layout.job('analyses', withHook.body.id), OWN_FIELDS.webhookUrl)).toBe(hook.webhook.url);
      expect(await admin.exists(layout.job('webhooks', `${withHook.body.id}.webhook`))).toBe(1);
    } finally {
      await ctx.services.close();
      await ctx.redis.quit().catch(() => ctx.redis.disconnect());
      await admin.quit().catch(() => admin.disconnect());
      await server.destroy();
    }
  });
});

describe('the HTTP API with Redis unreachable', () => {
  it('when Redis is not there, then submit and /readyz answer 503 with Retry-After within a second', async () => {
    const ctx = build('redis://127.0.0.1:1', uniquePrefix());
    try {
      const started = Date.now();
      const res = await request(ctx.app).post('/v1/jobs').set('Authorization', A).send(sim());
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBeDefined();
      expect(res.body.error.code).toBe('redis_unavailable');
      const ready = await request(ctx.app).get('/readyz');
      expect(ready.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      ctx.redis.disconnect();
      await ctx.services.close().catch(() => undefined);
    }
  });
});
