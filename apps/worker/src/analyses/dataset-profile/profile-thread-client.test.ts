import { datasetProfileInput } from '@longhaul/shared';
import { describe, expect, it } from 'vitest';
import { createProfileThreads } from './profile-thread-client.ts';

const options = { ...datasetProfileInput.parse({ source: { inline: 'x' } }), formatHint: undefined };
const events = { progress: () => undefined, checkpoint: () => undefined, finalizing: () => undefined };

async function profile(threads: ReturnType<typeof createProfileThreads>, csv: string | Buffer) {
  const thread = threads.start({ options, restored: undefined, checkpointMs: 60_000 }, events);
  await thread.write(Buffer.from(csv));
  return thread.end();
}

describe('the profile threads of a worker', () => {
  it('when profiles run one after another, then each gets its own result, failed ones included', async () => {
    const threads = createProfileThreads({ keepIdle: 1 });
    const first = await profile(threads, 'a,b\n1,2\n3,4\n');
    expect(first.summary?.rowCount).toBe(2);
    // Invalid UTF-8 fails that profile alone; its thread is dropped, the next one is fresh.
    await expect(profile(threads, Buffer.from([0x61, 0x0a, 0xff, 0x0a]))).rejects.toThrow(/UTF-8/);
    const third = await profile(threads, 'x\n7\n8\n9\n');
    expect(third.summary?.rowCount).toBe(3);
    expect(third.summary?.columns.map((c) => c.name)).toEqual(['x']);
  }, 30_000);

  it('when a profile is stopped midway, then the next one runs from a clean start', async () => {
    const threads = createProfileThreads({ keepIdle: 1 });
    const stopped = threads.start({ options, restored: undefined, checkpointMs: 60_000 }, events);
    await stopped.write(Buffer.from('a,b\n1,2\n'));
    await stopped.terminate(new Error('cancelled'));
    await expect(stopped.end()).rejects.toThrow('cancelled');
    const next = await profile(threads, 'c\n5\n');
    expect(next.summary).toMatchObject({ rowCount: 1, columns: [{ name: 'c', min: 5 }] });
  }, 30_000);
});
