import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

const base = { REDIS_URL: 'redis://127.0.0.1:6379' };

describe('webhook and SSE configuration', () => {
  it('when WEBHOOK_SECRETS is unset, then no tenant has a secret and private targets are refused', () => {
    const config = loadConfig(base, 'worker');
    expect(config.webhooks.secrets.size).toBe(0);
    expect(config.webhooks).toMatchObject({ allowPrivate: false, backoffMs: 10_000, timeoutMs: 10_000 });
    expect(config.sseHeartbeatMs).toBe(15_000);
  });

  it('when WEBHOOK_SECRETS lists tenants, then each gets its secret', () => {
    const config = loadConfig(
      {
        ...base,
        WEBHOOK_SECRETS: 'a:whsec-a-0123456789abcdef, b:whsec-b-0123456789abcdef',
        WEBHOOK_ALLOW_PRIVATE: 'true',
      },
      'worker',
    );
    expect(config.webhooks.secrets.get('a')).toBe('whsec-a-0123456789abcdef');
    expect(config.webhooks.secrets.get('b')).toBe('whsec-b-0123456789abcdef');
    expect(config.webhooks.allowPrivate).toBe(true);
  });

  it('when a secret is short or an entry malformed, then start-up fails naming it', () => {
    expect(() => loadConfig({ ...base, WEBHOOK_SECRETS: 'a:short' }, 'worker')).toThrow(
      /tenant "a" is shorter than 16/,
    );
    expect(() => loadConfig({ ...base, WEBHOOK_SECRETS: 'no-colon-here-at-all' }, 'worker')).toThrow(ConfigError);
  });
});
