import { decodeFailure } from '@longhaul/shared';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../../tests/support/wait.ts';
import { analysisWorkerBed } from './worker-test-support.ts';

/**
 * A cancel's pub/sub message reaches only a connected subscriber. These tests set the cancel flag
 * as the cancel script does, without its message, as if the message had been published while the
 * worker's subscriber was away, and watch the worker find it.
 */
describe('cancels whose message the worker missed (real Redis, BullMQ and the analysis worker)', () => {
  const bed = analysisWorkerBed(2);
  const subscriberName = `cancels-${bed.prefix.replace(/\W/g, '')}`;
  const startWorker = (cancelRecheckMs: number) => bed.startWorker({ cancelRecheckMs, subscriberName });
  const { running, flag } = bed;

  async function cancelledFailure(id: string): Promise<string> {
    await waitFor(async () => (await bed.queue.getJobState(id)) === 'failed', {
      timeoutMs: 10_000,
      what: 'the job to end',
    });
    const job = await bed.queue.getJob(id);
    return decodeFailure(job?.failedReason ?? '').code;
  }

  it('when a cancel flag is set and its message never comes, then the periodic read cancels the job', async () => {
    await startWorker(300);
    const id = await running();
    await flag(id);
    expect(await cancelledFailure(id)).toBe('cancelled');
  });

  it('when a cancel arrives while the worker drains for a shutdown, then the job is cancelled, not run to its end', async () => {
    // No periodic read: the cancel's message alone must reach the draining worker.
    const worker = await startWorker(3_600_000);
    const id = await running();
    const drained = worker.drain(20_000);
    // As the cancel script does: the flag, then the message.
    await flag(id);
    await bed.admin.publish(bed.layout.cancelChannel, id);
    expect(await cancelledFailure(id)).toBe('cancelled');
    await drained;
  });

  it('when the subscriber reconnects, then it reads the flags of the running jobs and cancels those set', async () => {
    // No periodic read within the test: only the reconnection can find the flag.
    await startWorker(3_600_000);
    const id = await running();
    await flag(id);
    const clients = String(await bed.admin.call('CLIENT', 'LIST'))
      .split('\n')
      .filter((line) => line.includes(` name=${subscriberName} `));
    expect(clients).toHaveLength(1);
    const clientId = /\bid=(\d+)/.exec(clients[0] ?? '')?.[1] as string;
    await bed.admin.call('CLIENT', 'KILL', 'ID', clientId);
    expect(await cancelledFailure(id)).toBe('cancelled');
  });
});
