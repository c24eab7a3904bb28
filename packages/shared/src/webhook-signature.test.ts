import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhook, WebhookSignatureError } from './webhook-signature.ts';

const secret = 'whsec-test-0123456789abcdef';
const body = JSON.stringify({ id: 'job_01', status: 'completed' });

function reason(fn: () => void): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof WebhookSignatureError ? err.reason : 'other';
  }
  return undefined;
}

describe('webhook signatures', () => {
  it('when a body is signed, then the header is t=<unix>,v1=<HMAC-SHA256 of "t.body"> and verifies', () => {
    const header = signWebhook(secret, body, 1_700_000_000);
    const expected = createHmac('sha256', secret).update(`1700000000.${body}`).digest('hex');
    expect(header).toBe(`t=1700000000,v1=${expected}`);
    expect(() => verifyWebhook(secret, header, body, { now: 1_700_000_010_000 })).not.toThrow();
    expect(() => verifyWebhook(secret, header, Buffer.from(body), { now: 1_700_000_010_000 })).not.toThrow();
  });

  it('when the body, the secret or the signature differ, then verification fails with signature_mismatch', () => {
    const header = signWebhook(secret, body);
    expect(reason(() => verifyWebhook(secret, header, `${body} `))).toBe('signature_mismatch');
    expect(reason(() => verifyWebhook('another-secret-0123456789', header, body))).toBe('signature_mismatch');
    // Flip the signature's first hex digit (always a change, whatever the digit was).
    const tampered = header.replace(/v1=(.)/, (_, c: string) => `v1=${c === '0' ? '1' : '0'}`);
    expect(reason(() => verifyWebhook(secret, tampered, body))).toBe('signature_mismatch');
  });

  it('when the timestamp is outside the tolerance window, then verification fails (replay protection)', () => {
    const header = signWebhook(secret, body, 1_700_000_000);
    expect(reason(() => verifyWebhook(secret, header, body, { now: 1_700_000_301_000 }))).toBe(
      'timestamp_outside_tolerance',
    );
    expect(reason(() => verifyWebhook(secret, header, body, { now: 1_699_999_000_000, toleranceSeconds: 60 }))).toBe(
      'timestamp_outside_tolerance',
    );
    expect(() => verifyWebhook(secret, header, body, { now: 1_700_000_301_000, toleranceSeconds: 600 })).not.toThrow();
  });

  it('when the header is missing or malformed, then verification fails with malformed_header', () => {
    for (const header of [undefined, '', 'v1=abc', 't=abc,v1=def', 't=1700000000']) {
      expect(
        reason(() => verifyWebhook(secret, header, body)),
        String(header),
      ).toBe('malformed_header');
    }
  });

  it('when a header carries several v1 signatures (secret rotation), then any matching one verifies', () => {
    const t = Math.floor(Date.now() / 1000);
    const good = signWebhook(secret, body, t).split('v1=')[1];
    expect(() => verifyWebhook(secret, `t=${t},v1=${'0'.repeat(64)},v1=${good}`, body)).not.toThrow();
  });
});
