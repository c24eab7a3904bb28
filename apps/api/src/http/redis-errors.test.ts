import type { RedisConnection } from '@longhaul/shared';
import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { classifyRedisError } from './redis-errors.ts';

const ready = { status: 'ready' } as RedisConnection;
const down = { status: 'reconnecting' } as RedisConnection;

describe('classifyRedisError', () => {
  it.each([
    'OOM command not allowed when used memory > maxmemory.',
    "EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.",
    "READONLY You can't write against a read only replica.",
    'LOADING Redis is loading the dataset in memory',
    'MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to no.',
    'BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.',
    'CLUSTERDOWN The cluster is down',
    'TRYAGAIN Multiple keys request during rehashing of slot',
    'NOREPLICAS Not enough good replicas to write.',
    'MISCONF Redis is configured to save RDB snapshots, but it is currently not able to persist on disk.',
    "EXECABORT Transaction discarded because of: READONLY You can't write against a read only replica.",
    'Connection is closed.',
    "Stream isn't writeable and enableOfflineQueue options is false",
    'Command timed out',
    'Reached the max retries per request limit (which is 1). Refer to "maxRetriesPerRequest" option for details.',
    'connect ECONNREFUSED 127.0.0.1:6379',
    'read ECONNRESET',
    'connect ETIMEDOUT',
  ])('when Redis refuses with "%s", then it answers 503 with Retry-After', (message) => {
    const http = classifyRedisError(new ReplyError(message), ready);
    expect(http?.status).toBe(503);
    expect(http?.code).toBe('redis_unavailable');
    expect(http?.headers['Retry-After']).toBeDefined();
  });

  it('when a MULTI is aborted and only a queued command says OOM, then it answers 503', () => {
    const err = Object.assign(new ReplyError('EXECABORT Transaction discarded because of previous errors.'), {
      previousErrors: [new ReplyError('OOM command not allowed when used memory > maxmemory.')],
    });
    expect(classifyRedisError(err, ready)?.status).toBe(503);
  });

  it('when the reply is a programming error (WRONGTYPE, BUSYGROUP, NOSCRIPT) on a ready connection, then it is not taken for an outage', () => {
    for (const message of [
      'WRONGTYPE Operation against a key holding the wrong kind of value',
      'BUSYGROUP Consumer Group name already exists',
      'ERR syntax error',
    ]) {
      expect(classifyRedisError(new ReplyError(message), ready)).toBeNull();
    }
  });

  it('when any error is thrown while the connection is not ready, then it answers 503', () => {
    expect(classifyRedisError(new Error('something odd'), down)?.status).toBe(503);
  });
});
