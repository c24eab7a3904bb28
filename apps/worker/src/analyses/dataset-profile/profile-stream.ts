import { gunzipSync } from 'node:zlib';
import type { AnalysisContext } from '../../define-analysis.ts';
import type { OpenedSource, SourceValidator } from './dataset-source.ts';
import type { ThreadResult } from './profile-thread.ts';
import type { ProfileThreads } from './profile-thread-client.ts';
import type { ProfileOptions, ProfilerState } from './profiler.ts';

/** What a profile saves between attempts. `state` is the thread's gzipped, base64'd aggregation state. */
interface SavedProfile {
  /** 2 since the profiler's state is version 2 (see `ProfilerState.v`): an earlier save starts over. */
  v: 2;
  offset: number;
  rows: number;
  elapsedMs: number;
  validator: SourceValidator;
  state: string;
}

function savedProfile(restored: unknown): SavedProfile | undefined {
  const s = restored as Partial<SavedProfile> | undefined;
  if (s?.v !== 2 || typeof s.offset !== 'number' || typeof s.state !== 'string') return undefined;
  return s as SavedProfile;
}

/** A packed state (see `packState`) read back. */
export function unpackState(packed: string): ProfilerState {
  return JSON.parse(gunzipSync(Buffer.from(packed, 'base64')).toString('utf8')) as ProfilerState;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

function describe(rows: number, bytes: number, total: number | null): string {
  const read = total === null ? `${mb(bytes)} read` : `${mb(bytes)} of ${mb(total)}`;
  return `${rows.toLocaleString('en-US')} rows, ${read}`;
}

export interface StreamSpec {
  /** The profiler's options (the format hint is added from the source). */
  options: Omit<ProfileOptions, 'formatHint'>;
  /**
   * Opens the bytes from `from` on: the first byte (`start`), or a checkpoint's offset with the
   * validator saved with it. The opened source says where it really starts.
   */
  open(from: number, validator: SourceValidator | undefined): Promise<OpenedSource>;
  /** Where the bytes to profile start: 0 for a whole dataset, a part's first byte. */
  start: number;
  /** The state at `start` for a part (see `partStart`); none for a whole dataset. */
  initial?: ProfilerState;
  /** Hand back the final state instead of the summary (see ThreadResult). */
  keepState?: boolean;
  checkpointMs: number;
  /** Where the profile runs. */
  threads: ProfileThreads;
}

/**
 * Streams a dataset's bytes into a worker thread that parses and aggregates them, checkpointing
 * its state so a retry resumes where the last checkpoint was: the loop every profile runs, of a
 * whole dataset or of one part. Progress is by bytes of the span being read.
 */
export async function streamProfile(
  spec: StreamSpec,
  ctx: AnalysisContext,
): Promise<ThreadResult & { resumedFrom: number; durationMs: number }> {
  const started = Date.now();
  let saved = savedProfile(ctx.restored);
  ctx.progress(0, 'fetching', saved ? `resuming at byte ${saved.offset}` : 'opening the dataset');
  const source = await spec.open(saved?.offset ?? spec.start, saved?.validator);
  if (saved && source.offset !== saved.offset) {
    ctx.log.warn({ offset: saved.offset }, 'the dataset changed or cannot be resumed; profiling it from the start');
    saved = undefined;
  }
  const restored = saved ? unpackState(saved.state) : spec.initial;
  const priorMs = saved?.elapsedMs ?? 0;
  const { total } = source;
  const { start } = spec;
  const span = total === null ? null : total - start;
  const percentOf = (bytes: number) => (span ? Math.min(97, ((bytes - start) / span) * 97) : 0);
  const progressOf = (rows: number, bytes: number) => describe(rows, bytes - start, span);

  // Checkpoint writes are chained so they land in order, and never block the byte pump.
  let checkpoints: Promise<void> = Promise.resolve();
  const thread = spec.threads.start(
    {
      options: { ...spec.options, formatHint: source.formatHint },
      restored,
      checkpointMs: spec.checkpointMs,
      keepState: spec.keepState ?? false,
    },
    {
      progress: (bytes, rows) => ctx.progress(percentOf(bytes), 'aggregating', progressOf(rows, bytes)),
      checkpoint: ({ offset, rows, state }) => {
        const entry: SavedProfile = {
          v: 2,
          offset,
          rows,
          elapsedMs: priorMs + Date.now() - started,
          validator: source.validator,
          state,
        };
        checkpoints = checkpoints
          .then(() => ctx.checkpoint(entry))
          .catch((err) => ctx.log.warn({ err, offset }, 'checkpoint write failed; the next one will try again'));
      },
      finalizing: (rows) => ctx.progress(98, 'finalizing', `${rows.toLocaleString('en-US')} rows`),
    },
  );
  const onAbort = () => void thread.terminate(new Error('aborted'));
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    ctx.progress(percentOf(source.offset), 'parsing', progressOf(restored?.rows ?? 0, source.offset));
    for await (const chunk of source.chunks) {
      ctx.signal.throwIfAborted();
      await thread.write(chunk);
    }
    const result = await thread.end();
    await checkpoints;
    ctx.progress(100, 'finalizing', `${result.rows.toLocaleString('en-US')} rows profiled`);
    return { ...result, resumedFrom: source.offset, durationMs: priorMs + Date.now() - started };
  } catch (err) {
    ctx.signal.throwIfAborted();
    throw err;
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    void thread.terminate(new Error('finished'));
  }
}
