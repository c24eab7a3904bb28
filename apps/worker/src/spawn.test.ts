import { type ChildRunStore, createLogger, decodeFailure } from '@longhaul/shared';
import type { Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { PermanentError } from './errors/permanent-error.ts';
import { createSpawn, type SpawnChild } from './spawn.ts';

/** A store that has recorded `batches` and must not be asked to add anything. */
function fakeStore(batches: string[][] = []): ChildRunStore {
  const refuse = () => Promise.reject(new Error('nothing may be added or read in this test'));
  return {
    state: async () => ({ kind: 'ok', batches }),
    add: refuse,
    outcomes: refuse,
    cancelAll: refuse,
  };
}

function spawnWith(store: ChildRunStore, maxChildren = 10) {
  const job = { id: 'job_01J0000000000000000000000P', opts: { priority: 500 } } as unknown as Job;
  const log = createLogger({ name: 'test', level: 'silent', pretty: false });
  return createSpawn({ store, job, token: 'token', tenant: 'a', maxChildren, log });
}

async function failure(work: Promise<unknown>) {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PermanentError);
  return decodeFailure((err as Error).message);
}

const child = (input: unknown) => ({ type: 'simulate', input }) as SpawnChild;

describe('ctx.spawn before it adds anything', () => {
  it('when a child names no analysis, then the job fails for good with invalid_input naming the child', async () => {
    const spawn = spawnWith(fakeStore());
    const f = await failure(spawn([child({ durationMs: 0 }), { type: 'nope', input: {} } as unknown as SpawnChild]));
    expect(f).toEqual({ code: 'invalid_input', message: 'child 2: there is no analysis named "nope"' });
  });

  it("when a child's input breaks its analysis' contract, then the job fails for good with the field named", async () => {
    const spawn = spawnWith(fakeStore());
    const f = await failure(spawn([child({ durationMs: -1 })]));
    expect(f.code).toBe('invalid_input');
    expect(f.message).toMatch(/^child 1 \(simulate\): durationMs: /);
  });

  it('when the children pass the cap, then the job fails for good with too_many_children', async () => {
    const spawn = spawnWith(fakeStore([]), 2);
    const f = await failure(spawn([child({ durationMs: 0 }), child({ durationMs: 0 }), child({ durationMs: 0 })]));
    expect(f).toEqual({
      code: 'too_many_children',
      message: 'the job started 3 child jobs; the cap is 2 (MAX_CHILDREN_PER_JOB)',
    });
  });

  it('when a later run spawns other children than the run that started them, then the job fails for good', async () => {
    const spawn = spawnWith(fakeStore([['job_1', 'job_2', 'job_3']]));
    const f = await failure(spawn([child({ durationMs: 0 }), child({ durationMs: 0 })]));
    expect(f.message).toMatch(/spawns must be called the same way on every run/);
  });

  it('when a spawn is given no children, then it resolves at once with none', async () => {
    await expect(spawnWith(fakeStore())([])).resolves.toEqual([]);
  });
});
