import { encodeResult } from '@longhaul/shared';
import { describe, expect, it } from 'vitest';
import { formatJobData, formatReturnValue, redactSecrets, truncate } from './job-formatter.ts';

describe('the Bull Board job formatter', () => {
  it("when a job's data is shown, then its input and webhook are replaced by their size, and the tenant stays", () => {
    const shown = formatJobData({
      tenant: 'acme',
      input: { rows: 'customer data', password: 'x' },
      webhook: { url: 'https://hooks.example.com/t?token=secret' },
    }) as Record<string, unknown>;
    expect(shown.tenant).toBe('acme');
    expect(shown.input).toMatch(/^\[redacted\] \(\d+ bytes\)$/);
    expect(shown.webhook).toMatch(/^\[redacted\]/);
    expect(JSON.stringify(shown)).not.toMatch(/customer data|secret/);
  });

  it('when any value sits under a secret-looking key, then it is redacted at any depth', () => {
    expect(
      redactSecrets({ a: [{ apiKey: 'k', ok: 1 }], nested: { Authorization: 'Bearer x', clientSecret: 's' } }),
    ).toEqual({
      a: [{ apiKey: '[redacted]', ok: 1 }],
      nested: { Authorization: '[redacted]', clientSecret: '[redacted]' },
    });
  });

  it('when a value is larger than the limit, then a preview of the limit is shown with the full size', () => {
    const big = { payload: 'x'.repeat(10_000) };
    const shown = truncate(big, 100) as { truncated: boolean; bytes: number; preview: string };
    expect(shown.truncated).toBe(true);
    expect(shown.bytes).toBe(JSON.stringify(big).length);
    expect(shown.preview.length).toBe(101);
    expect(truncate({ small: 1 }, 100)).toEqual({ small: 1 });
  });

  it('when a result was stored gzipped, then its base64 is never shown, only its size', () => {
    const stored = encodeResult({ payload: 'y'.repeat(200_000) }, { compressBytes: 1024, maxBytes: 1 << 24 });
    const shown = formatReturnValue(stored, { maxChars: 2048 }) as Record<string, unknown>;
    expect(shown.encoding).toBe('gzip');
    expect(shown.bytes).toBeGreaterThan(200_000);
    expect(String(shown.data)).toMatch(/base64 characters not shown/);
    expect(
      JSON.stringify(
        formatReturnValue(encodeResult({ r: 'z'.repeat(5000) }, { compressBytes: 1 << 20, maxBytes: 1 << 24 })),
      ).length,
    ).toBeLessThan(2300);
  });

  it('when a result was stored bare or in the old json envelope, then it is shown as stored, secrets redacted', () => {
    const limits = { compressBytes: 1 << 20, maxBytes: 1 << 24 };
    expect(formatReturnValue(encodeResult({ rows: 3, token: 't' }, limits))).toEqual({ rows: 3, token: '[redacted]' });
    expect(formatReturnValue({ encoding: 'json', value: { rows: 3 } })).toEqual({
      encoding: 'json',
      value: { rows: 3 },
    });
  });
});
