import { webhookJobOptions } from '@longhaul/shared';
import { describe, expect, it } from 'vitest';
import { retryDelayMs } from './deliver-webhook.ts';

describe("a webhook delivery's next attempt", () => {
  it('when the delivery was submitted with its backoff, then each retry waits what that backoff says, whatever this worker is set to', () => {
    // The API's WEBHOOK_BACKOFF_MS, stored in the delivery job's options when the job was submitted.
    const { backoff } = webhookJobOptions(1_000);
    expect([1, 2, 3].map((attempt) => retryDelayMs(backoff, attempt))).toEqual([1_000, 2_000, 4_000]);
    expect(retryDelayMs({ type: 'fixed', delay: 500 }, 3)).toBe(500);
    expect(retryDelayMs(250, 2)).toBe(250);
    expect(retryDelayMs(undefined, 2)).toBe(0);
  });
});
