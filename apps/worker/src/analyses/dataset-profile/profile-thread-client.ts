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
 * Starts a thread. A `.ts` entry (running from source) gets tsx registered first, by hand:
 * Node 20 does not apply the parent's `--import tsx` hooks to a worker thread's modules.
 */
function spawnThread(entry: URL): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry);
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(boot, { eval: true });
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

/** A profile running in a thread of {@link ProfileThreads}. */
export interface ProfileThread {
  /** Streams a chunk, waiting while {@link IN_FLIGHT} messages are unparsed (backpressure). */
  write(chunk: Uint8Array): Promise<void>;
  /** Ends the input; resolves with the result. The thread then goes back to its pool. */
  end(): Promise<ThreadResult>;
  /** Stops the profile at once (cancel, shutdown, timeout): its thread is terminated. A no-op once it ended. */
  terminate(reason: Error): Promise<void>;
}

/**
 * The profile threads of one worker process. A thread runs one profile at a time; when one ends,
 * its thread is kept (up to `keepIdle`, each for `idleMs`) for the next. A fresh thread loads the
 * profiler and runs it cold until V8 has optimized it, which cost a part of a parallel profile
 * (tens of MB) about a fifth of its time; a kept thread starts warm. A thread whose profile failed
 * or was stopped is terminated, never reused. Idle threads do not keep the process alive.
 */
export function createProfileThreads({ keepIdle = 2, idleMs = 30_000 }: { keepIdle?: number; idleMs?: number } = {}) {
  const idle = new Map<Worker, NodeJS.Timeout>();
  const drop = (thread: Worker) => {
    clearTimeout(idle.get(thread));
    idle.delete(thread);
  };
  const take = (): Worker => {
    const [kept] = idle.keys();
    if (kept) {
      drop(kept);
      kept.ref();
      return kept;
    }
    const thread = spawnThread(threadEntry());
    // An idle thread that dies (it should not) leaves the pool.
    thread.on('exit', () => drop(thread));
    thread.on('error', () => drop(thread));
    return thread;
  };
  const release = (thread: Worker) => {
    if (idle.size >= keepIdle) {
      void thread.terminate();
      return;
    }
    thread.unref();
    const timer = setTimeout(() => {
      drop(thread);
      void thread.terminate();
    }, idleMs);
    timer.unref();
    idle.set(thread, timer);
  };
  return {
    start: (data: ThreadData, events: ThreadEvents): ProfileThread => runProfile(take(), data, events, release),
  };
}

export type ProfileThreads = ReturnType<typeof createProfileThreads>;

/**
 * Runs a {@link Profiler} on `thread`: `write` streams chunks with backpressure (it waits while
 * {@link IN_FLIGHT} chunks of up to {@link SEND_BYTES} are unparsed), `end` resolves with the result
 * and hands the thread to `release`, `terminate` stops the thread at once.
 */
function runProfile(
  thread: Worker,
  data: ThreadData,
  events: ThreadEvents,
  release: (thread: Worker) => void,
): ProfileThread {
  let inFlight = 0;
  let wake: (() => void) | null = null;
  let failure: Error | null = null;
  /** Set once the profile ended or failed: the thread is no longer this profile's. */
  let detached = false;
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
  const detach = () => {
    detached = true;
    thread.off('message', onMessage);
    thread.off('error', onError);
    thread.off('exit', onExit);
  };
  const stop = () => {
    if (detached) return Promise.resolve();
    detach();
    return thread.terminate().then(() => undefined);
  };

  function onMessage(message: FromThread) {
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
        detach();
        release(thread);
        settle?.resolve(result);
        return;
      }
      case 'error':
        fail(message.permanent ? new DatasetError(message.message) : new Error(message.message));
        void stop();
        return;
    }
  }
  function onError(err: Error) {
    fail(err);
  }
  function onExit(code: number) {
    fail(new Error(`the profile thread exited (code ${code}) before it finished`));
  }
  const send = (message: ToThread, transfer: ArrayBuffer[] = []) => thread.postMessage(message, transfer);
  send({ type: 'start', data });
  // A copy the thread can own (body chunks may share a pooled ArrayBuffer), gathered here.
  let buffer = new Uint8Array(SEND_BYTES);
  let gathered = 0;
  const sendGathered = () => {
    const bytes = buffer.subarray(0, gathered);
    inFlight++;
    send({ type: 'chunk', data: bytes }, [bytes.buffer as ArrayBuffer]);
    buffer = new Uint8Array(SEND_BYTES);
    gathered = 0;
  };
  thread.on('message', onMessage);
  thread.on('error', onError);
  thread.on('exit', onExit);
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
      await stop();
    },
  };
}
