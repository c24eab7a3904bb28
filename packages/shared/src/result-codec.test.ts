import { describe, expect, it } from 'vitest';
import { decodeResult, encodeResult, ResultTooLargeError } from './result-codec.ts';

describe('result codec', () => {
  it('when a result is small, then it is stored as plain JSON', () => {
    const stored = encodeResult({ a: 1 }, { compressBytes: 1024, maxBytes: 4096 });
    expect(stored).toEqual({ encoding: 'json', value: { a: 1 } });
    expect(decodeResult(stored)).toEqual({ a: 1 });
  });

  it('when a result is above the compression threshold, then it is gzipped and decodes to the same value', () => {
    const value = { rows: Array.from({ length: 5000 }, (_, i) => ({ i, label: 'repeated text' })) };
    const stored = encodeResult(value, { compressBytes: 1024, maxBytes: 1024 * 1024 });
    expect(stored.encoding).toBe('gzip');
    expect(JSON.stringify(stored).length).toBeLessThan(JSON.stringify(value).length / 5);
    expect(decodeResult(stored)).toEqual(value);
  });

  it('when a result is above the cap even compressed, then it fails with a clear error', () => {
    const random = Array.from({ length: 20000 }, () => Math.random().toString(36)).join('');
    expect(() => encodeResult({ random }, { compressBytes: 1024, maxBytes: 4096 })).toThrow(ResultTooLargeError);
    expect(() => encodeResult({ random }, { compressBytes: 1024, maxBytes: 4096 })).toThrow(/the cap is/);
  });
});
