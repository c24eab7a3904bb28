import { createHmac, timingSafeEqual } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../../packages/client/src/node.ts';
import { simulate, startSystem } from '../e2e/fixtures.ts';
import { waitFor } from '../support/wait.ts';
import { startReceiver } from './webhook-receiver.ts';

const SECRET = 'whsec-tenant-a-0123456789abcdef';

/**
 * A receiver's check written from the documented scheme alone, with node:crypto and nothing of
 * ours: `Longhaul-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
 */
function independentlyVerified(header: string | undefined, body: string, secret: string): boolean {
  const fields = new Map((header ?? '').split(',').map((kv) => kv.split('=') as [string, string]));
  const t = fields.get('t');
  const v1 = fields.get('v1');
  if (!t || !v1 || Math.abs(Date.now() / 1000 - Number(t)) > 300) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  const given = Buffer.from(v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

describe('signed webhooks, real api and worker processes', () => {
  let system: Awaited<ReturnType<typeof startSystem>>;

  beforeAll(async () => {
    system = await startSystem({
      // Tenant b has no secret: it cannot ask for webhooks.
      WEBHOOK_SECRETS: `a:${SECRET}`,
      // The receivers here listen on 127.0.0.1; webhook-worker.int.test.ts proves the refusal.
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_BACKOFF_MS: '100',
    });
  });
  afterAll(async () => {
    await system?.stop();
  });

  it('when the receiver fails twice, then the third attempt delivers the same signed event and every attempt shows on the job view', async () => {
    const receiver = await startReceiver((n) => (n <= 2 ? 500 : 204));
    try {
      const res = await system.a.post('/v1/jobs', simulate({ durationMs: 100 }, { webhook: { url: receiver.url() } }));
      expect(res.status).toBe(202);
      const id = res.body.id as string;
      await waitFor(() => receiver.received.length >= 3, { timeoutMs: 15_000, what: 'three delivery attempts' });

      const eventIds = new Set(receiver.received.map((r) => r.headers['longhaul-event-id']));
      expect([...eventIds]).toEqual([`${id}.completed`]);
      for (const { headers, body } of receiver.received) {
        const signature = headers['longhaul-signature'] as string;
        expect(() => verifyWebhook(SECRET, signature, body, { toleranceSeconds: 300 })).not.toThrow();
        expect(independentlyVerified(signature, body, SECRET)).toBe(true);
        expect(independentlyVerified(signature, body, 'not-the-secret-0123456789')).toBe(false);
        expect(JSON.parse(body)).toMatchObject({ id, status: 'completed', type: 'simulate' });
      }

      const view = await waitFor(
        async () => {
          const v = (await system.a.get(`/v1/jobs/${id}`)).body;
          return v.webhook?.deliveries.length === 3 ? v : undefined;
        },
        { what: 'three recorded attempts' },
      );
      expect(view.webhook.url).toBe(receiver.url());
      expect(
        view.webhook.deliveries.map((d: { attempt: number; ok: boolean; status: number }) => [
          d.attempt,
          d.ok,
          d.status,
        ]),
      ).toEqual([
        [3, true, 204],
        [2, false, 500],
        [1, false, 500],
      ]);
      expect(view.webhook.deliveries[0].nextAttemptAt).toBeNull();
      expect(view.webhook.deliveries[1].nextAttemptAt).not.toBeNull();
    } finally {
      await receiver.close();
    }
  });

  it('when a job fails an attempt and then completes, then only the final outcome is sent', async () => {
    const receiver = await startReceiver();
    try {
      const res = await system.a.post(
        '/v1/jobs',
        simulate({ durationMs: 50, failTimes: 1 }, { webhook: { url: receiver.url() } }),
      );
      await waitFor(() => receiver.received.length >= 1, { timeoutMs: 15_000, what: 'the delivery' });
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(receiver.received.map((r) => r.headers['longhaul-event'])).toEqual(['completed']);
      expect(JSON.parse(receiver.received[0]?.body ?? '{}')).toMatchObject({ id: res.body.id, attempts: { made: 2 } });
    } finally {
      await receiver.close();
    }
  });

  it('when a job fails for good or a queued job is cancelled, then failed and cancelled are sent', async () => {
    const receiver = await startReceiver();
    try {
      const failed = await system.a.post(
        '/v1/jobs',
        simulate({ durationMs: 10, fail: 'permanent' }, { webhook: { url: receiver.url('/failed') } }),
      );
      const queued = await system.a.post(
        '/v1/jobs',
        simulate({ durationMs: 10 }, { delayMs: 60_000, webhook: { url: receiver.url('/cancelled') } }),
      );
      expect((await system.a.delete(`/v1/jobs/${queued.body.id}`)).status).toBe(202);
      await waitFor(() => receiver.received.length >= 2, { timeoutMs: 15_000, what: 'two deliveries' });
      const byEvent = Object.fromEntries(
        receiver.received.map((r) => [
          r.headers['longhaul-event'],
          JSON.parse(r.body) as { id: string; status: string },
        ]),
      );
      expect(byEvent.failed).toMatchObject({ id: failed.body.id, status: 'failed' });
      expect(byEvent.cancelled).toMatchObject({ id: queued.body.id, status: 'cancelled' });
    } finally {
      await receiver.close();
    }
  });

  it('when a tenant without a signing secret asks for a webhook, then the submit answers 400', async () => {
    const res = await system.b.post(
      '/v1/jobs',
      simulate({ durationMs: 10 }, { webhook: { url: 'https://example.com/hook' } }),
    );
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/not configured/);
  });
});
