import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

const base = { REDIS_URL: 'redis://127.0.0.1:6379', API_KEYS: 'acme:acme-key-0123456789' };

describe('loadConfig', () => {
  it('when only the required values are given, then every other setting has its documented default', () => {
    const c = loadConfig(base, 'api');
    expect(c.port).toBe(3000);
    expect(c.queuePrefix).toBe('{longhaul}');
    expect(c.apiKeys).toEqual([{ tenant: 'acme', key: 'acme-key-0123456789' }]);
    expect(c.retention.completedSeconds).toBe(86_400);
    expect(c.retention.failedSeconds).toBe(7 * 86_400);
    expect(c.admin).toBeNull();
  });

  it('when several values are wrong, then the error lists every one of them', () => {
    const err = (() => {
      try {
        loadConfig({ REDIS_URL: 'http://x', PORT: 'eighty', API_KEYS: 'nocolon', LOG_LEVEL: 'loud' }, 'api');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/REDIS_URL/);
    expect(problems).toMatch(/PORT/);
    expect(problems).toMatch(/API_KEYS/);
    expect(problems).toMatch(/LOG_LEVEL/);
  });

  it('when the API has no keys, then it refuses to start; the worker does not need them', () => {
    expect(() => loadConfig({ REDIS_URL: base.REDIS_URL }, 'api')).toThrow(/API_KEYS/);
    expect(loadConfig({ REDIS_URL: base.REDIS_URL }, 'worker').apiKeys).toEqual([]);
  });

  it('when a key is short or repeated, then it is refused', () => {
    expect(() => loadConfig({ ...base, API_KEYS: 'a:short' }, 'api')).toThrow(/shorter than 12/);
    expect(() => loadConfig({ ...base, API_KEYS: 'a:same-key-123456,b:same-key-123456' }, 'api')).toThrow(/twice/);
  });

  it('when running in production without Bull Board credentials, then the API refuses to start', () => {
    expect(() => loadConfig({ ...base, NODE_ENV: 'production' }, 'api')).toThrow(/ADMIN_USER/);
    const c = loadConfig({ ...base, NODE_ENV: 'production', ADMIN_USER: 'ops', ADMIN_PASSWORD: 'long-enough' }, 'api');
    expect(c.admin).toEqual({ user: 'ops', password: 'long-enough', readOnly: true });
  });

  it('when an error is reported, then no secret value appears in it', () => {
    try {
      loadConfig({ ...base, API_KEYS: 'acme:super-secret-key-1,bad', PORT: '-1' }, 'api');
    } catch (e) {
      expect((e as Error).message).not.toContain('super-secret-key-1');
    }
  });
  it('when the tombstone is shorter than the retention of finished jobs, then start-up is refused and says why', () => {
    expect(() =>
      loadConfig(
        { REDIS_URL: 'redis://x', TOMBSTONE_TTL_SECONDS: '3600', COMPLETED_RETENTION_SECONDS: '7200' },
        'worker',
      ),
    ).toThrow(/TOMBSTONE_TTL_SECONDS: must be at least the longest retention/);
  });
});
