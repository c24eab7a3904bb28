import { createLogger, createRedisConnection, loadConfig } from '@longhaul/shared';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../../../../tests/support/redis.ts';
import { createApp } from '../app.ts';
import { createApiServices } from '../services.ts';

const A = 'Bearer tenant-a-key-0123456789';
const B = 'Bearer tenant-b-key-0123456789';

describe('the storage budget over HTTP (real Redis, no worker)', () => {
  const prefix = uniquePrefix();
  const config = loadConfig(
    {
      REDIS_URL: redisUrl(),
      API_KEYS: 'a:tenant-a-key-0123456789,b:tenant-b-key-0123456789',
      QUEUE_PREFIX: prefix,
      TENANT_STORAGE_BYTES: '1024',
    },
    'api',
  );
  const redis = createRedisConnection(redisUrl(), 'producer', { commandTimeoutMs: 2_000 });
  const log = createLogger({ name: 't', level: 'silent', pretty: false });
  const services = createApiServices({ config, log, redis });
  const app = createApp({ config, log, redis, ...services });

  beforeAll(async () => {
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  });
  afterAll(async () => {
    await services.close();
    await redis.quit().catch(() => redis.disconnect());
    await cleanupPrefix(redisUrl(), prefix);
  });

  const submit = (auth: string) =>
    request(app)
      .post('/v1/jobs')
      .set('Authorization', auth)
      // An inline dataset past the budget's free allowance per job (STORAGE_FREE_BYTES), so it counts.
      .send({ type: 'dataset-profile', input: { source: { inline: 'a\n'.repeat(400) } }, delayMs: 60_000 });

  it('G25: when a tenant has used its storage budget, then submit answers 429 storage_quota_exceeded naming the setting, and another tenant is unaffected', async () => {
    let res = await submit(A);
    for (let i = 0; i < 100 && res.status === 202; i++) res = await submit(A);
    expect(res.status).toBe(429);
    expect(res.headers['retry-after']).toBeTruthy();
    expect(res.body.error.code).toBe('storage_quota_exceeded');
    expect(res.body.error.message).toMatch(/TENANT_STORAGE_BYTES/);
    expect(res.body.error.details).toEqual({ budget: 1024 });
    expect((await submit(B)).status).toBe(202);
  });
});
