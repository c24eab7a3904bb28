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
    const lenient = createHealthServer({ redis, state });
    const strict = createHealthServer({ redis, state: { draining: false }, strictRedisPolicy: true });
    await Promise.all([lenient, strict].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
    const url = (s: typeof lenient) => `http://127.0.0.1:${(s.address() as AddressInfo).port}/readyz`;
    try {
      const ok = await request('GET', url(lenient));
      expect(ok.status).toBe(200);
      expect(ok.body.checks).toMatchObject({ redis: 'ok', maxmemoryPolicy: 'allkeys-lru', draining: false });
      expect(ok.body.warnings.length).toBe(1);
      expect((await request('GET', url(strict))).status).toBe(503);
      state.draining = true;
      const draining = await request('GET', url(lenient));
      expect(draining.status).toBe(503);
      expect(draining.body.checks.draining).toBe(true);
    } finally {
      await Promise.all([lenient, strict].map((s) => new Promise((resolve) => s.close(resolve))));
    }
  });
});
