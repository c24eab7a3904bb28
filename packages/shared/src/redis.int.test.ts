import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackChild } from '../../../tests/support/child-registry.ts';
import { freePort } from '../../../tests/support/ports.ts';
import { type RedisServer, startRedisServer } from '../../../tests/support/redis-server.ts';
import { waitFor } from '../../../tests/support/wait.ts';
import { createRedisConnection, redactRedisUrl } from './redis.ts';

describe('createRedisConnection', () => {
  it('when a URL has a password, then the redacted form hides it', () => {
    expect(redactRedisUrl('redis://user:s3cret@host:6379/0')).toBe('redis://user:***@host:6379/0');
    expect(redactRedisUrl('rediss://:s3cret@host:6380')).toBe('rediss://:***@host:6380');
  });

  describe('through a real Sentinel', () => {
    let master: RedisServer;
    let sentinelPort = 0;
    beforeAll(async () => {
      master = await startRedisServer();
      sentinelPort = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'lh-sentinel-'));
      const conf = join(dir, 'sentinel.conf');
      writeFileSync(
        conf,
        [
          `port ${sentinelPort}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor lhmaster 127.0.0.1 ${master.port} 1`,
          '',
        ].join('\n'),
      );
      trackChild(spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' }));
      await waitFor(
        async () => {
          const probe = createRedisConnection(`redis://127.0.0.1:${sentinelPort}`, 'worker');
          probe.on('error', () => undefined);
          try {
            return ((await probe.call('SENTINEL', 'get-master-addr-by-name', 'lhmaster')) as string[] | null)?.[1];
          } finally {
            probe.disconnect();
          }
        },
        { timeoutMs: 10_000, what: 'the sentinel to know its master' },
      );
    });
    afterAll(async () => {
      await master?.destroy();
    });

    it('when given a redis+sentinel:// URL, then it reaches the master the sentinel names', async () => {
      const redis = createRedisConnection(`redis+sentinel://127.0.0.1:${sentinelPort}/lhmaster`, 'worker');
      try {
        await redis.set('lh-sentinel-probe', 'ok');
        expect(await redis.get('lh-sentinel-probe')).toBe('ok');
        const info = await redis.info('server');
        expect(info).toContain(`tcp_port:${master.port}`);
      } finally {
        redis.disconnect();
      }
    });
  });
});
