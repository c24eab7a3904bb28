/**
 * The worker-thread side of a profile: parsing and aggregation, the CPU-bound part, run here so
 * the worker's event loop stays free to renew job locks, write progress and hear cancels.
 * Protocol: see {@link ToThread} and {@link FromThread}.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import { DatasetError } from './dataset-error.ts';
import { type ProfileOptions, Profiler, type ProfilerState, type ProfileSummary } from './profiler.ts';

export interface ThreadData {
  options: ProfileOptions;
  restored: ProfilerState | undefined;
  checkpointMs: number;
  /**
   * Hand back the final state, packed, instead of the summary (a part of a parallel profile returns
   * its state for the parent to merge and summarize).
   */
  keepState?: boolean;
}

/** What a finished profile hands back. */
export interface ThreadResult {
  rows: number;
  /** The profile, unless `keepState` was asked for. */
  summary?: ProfileSummary;
  /** The final state, packed ({@link packState}), when `keepState` was asked for. */
  state?: string;
  /** Whether the bytes ended inside a quoted field (see `Profiler.endsInQuote`). */
  endsInQuote: boolean;
}

/**
 * `start` begins a profile (a thread runs one at a time, and is reused for the next one: its
 * compiled code stays warm); `end` finishes it. A thread given its profile in `workerData` instead
 * (bench/dataset-profile-run.mjs) starts it with its first chunk.
 */
export type ToThread = { type: 'start'; data: ThreadData } | { type: 'chunk'; data: Uint8Array } | { type: 'end' };

export type FromThread =
  | { type: 'ack'; bytes: number; rows: number }
  | { type: 'checkpoint'; offset: number; rows: number; state: string }
  | { type: 'finalizing'; rows: number }
  | ({ type: 'done' } & ThreadResult)
  | { type: 'error'; message: string; permanent: boolean };

/** The state gzipped and base64'd: checkpoints go to Redis, and sketches compress well. */
export function packState(state: ProfilerState): string {
  return gzipSync(JSON.stringify(state)).toString('base64');
}

const port = parentPort;
if (port) {
  const post = (message: FromThread) => port.postMessage(message);
  let pending: ThreadData | null = (workerData as ThreadData | undefined)?.options ? (workerData as ThreadData) : null;
  let run: { profiler: Profiler; data: ThreadData; lastCheckpoint: number } | null = null;
  port.on('message', async (message: ToThread) => {
    try {
      if (message.type === 'start') {
        pending = message.data;
        run = null;
        return;
      }
      if (!run && pending) {
        run = { profiler: new Profiler(pending.options, pending.restored), data: pending, lastCheckpoint: Date.now() };
        pending = null;
      }
      if (!run) throw new Error('the profile thread got data before a start');
      const { profiler, data } = run;
      if (message.type === 'chunk') {
        profiler.write(message.data);
        const now = Date.now();
        if (now - run.lastCheckpoint >= data.checkpointMs && profiler.resumable()) {
          run.lastCheckpoint = now;
          const state = profiler.state();
          post({ type: 'checkpoint', offset: state.offset, rows: state.rows, state: packState(state) });
        }
        post({ type: 'ack', bytes: profiler.bytesRead, rows: profiler.rowCount });
        return;
      }
      run = null;
      await profiler.end();
      post({ type: 'finalizing', rows: profiler.rowCount });
      const result: ThreadResult = { rows: profiler.rowCount, endsInQuote: profiler.endsInQuote };
      if (data.keepState) result.state = packState(profiler.state());
      else result.summary = profiler.summary();
      post({ type: 'done', ...result });
    } catch (err) {
      run = null;
      pending = null;
      post({
        type: 'error',
        message: err instanceof Error ? err.message : String(err),
        permanent: err instanceof DatasetError,
      });
    }
  });
}
