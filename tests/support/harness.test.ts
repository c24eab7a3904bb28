import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cleanupPrefix, redisUrl, uniquePrefix } from './redis.ts';
import { pingRedis } from './redis-ping.ts';
import { type RedisServer, startRedisServer } from './redis-server.ts';

const clients: Redis[] = [];
function connect(url: string): Redis {
  // No retries and no offline queue: a command against a stopped or frozen server fails instead of hanging.
  const client = new Redis(url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
  clients.push(client);
  return client;
}

const servers: RedisServer[] = [];
async function server(opts: Parameters<typeof startRedisServer>[0] = {}): Promise<RedisServer> {
  const started = await startRedisServer(opts);
  servers.push(started);
  return started;
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.destroy()));
});

describe('private redis-server', () => {
  it('when started, then it answers PING on a free port with noeviction and no RDB snapshots', async () => {
    const redis = await server();
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    const client = connect(redis.url);
    await client.connect();
    expect(await client.ping()).toBe('PONG');
    expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
    expect(await client.config('GET', 'save')).toEqual(['save', '']);
  });

  it('when frozen, then PING times out; when thawed, then it answers again', async () => {
    const redis = await server();
    redis.freeze();
    expect(await pingRedis(redis.port, '127.0.0.1', 300)).toBe(false);
    redis.thaw();
    expect(await pingRedis(redis.port, '127.0.0.1', 2000)).toBe(true);
  });

  it('when restarted with appendonly yes, then a written key survives on the same port', async () => {
    const redis = await server({ appendonly: true });
    const { port, dir } = redis;
    const before = connect(redis.url);
    await before.connect();
    await before.set('harness:survivor', 'still here');
    const firstPid = redis.pid;

    await redis.restart();

    expect(redis.pid).not.toBe(firstPid);
    expect(redis.port).toBe(port);
    expect(redis.dir).toBe(dir);
    const after = connect(redis.url);
    await after.connect();
    expect(await after.get('harness:survivor')).toBe('still here');
  });

  it('when killed with SIGKILL and restarted with appendonly yes, then an acknowledged write survives', async () => {
    const redis = await server({ appendonly: true });
    const client = connect(redis.url);
    await client.connect();
    await client.set('harness:crash', 'fsynced');

    await redis.kill();
    expect(await pingRedis(redis.port)).toBe(false);
    await redis.restart();

    const after = connect(redis.url);
    await after.connect();
    expect(await after.get('harness:crash')).toBe('fsynced');
  });

  it('when stopped, then the port stops answering and stop() is idempotent', async () => {
    const redis = await server();
    await redis.stop();
    await redis.stop();
    expect(await pingRedis(redis.port)).toBe(false);
  });
});

describe('run-wide Redis', () => {
  const prefix = uniquePrefix();
  afterAll(async () => {
    await cleanupPrefix(redisUrl(), prefix);
  });

  it('when a test asks for a prefix, then it is a fresh {lh-test-*} hash tag', () => {
    expect(prefix).toMatch(/^\{lh-test-[0-9a-f]{12}\}$/);
    expect(uniquePrefix()).not.toBe(prefix);
  });

  it('when cleanupPrefix runs, then it deletes only the keys under that prefix', async () => {
    const client = connect(redisUrl());
    await client.connect();
    const other = uniquePrefix();
    await client.mset(`${prefix}:a`, '1', `${prefix}:b`, '2', `${other}:c`, '3');

    expect(await cleanupPrefix(redisUrl(), prefix)).toBe(2);

    expect(await client.exists(`${prefix}:a`, `${prefix}:b`)).toBe(0);
    expect(await client.get(`${other}:c`)).toBe('3');
    await cleanupPrefix(redisUrl(), other);
  });
});
