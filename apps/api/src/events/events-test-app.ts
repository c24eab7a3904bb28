import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger, createRedisConnection, loadConfig } from '@longhaul/shared';
import { cleanupPrefix, redisUrl } from '../../../../tests/support/redis.ts';
import { createApp } from '../app.ts';
import { createApiServices } from '../services.ts';
import { createJobEventHub } from './job-event-hub.ts';

/**
 * `createApp` with live events, listening on a free port, against the test Redis under `prefix`
 * (no worker). Tenants `a` and `b` use the given keys. For the event stream tests.
 */
export async function startEventsApp(
  prefix: string,
  keys: { a: string; b: string },
  env: Record<string, string>,
  hubOptions: { idleMs?: number } = {},
) {
  const config = loadConfig(
    {
      REDIS_URL: redisUrl(),
      API_KEYS: `a:${keys.a},b:${keys.b}`,
      QUEUE_PREFIX: prefix,
      RATE_LIMIT_PER_MINUTE: '0',
      ...env,
    },
    'api',
  );
  const log = createLogger({ name: 't', level: 'silent', pretty: false });
  const redis = createRedisConnection(redisUrl(), 'producer', { commandTimeoutMs: 1000 });
  redis.on('error', () => undefined);
  const services = createApiServices({ config, log, redis });
  const hub = createJobEventHub({
    connection: createRedisConnection(redisUrl(), 'worker'),
    prefix,
    log,
    ...hubOptions,
  });
  // The first request must not meet a connection still connecting (it would answer 503).
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  const server: Server = createApp({ config, log, redis, ...services, events: hub }).listen(0);
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    redis,
    services,
    queue: services.queue,
    hub,
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close(): Promise<void> {
      await hub.close();
      await new Promise((resolve) => server.close(resolve));
      await services.close();
      await redis.quit().catch(() => redis.disconnect());
      await cleanupPrefix(redisUrl(), prefix);
    },
  };
}
