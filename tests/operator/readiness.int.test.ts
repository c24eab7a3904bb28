import type { AddressInfo } from 'node:net';
import { checkRedis, createRedisConnection, type RedisConnection } from '@longhaul/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHealthServer } from '../../apps/worker/src/health-server.ts';
import { request } from '../support/http.ts';
import { hasRedisServer, type RedisServer, startRedisServer } from '../support/redis-server.ts';

// Needs a Redis of its own with an evicting policy (the shared test Redis must stay noeviction):
// runs wherever redis-server is on PATH (CI, `pnpm start` machines); only a Docker-only machine,
// where the harness falls back to testcontainers, skips it.
describe.skipIf(!hasRedisServer())("/readyz and Redis' maxmemory-policy", () => {
  let server: RedisServer;
  let redis: RedisConnection;

  beforeAll(async () => {
    // A private Redis whose policy would evict queue keys under memory pressure.
    server = await startRedisServer({ extraArgs: ['--maxmemory-policy', 'allkeys-lru'] });
    redis = createRedisConnection(server.url, 'worker');
  });
  afterAll(async () => {
    await redis?.quit().catch(() => undefined);
    await server?.destroy();
  });

  it('when the policy is not noeviction, then readiness warns and stays ready', async () => {
    const r = await checkRedis(redis, 1000, false);
    expect(r.ready).toBe(true);
    expect(r.checks.maxmemoryPolicy).toBe('allkeys-lru');
    expect(r.warnings.join()).toMatch(/noeviction/);
  });

  it('when STRICT_REDIS_POLICY is on and the policy is not noeviction, then readiness fails', async () => {
    const r = await checkRedis(redis, 1000, true);
    expect(r.ready).toBe(false);
  });

  it("when the worker is draining or the policy is wrong under the strict setting, then the worker's /readyz answers 503 and says why", async () => {
    const state = { draining: false };
    const metricsToken = 'metrics-token-0123456789';
    const token = { headers: { authorization: `Bearer ${metricsToken}` } };
    const lenient = createHealthServer({ redis, state, metricsToken });
    const strict = createHealthServer({ redis, state: { draining: false }, strictRedisPolicy: true, metricsToken });
    await Promise.all([lenient, strict].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
    const url = (s: typeof lenient) => `http://127.0.0.1:${(s.address() as AddressInfo).port}/readyz`;
    try {
      const ok = await request('GET', url(lenient), token);
      expect(ok.status).toBe(200);
      expect(ok.body.checks).toMatchObject({ redis: 'ok', maxmemoryPolicy: 'allkeys-lru', draining: false });
      expect(ok.body.warnings.length).toBe(1);
      // Without the token, as the API answers: the status only (Redis error text names hosts).
      expect((await request('GET', url(lenient))).body).toEqual({ status: 'ready' });
      const refused = await request('GET', url(strict));
      expect(refused.status).toBe(503);
      expect(refused.body).toEqual({ status: 'not_ready' });
      expect(refused.headers['retry-after']).toBe('2');
      state.draining = true;
      const draining = await request('GET', url(lenient), token);
      expect(draining.status).toBe(503);
      expect(draining.body.checks.draining).toBe(true);
    } finally {
      await Promise.all([lenient, strict].map((s) => new Promise((resolve) => s.close(resolve))));
    }
  });

  it("when the worker's connection is down, then its /readyz answers 503 at once, without waiting for a PING", async () => {
    const down = createRedisConnection(server.url, 'worker');
    await down.quit();
    const health = createHealthServer({ redis: down, state: { draining: false }, readyTimeoutMs: 60_000 });
    await new Promise<void>((resolve) => health.listen(0, '127.0.0.1', resolve));
    try {
      // A PING would wait the whole minute: the answer comes from the connection's state instead.
      const res = await request('GET', `http://127.0.0.1:${(health.address() as AddressInfo).port}/readyz`, {
        timeoutMs: 5_000,
      });
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('2');
    } finally {
      await new Promise((resolve) => health.close(resolve));
    }
  });
});
