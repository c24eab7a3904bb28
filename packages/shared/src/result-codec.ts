import { gunzipSync, gzipSync } from 'node:zlib';

/** How a result is kept in the job's `returnvalue`: plain JSON, or gzip + base64 when large. */
export type StoredResult = { encoding: 'json'; value: unknown } | { encoding: 'gzip'; data: string; bytes: number };

export class ResultTooLargeError extends Error {
  constructor(
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(`the result is ${bytes} bytes compressed; the cap is ${maxBytes}`);
    this.name = 'ResultTooLargeError';
  }
}

/**
 * Results above `compressBytes` (serialised) are gzipped; a result still above `maxBytes` once
 * stored throws {@link ResultTooLargeError}, a permanent failure.
 */
export function encodeResult(value: unknown, limits: { compressBytes: number; maxBytes: number }): StoredResult {
  return encodeResultSized(value, limits).stored;
}

/** The wrapper BullMQ stores around a result's JSON or gzip data (`{"encoding":…}`), at most. */
const WRAPPER_BYTES = 64;

/**
 * {@link encodeResult}, with about how many bytes the stored result takes in Redis (what the
 * tenant's storage budget counts), without serialising it a second time.
 */
export function encodeResultSized(
  value: unknown,
  limits: { compressBytes: number; maxBytes: number },
): { stored: StoredResult; bytes: number } {
  const json = JSON.stringify(value ?? null);
  const bytes = Buffer.byteLength(json);
  if (bytes <= limits.compressBytes) {
    if (bytes > limits.maxBytes) throw new ResultTooLargeError(bytes, limits.maxBytes);
    return { stored: { encoding: 'json', value: value ?? null }, bytes: bytes + WRAPPER_BYTES };
  }
  const data = gzipSync(json).toString('base64');
  if (data.length > limits.maxBytes) throw new ResultTooLargeError(data.length, limits.maxBytes);
  return { stored: { encoding: 'gzip', data, bytes }, bytes: data.length + WRAPPER_BYTES };
}

export function decodeResult(stored: StoredResult): unknown {
  if (stored.encoding === 'gzip') return JSON.parse(gunzipSync(Buffer.from(stored.data, 'base64')).toString('utf8'));
  return stored.value;
}

export function isStoredResult(value: unknown): value is StoredResult {
  if (typeof value !== 'object' || value === null) return false;
  const encoding = (value as { encoding?: unknown }).encoding;
  return encoding === 'json' || encoding === 'gzip';
}
