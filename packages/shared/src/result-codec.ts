import { gunzipSync, gzipSync } from 'node:zlib';

/**
 * An envelope around a result in the job's `returnvalue`: gzip + base64 when the result is large,
 * or `{ encoding: 'json', value }` where the result cannot be stored as it is (see
 * {@link encodeResult}). Any other `returnvalue` is the result itself (also how results were
 * stored before they were encoded). Results stored before bare values existed are all in an
 * envelope, `json` or `gzip`; both still decode.
 */
export type StoredResult = { encoding: 'json'; value: unknown } | { encoding: 'gzip'; data: string; bytes: number };

/**
 * The length of what BullMQ stores as `returnvalue` for a job without a result: `null`. A status
 * read takes a longer one for a result, so {@link encodeResult} never stores a result this short
 * bare (bullmq-layout.int.test.ts checks the length against the pinned BullMQ).
 */
export const NO_RESULT_LENGTH = 4;

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
 * What to store as a job's `returnvalue` for a result (BullMQ stores its JSON):
 * - a result whose JSON is above `compressBytes` is gzipped, `{ encoding: 'gzip', data, bytes }`;
 * - one that would read back as an envelope ({@link isStoredResult}), or whose JSON is no longer
 *   than BullMQ's "no result" (`null`, `{}`, `[]`, short numbers: a status read takes a
 *   `returnvalue` of at most {@link NO_RESULT_LENGTH} bytes for a job without one), is wrapped as
 *   `{ encoding: 'json', value }`, so decoding is never ambiguous;
 * - any other is stored bare: the value itself (`value ?? null`), no envelope to pay for.
 *
 * A result still above `maxBytes` once stored throws {@link ResultTooLargeError}, a permanent
 * failure. Read a `returnvalue` back with {@link decodeReturnValue}.
 */
export function encodeResult(value: unknown, limits: { compressBytes: number; maxBytes: number }): unknown {
  return encodeResultSized(value, limits).stored;
}

/** The wrapper BullMQ stores around a result's JSON or gzip data (`{"encoding":…}`), at most. */
const WRAPPER_BYTES = 64;

/**
 * JSON.stringify writes a key `encoding` only as `"encoding"`: JSON without it cannot parse to an
 * envelope, so the parse below is only paid for by results that mention the word as a key or text.
 */
function readsAsEnvelope(json: string): boolean {
  return json.includes('"encoding"') && isStoredResult(JSON.parse(json));
}

/**
 * {@link encodeResult}, with how many bytes the stored `returnvalue` takes in Redis (what the
 * tenant's storage budget counts: the JSON itself when bare, plus {@link WRAPPER_BYTES} at most
 * for an envelope), and whether it was gzipped, without serialising the result a second time.
 */
export function encodeResultSized(
  value: unknown,
  limits: { compressBytes: number; maxBytes: number },
): { stored: unknown; bytes: number; compressed: boolean } {
  const json = JSON.stringify(value ?? null);
  const bytes = Buffer.byteLength(json);
  if (bytes <= limits.compressBytes) {
    if (bytes > limits.maxBytes) throw new ResultTooLargeError(bytes, limits.maxBytes);
    if (bytes <= NO_RESULT_LENGTH || readsAsEnvelope(json)) {
      const stored: StoredResult = { encoding: 'json', value: value ?? null };
      return { stored, bytes: bytes + WRAPPER_BYTES, compressed: false };
    }
    return { stored: value ?? null, bytes, compressed: false };
  }
  const data = gzipSync(json).toString('base64');
  if (data.length > limits.maxBytes) throw new ResultTooLargeError(data.length, limits.maxBytes);
  const stored: StoredResult = { encoding: 'gzip', data, bytes };
  return { stored, bytes: data.length + WRAPPER_BYTES, compressed: true };
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

/**
 * The result a job's `returnvalue` (parsed) holds: an envelope decoded, anything else as it is (a
 * bare result, or one stored before results were encoded).
 */
export function decodeReturnValue(returnvalue: unknown): unknown {
  return isStoredResult(returnvalue) ? decodeResult(returnvalue) : returnvalue;
}
