import { describe, expect, it } from 'vitest';
import {
  decodeResult,
  decodeReturnValue,
  encodeResult,
  encodeResultSized,
  isStoredResult,
  NO_RESULT_LENGTH,
  ResultTooLargeError,
  type StoredResult,
} from './result-codec.ts';

const limits = { compressBytes: 1024, maxBytes: 4096 };

/** What a reader gets back: BullMQ stores the JSON of what the worker returns. */
function roundTrip(stored: unknown): unknown {
  return decodeReturnValue(JSON.parse(JSON.stringify(stored)));
}

describe('result codec', () => {
  it('when a small object result is stored, then it is stored bare and decodes to itself', () => {
    const { stored, bytes, compressed } = encodeResultSized({ a: 1 }, limits);
    expect(stored).toEqual({ a: 1 });
    expect(isStoredResult(stored)).toBe(false);
    expect(bytes).toBe(JSON.stringify({ a: 1 }).length);
    expect(compressed).toBe(false);
    expect(encodeResult({ a: 1 }, limits)).toEqual({ a: 1 });
    expect(roundTrip(stored)).toEqual({ a: 1 });
  });

  it('when small results of any JSON kind are stored bare, then each decodes to itself', () => {
    for (const value of [
      'some text',
      12345,
      [1, 2, 3],
      { nested: { encoding: 'json', value: 1 } },
      { encoding: 'br' },
    ]) {
      const stored = encodeResult(value, limits);
      expect(stored).toEqual(value);
      expect(roundTrip(stored)).toEqual(value);
    }
  });

  it('when a result is shaped like an envelope, then it is wrapped in one and round-trips', () => {
    for (const value of [
      { encoding: 'json', value: 'not me' },
      { encoding: 'gzip', data: 'not base64', bytes: 3 },
      { encoding: 'json' },
    ]) {
      const { stored, bytes, compressed } = encodeResultSized(value, limits);
      expect(stored).toEqual({ encoding: 'json', value });
      expect(bytes).toBeGreaterThan(JSON.stringify(value).length);
      expect(compressed).toBe(false);
      expect(roundTrip(stored)).toEqual(value);
    }
  });

  it('when a result serialises like an envelope although it is not one in memory, then it is still wrapped', () => {
    const value = { toJSON: () => ({ encoding: 'gzip', data: 'x', bytes: 1 }) };
    expect(encodeResult(value, limits)).toEqual({ encoding: 'json', value });
    expect(roundTrip(encodeResult(value, limits))).toEqual({ encoding: 'gzip', data: 'x', bytes: 1 });
  });

  it('when a result is no longer than BullMQ\'s "no result", then it is wrapped so the job still reads as completed', () => {
    for (const value of [null, undefined, {}, [], 0, 1234, true, '']) {
      const stored = encodeResult(value, limits);
      expect(stored).toEqual({ encoding: 'json', value: value ?? null });
      expect(JSON.stringify(stored).length).toBeGreaterThan(NO_RESULT_LENGTH);
      expect(roundTrip(stored)).toEqual(value ?? null);
    }
  });

  it('when a result is above the compression threshold, then it is gzipped and decodes to the same value', () => {
    const value = { rows: Array.from({ length: 5000 }, (_, i) => ({ i, label: 'repeated text' })) };
    const sized = encodeResultSized(value, { compressBytes: 1024, maxBytes: 1024 * 1024 });
    const stored = encodeResult(value, { compressBytes: 1024, maxBytes: 1024 * 1024 });
    expect(isStoredResult(stored) && stored.encoding).toBe('gzip');
    expect(sized.compressed).toBe(true);
    expect(sized.stored).toEqual(stored);
    expect(stored).toEqual({ encoding: 'gzip', data: expect.any(String), bytes: JSON.stringify(value).length });
    expect(JSON.stringify(stored).length).toBeLessThan(JSON.stringify(value).length / 5);
    expect(decodeResult(stored as StoredResult)).toEqual(value);
    expect(roundTrip(stored)).toEqual(value);
  });

  it('when a result was stored in the old json envelope, then it still decodes to its value', () => {
    const old = JSON.parse('{"encoding":"json","value":{"a":1}}');
    expect(isStoredResult(old)).toBe(true);
    expect(decodeResult(old)).toEqual({ a: 1 });
    expect(decodeReturnValue(old)).toEqual({ a: 1 });
    expect(decodeReturnValue(JSON.parse('{"encoding":"json","value":null}'))).toBeNull();
  });

  it('when a result is above the cap even compressed, then it fails with a clear error', () => {
    const random = Array.from({ length: 20000 }, () => Math.random().toString(36)).join('');
    expect(() => encodeResult({ random }, { compressBytes: 1024, maxBytes: 4096 })).toThrow(ResultTooLargeError);
    expect(() => encodeResult({ random }, { compressBytes: 1024, maxBytes: 4096 })).toThrow(/the cap is/);
  });
});
