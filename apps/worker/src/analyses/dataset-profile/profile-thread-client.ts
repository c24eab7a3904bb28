import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { DatasetError } from './dataset-error.ts';
import type { FromThread, ThreadData, ThreadResult, ToThread } from './profile-thread.ts';

/** Chunks sent to the thread and not yet parsed: enough to keep it busy, few enough to bound memory. */
const IN_FLIGHT = 4;
/**
 * While the thread is busy, source chunks (16–64 KiB from a socket) are gathered up to this size
 * before they are sent: each message costs a wake-up of both threads, which at 64 KiB was about a
 * tenth of the thread's time. An idle thread gets whatever there is at once, so a slow source is
 * not held back.
 */
const SEND_BYTES = 512 * 1024;

/**
 * Where the thread's entry file is. From source (tsx) it is the sibling `profile-thread.ts`
 * (see {@link spawnThread}). In a bundle, `import.meta.url`
 * is the bundle's own file, so the build must emit the thread as `dataset-profile-thread.js` next
 * to it (tsup entry `dataset-profile-thread: src/analyses/dataset-profile/profile-thread.ts`).
 */
export function threadEntry(): URL {
  const candidates = [
    new URL('./profile-thread.ts', import.meta.url),
    new URL('./dataset-profile-thread.js', import.meta.url),
    new URL('./profile-thread.js', import.meta.url),
  ];
  const found = candidates.find((u) => existsSync(fileURLToPath(u)));
  if (!found) {
    throw new Error(`dataset-profile thread entry not found next to ${import.meta.url} (see docs/dataset-profile.md)`);
  }
  return found;
}

/**
 * Starts the thread. A `.ts` entry (running from source) gets tsx registered first, by hand:
 * Node 20 does not apply the parent's `--import tsx` hooks to a worker thread's modules.
 */
function spawnThread(entry: URL, workerData: ThreadData): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

export interface ThreadCheckpoint {
  offset: number;
  rows: number;
  state: string;
}

export interface ThreadEvents {
  progress(bytes: number, rows: number): void;
  checkpoint(checkpoint: ThreadCheckpoint): void;
  finalizing(rows: number): void;
}

/**
 * Runs a {@link Profiler} in a worker thread: `write` streams chunks with backpressure (it waits
 * while {@link IN_FLIGHT} chunks of up to {@link SEND_BYTES} are unparsed), `end` resolves with the summary, `terminate` stops
 * the thread at once (cancel, shutdown, timeout).
 */
export function startProfileThread(data: ThreadData, events: ThreadEvents) {
  const thread = spawnThread(threadEntry(), data);
  let inFlight = 0;
  let wake: (() => void) | null = null;
  let failure: Error | null = null;
  let settle: { resolve: (r: ThreadResult) => void; reject: (e: Error) => void } | null = null;
  const done = new Promise<ThreadResult>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // Observed even when nobody awaits `end` (a failed write), so a rejection is never unhandled.
  done.catch(() => undefined);
  const fail = (err: Error) => {
    failure ??= err;
    settle?.reject(failure);
    wake?.();
  };

  thread.on('message', (message: FromThread) => {
    switch (message.type) {
      case 'ack':
        inFlight--;
        events.progress(message.bytes, message.rows);
        if (inFlight === 0 && gathered > 0 && !failure) sendGathered();
        wake?.();
        return;
      case 'checkpoint':
        events.checkpoint(message);
        return;
      case 'finalizing':
        events.finalizing(message.rows);
        return;
      case 'done': {
        const { type: _, ...result } = message;
        settle?.resolve(result);
        void thread.terminate();
        return;
      }
      case 'error':
        fail(message.permanent ? new DatasetError(message.message) : new Error(message.message));
        void thread.terminate();
        return;
    }
  });
  thread.on('error', (err) => fail(err));
  thread.on('exit', (code) => fail(new Error(`the profile thread exited (code ${code}) before it finished`)));

  const send = (message: ToThread, transfer: ArrayBuffer[] = []) => thread.postMessage(message, transfer);
  // A copy the thread can own (body chunks may share a pooled ArrayBuffer), gathered here.
  let buffer = new Uint8Array(SEND_BYTES);
  let gathered = 0;
  const sendGathered = () => {
    const data = buffer.subarray(0, gathered);
    inFlight++;
    send({ type: 'chunk', data }, [data.buffer as ArrayBuffer]);
    buffer = new Uint8Array(SEND_BYTES);
    gathered = 0;
  };
  return {
    async write(chunk: Uint8Array): Promise<void> {
      if (failure) throw failure;
      let from = 0;
      while (from < chunk.length) {
        const take = Math.min(chunk.length - from, SEND_BYTES - gathered);
        buffer.set(chunk.subarray(from, from + take), gathered);
        gathered += take;
        from += take;
        if (gathered < SEND_BYTES && inFlight > 0) continue;
        while (inFlight >= IN_FLIGHT && !failure) await new Promise<void>((r) => (wake = r));
        if (failure) throw failure;
        // Sent by an ack while this write waited.
        if (gathered > 0) sendGathered();
      }
    },
    end(): Promise<ThreadResult> {
      if (!failure) {
        if (gathered > 0) sendGathered();
        send({ type: 'end' });
      }
      return done;
    },
    async terminate(reason: Error): Promise<void> {
      fail(reason);
      await thread.terminate();
    },
  };
}
