import { ConfigError, createLogger, createRedisConnection, loadConfig, type RedisConnection } from '@longhaul/shared';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../../tests/support/redis.ts';
import { createApp } from '../app.ts';
import { type ApiServices, createApiServices } from '../services.ts';

const KEY = 'tenant-a-key-0123456789';
const LISTED = 'https://app.example.com';
const ALSO_LISTED = 'http://127.0.0.1:5173';
const UNLISTED = 'https://evil.example.net';

const base = (extra: Record<string, string> = {}) => ({
  REDIS_URL: 'redis://127.0.0.1:6379',
  API_KEYS: `a:${KEY}`,
  ...extra,
});

describe('CORS_ORIGINS in the configuration', () => {
  it('when CORS_ORIGINS is unset, then no origin is allowed', () => {
    expect(loadConfig(base(), 'api').corsOrigins).toEqual([]);
  });

  it('when CORS_ORIGINS lists origins with spaces, then each is kept exactly', () => {
    const config = loadConfig(base({ CORS_ORIGINS: ` ${LISTED} , ${ALSO_LISTED},` }), 'api');
    expect(config.corsOrigins).toEqual([LISTED, ALSO_LISTED]);
  });

  it('when an entry has a path, a trailing slash or no scheme, then start-up stops naming CORS_ORIGINS', () => {
    for (const bad of ['https://app.example.com/', 'https://app.example.com/ui', 'app.example.com', '*']) {
      expect(() => loadConfig(base({ CORS_ORIGINS: bad }), 'api')).toThrow(ConfigError);
      expect(() => loadConfig(base({ CORS_ORIGINS: bad }), 'api')).toThrow(/CORS_ORIGINS/);
    }
  });
});

describe('CORS on createApp (real Redis, no worker)', () => {
  const prefix = uniquePrefix();
  let redis: RedisConnection;
  let services: ApiServices;
  let app: ReturnType<typeof createApp>;
  let closedApp: ReturnType<typeof createApp>;

  beforeAll(async () => {
    const url = redisUrl();
    const log = createLogger({ name: 't', level: 'silent', pretty: false });
    redis = createRedisConnection(url, 'producer', { commandTimeoutMs: 300 });
    redis.on('error', () => undefined);
    const config = (extra: Record<string, string>) =>
      loadConfig({ ...base(extra), REDIS_URL: url, QUEUE_PREFIX: prefix }, 'api');
    const listed = config({ CORS_ORIGINS: `${LISTED},${ALSO_LISTED}` });
    services = createApiServices({ config: listed, log, redis });
    app = createApp({ config: listed, log, redis, ...services });
    closedApp = createApp({ config: config({}), log, redis, ...services });
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  });
  afterAll(async () => {
    await services?.close();
    await redis?.quit().catch(() => redis.disconnect());
    await cleanupPrefix(redisUrl(), prefix);
  });

  it('when a listed origin sends a preflight, then it is answered 204 with the methods and request headers allowed', async () => {
    const res = await request(app)
      .options('/v1/jobs')
      .set('Origin', LISTED)
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'authorization, content-type, idempotency-key');
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(LISTED);
    expect(res.headers['access-control-allow-methods']).toMatch(/\bPOST\b/);
    expect(res.headers['access-control-allow-methods']).toMatch(/\bDELETE\b/);
    const allowed = res.headers['access-control-allow-headers']?.toLowerCase().split(/,\s*/);
    expect(allowed).toEqual(
      expect.arrayContaining(['authorization', 'content-type', 'idempotency-key', 'last-event-id']),
    );
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    expect(res.headers.vary).toMatch(/Origin/);
    expect(res.headers['x-request-id']).toBeTruthy();
  });

  it('when a listed origin submits a job, then the answer allows that origin and exposes Location and X-Request-Id', async () => {
    const res = await request(app)
      .post('/v1/jobs')
      .set('Origin', ALSO_LISTED)
      .set('Authorization', `Bearer ${KEY}`)
      .send({ type: 'simulate', input: { durationMs: 10 } });
    expect(res.status).toBe(202);
    expect(res.headers['access-control-allow-origin']).toBe(ALSO_LISTED);
    const exposed = res.headers['access-control-expose-headers']?.toLowerCase().split(/,\s*/);
    expect(exposed).toEqual(expect.arrayContaining(['location', 'x-request-id', 'retry-after']));
    expect(res.headers.location).toBe(`/v1/jobs/${res.body.id}`);
  });

  it('when a listed origin gets an error answer, then the error is readable by the page too', async () => {
    const res = await request(app).get('/v1/jobs/job_nope').set('Origin', LISTED);
    expect(res.status).toBe(401);
    expect(res.headers['access-control-allow-origin']).toBe(LISTED);
  });

  it('when an unlisted origin sends a preflight or a request, then no CORS header is sent, and the preflight is refused with the reason', async () => {
    const preflight = await request(app)
      .options('/v1/jobs')
      .set('Origin', UNLISTED)
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'authorization');
    const get = await request(app).get('/v1/analyses').set('Origin', UNLISTED).set('Authorization', `Bearer ${KEY}`);
    for (const res of [preflight, get]) {
      const cors = Object.keys(res.headers).filter((h) => h.startsWith('access-control-'));
      expect(cors).toEqual([]);
      expect(res.headers.vary).toMatch(/Origin/);
    }
    expect(preflight.status).toBe(403);
    expect(preflight.body.error).toEqual({
      code: 'cors_refused',
      message: `the origin ${JSON.stringify(UNLISTED)} is not in CORS_ORIGINS`,
    });
  });

  it('when an origin differs from a listed one only by port or scheme, then it is refused', async () => {
    for (const origin of ['https://app.example.com:8443', 'http://app.example.com', 'http://127.0.0.1:5174']) {
      const res = await request(app).get('/healthz').set('Origin', origin);
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
    }
  });

  it('when CORS_ORIGINS is empty, then no response carries a CORS header, whatever the origin', async () => {
    const res = await request(closedApp)
      .options('/v1/jobs')
      .set('Origin', LISTED)
      .set('Access-Control-Request-Method', 'POST');
    expect(Object.keys(res.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('cors_refused');
    // Not a preflight (no Access-Control-Request-Method): passed on, to the route's own answer.
    const options = await request(closedApp).options('/v1/jobs').set('Origin', LISTED);
    expect(options.status).not.toBe(403);
  });
});
