import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Stripe-style webhook signatures, shared by the worker (signs) and the client SDK (verifies).
 * Depends on node:crypto only, so the SDK can import it without Redis or BullMQ.
 *
 * `Longhaul-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
 */

/** The header carrying the signature. */
export const SIGNATURE_HEADER = 'Longhaul-Signature';
/** The header carrying the event id: the same on every retry of one event, so receivers can dedupe. */
export const EVENT_ID_HEADER = 'Longhaul-Event-Id';

/** Why {@link verifyWebhook} refused a delivery. */
export type WebhookSignatureFailure = 'malformed_header' | 'timestamp_outside_tolerance' | 'signature_mismatch';

/** Thrown by {@link verifyWebhook}; `reason` says which check failed. */
export class WebhookSignatureError extends Error {
  constructor(
    readonly reason: WebhookSignatureFailure,
    message: string,
  ) {
    super(message);
    this.name = 'WebhookSignatureError';
  }
}

export interface VerifyOptions {
  /** Reject signatures whose timestamp is further than this from now (replay protection). @defaultValue 300 */
  toleranceSeconds?: number;
  /** The current time in ms, for tests. @defaultValue Date.now() */
  now?: number;
}

function hmac(secret: string, timestamp: number, body: string | Uint8Array): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

/** The `Longhaul-Signature` header value for `body`, signed at `timestamp` (unix seconds). */
export function signWebhook(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): string {
  return `t=${timestamp},v1=${hmac(secret, timestamp, body)}`;
}

/**
 * Checks a delivery: `header` is the `Longhaul-Signature` value and `body` the raw request body,
 * exactly as received (verify before parsing JSON). Throws {@link WebhookSignatureError} when the
 * header is malformed, its timestamp is outside the tolerance window, or no `v1` signature matches.
 * Several `v1=` entries are accepted, so a secret can be rotated without dropping deliveries.
 */
export function verifyWebhook(
  secret: string,
  header: string | null | undefined,
  body: string | Uint8Array,
  { toleranceSeconds = 300, now = Date.now() }: VerifyOptions = {},
): void {
  const parts = (header ?? '').split(',').map((p) => p.trim().split('='));
  const timestamp = Number(parts.find(([k]) => k === 't')?.[1]);
  const signatures = parts.filter(([k, v]) => k === 'v1' && v).map(([, v]) => v as string);
  if (!Number.isSafeInteger(timestamp) || signatures.length === 0) {
    throw new WebhookSignatureError('malformed_header', `${SIGNATURE_HEADER} must look like "t=<unix>,v1=<hex>"`);
  }
  if (Math.abs(now / 1000 - timestamp) > toleranceSeconds) {
    throw new WebhookSignatureError(
      'timestamp_outside_tolerance',
      `the signature's timestamp is more than ${toleranceSeconds} s away from now`,
    );
  }
  const expected = Buffer.from(hmac(secret, timestamp, body), 'utf8');
  const matches = signatures.some((s) => {
    const given = Buffer.from(s, 'utf8');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!matches) throw new WebhookSignatureError('signature_mismatch', 'no signature matches this body and secret');
}
