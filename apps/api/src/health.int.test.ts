import { createRedisConnection, type RedisConnection } from '@longhaul/shared';
import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../tests/support/ports.ts';
import { redisUrl } from '../../../tests/support/redis.ts';
import { healthRoutes } from './health.ts';

const TOKEN = 'readyz-metrics-token';

describe('GET /readyz details', () => {
  let up: RedisConnection;
  let down: RedisConnection;
  let deadPort: number;

  beforeAll(async () => {
    up = createRedisConnection(redisUrl(), 'producer', { commandTimeoutMs: 1000 });
    deadPort = await freePort();
    // Nothing listens there: every PING fails, with the address in ioredis' error text.
    down = createRedisConnection(`redis://127.0.0.1:${deadPort}`, 'producer');
    for (const c of [up, down]) c.on('error', () => undefined);
    await up.ping().catch(() => new Promise((resolve) => up.once('ready', resolve)));
  });
  afterAll(() => {
    for (const c of [up, down]) c.disconnect();
  });

  const app = (redis: RedisConnection, metricsToken: string | undefined) =>
    express().use(healthRoutes(redis, { timeoutMs: 1000, strictPolicy: false, metricsToken }));

  it('when an anonymous caller asks and Redis is down, then it answers 503 with the status only', async () => {
    const res = await request(app(down, TOKEN)).get('/readyz');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBeDefined();
    expect(res.body).toEqual({ status: 'not_ready' });
    expect(res.text).not.toContain(String(deadPort));
  });

  it('when the metrics token holder asks, then it gets the checks and warnings', async () => {
    const res = await request(app(up, TOKEN)).get('/readyz').set('authorization', `Bearer ${TOKEN}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'ready', ready: true, checks: { redis: 'ok' } });
    const failing = await request(app(down, TOKEN)).get('/readyz').set('authorization', `Bearer ${TOKEN}`);
    expect(failing.body.checks.redis).toMatch(/^unreachable/);
  });

  it('when a wrong token is sent, or no METRICS_TOKEN is configured, then only the status is shown', async () => {
    const wrong = await request(app(up, TOKEN)).get('/readyz').set('authorization', 'Bearer not-the-token');
    expect(wrong.body).toEqual({ status: 'ready' });
    const none = await request(app(up, undefined)).get('/readyz').set('authorization', `Bearer ${TOKEN}`);
    expect(none.body).toEqual({ status: 'ready' });
  });
});
