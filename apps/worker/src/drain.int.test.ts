import { describe, expect, it } from 'vitest';
import { waitFor } from '../../../tests/support/wait.ts';
import { analysisWorkerBed } from './worker-test-support.ts';

/**
 * A worker that drains for a shutdown keeps running its attempts for the grace period. Its slots in
 * the fair-share dispatcher must then be those attempts only: the other workers' free slots count
 * in full, and none is handed out for it to take.
 */
describe('the fair-share slots of a draining worker (real Redis, BullMQ and the analysis worker)', () => {
  const bed = analysisWorkerBed(3);
  const workersKey = `${bed.prefix}:lh:fair:workers`;
  const slotsKey = `${bed.prefix}:lh:fair:slots`;

  /** This worker's registered slots (the only worker on the prefix), or null once it left. */
  async function registered(): Promise<number | null> {
    const entries = Object.values(await bed.admin.hgetall(workersKey));
    return entries.length === 0 ? null : Number(String(entries[0]).split(':')[0]);
  }

  it('when a worker drains with one attempt running, then its slots are that one attempt until it ends, and none after', async () => {
    const worker = await bed.startWorker();
    expect(await registered()).toBe(3);
    const id = await bed.running();

    const drained = worker.drain(20_000);
    await waitFor(async () => (await registered()) === 1, { timeoutMs: 5_000, what: 'slots of the running attempt' });
    expect(Number(await bed.admin.get(slotsKey))).toBe(1);

    // The attempt ends (cancelled, as the cancel script does it): the worker leaves the dispatcher.
    await bed.flag(id);
    await bed.admin.publish(bed.layout.cancelChannel, id);
    await drained;
    expect(await registered()).toBeNull();
  });
});
