/**
 * What Bull Board shows of a job's data and result. The board sends whatever these return to the
 * browser on every poll, so large values are cut to a preview, and fields that may hold customer
 * data or credentials are never shown at all.
 */

/** Keys of `job.data` never shown: the input may hold customer data; a webhook URL may hold a token. */
export const SECRET_DATA_FIELDS = ['input', 'webhook'] as const;

/** Keys redacted wherever they appear in what is shown (case-insensitive, by substring). */
const SECRET_KEY = /pass(word)?|secret|token|api[-_]?key|authorization|cookie|credential/i;

export interface FormatterOptions {
  /** Largest JSON (in characters) shown for one job's data or result before it is cut. @defaultValue 2048 */
  maxChars?: number;
}

const REDACTED = '[redacted]';

function byteLength(value: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(value) ?? '');
  } catch {
    return 0;
  }
}

/** Replaces the values of secret-looking keys at any depth (arrays and objects), without mutating. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (depth > 20 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1));
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [
      k,
      SECRET_KEY.test(k) ? REDACTED : redactSecrets(v, depth + 1),
    ]),
  );
}

/** The value itself when its JSON fits in `maxChars`, else a preview that says how much was cut. */
export function truncate(value: unknown, maxChars: number): unknown {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    return '[not serialisable]';
  }
  if (json === undefined || json.length <= maxChars) return value;
  return {
    truncated: true,
    bytes: Buffer.byteLength(json),
    preview: `${json.slice(0, maxChars)}…`,
  };
}

/** Formats `job.data` (longhaul's {@link JobData}): secret fields become a note of their size. */
export function formatJobData(data: unknown, { maxChars = 2048 }: FormatterOptions = {}): unknown {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return truncate(redactSecrets(data), maxChars);
  const shown: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    if ((SECRET_DATA_FIELDS as readonly string[]).includes(key)) {
      shown[key] = value === undefined ? undefined : `${REDACTED} (${byteLength(value)} bytes)`;
    } else {
      shown[key] = value;
    }
  }
  return truncate(redactSecrets(shown), maxChars);
}

/**
 * Formats `job.returnvalue` (a stored result: the value itself, `{ encoding: 'json', value }`, or a
 * gzipped `{ encoding: 'gzip', data, bytes }`). The gzipped base64 is never sent; the others are cut.
 */
export function formatReturnValue(stored: unknown, { maxChars = 2048 }: FormatterOptions = {}): unknown {
  if (stored && typeof stored === 'object' && (stored as { encoding?: unknown }).encoding === 'gzip') {
    const { bytes, data } = stored as { bytes?: number; data?: string };
    return { encoding: 'gzip', bytes, data: `[${data?.length ?? 0} base64 characters not shown]` };
  }
  return truncate(redactSecrets(stored), maxChars);
}
