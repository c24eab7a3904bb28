import { gunzipSync } from 'node:zlib';
import { analyses, type Config, type DatasetProfileInput } from '@longhaul/shared';
import { type AnalysisContext, defineAnalysis } from '../define-analysis.ts';
import { PermanentError } from '../errors/permanent-error.ts';
import { DatasetError } from './dataset-profile/dataset-error.ts';
import {
  forbidden,
  type OpenedSource,
  openInline,
  openUrl,
  type SourceValidator,
} from './dataset-profile/dataset-source.ts';
import { startProfileThread } from './dataset-profile/profile-thread-client.ts';
import type { ProfilerState } from './dataset-profile/profiler.ts';

export type DatasetProfileOptions = Config['dataset'];

/** The defaults of `DATASET_*` (packages/shared/src/config.ts), for tests and the static registry. */
export const DATASET_DEFAULTS: DatasetProfileOptions = {
  maxBytes: 20 * 1024 ** 3,
  fetchTimeoutMs: 30_000,
  fetchTotalMs: 3_600_000,
  maxRedirects: 5,
  allowPrivate: false,
  checkpointMs: 10_000,
};

/** What a profile saves between attempts. `state` is the thread's gzipped, base64'd aggregation state. */
interface SavedProfile {
  v: 1;
  offset: number;
  rows: number;
  elapsedMs: number;
  validator: SourceValidator;
  state: string;
}

function savedProfile(restored: unknown): SavedProfile | undefined {
  const s = restored as Partial<SavedProfile> | undefined;
  if (s?.v !== 1 || typeof s.offset !== 'number' || typeof s.state !== 'string') return undefined;
  return s as SavedProfile;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

function describe(rows: number, bytes: number, total: number | null): string {
  const read = total === null ? `${mb(bytes)} read` : `${mb(bytes)} of ${mb(total)}`;
  return `${rows.toLocaleString('en-US')} rows, ${read}`;
}

/**
 * `dataset-profile`: streams a CSV or NDJSON dataset (inline or from a URL) into a worker thread
 * that parses and aggregates it, checkpointing its state so a retry resumes where the last
 * checkpoint was. See docs/dataset-profile.md.
 */
export function createDatasetProfile(options: Partial<DatasetProfileOptions> = {}) {
  const limits = { ...DATASET_DEFAULTS, ...options };

  async function open(
    input: DatasetProfileInput,
    from: number,
    validator: SourceValidator | undefined,
    { signal, log }: Pick<AnalysisContext, 'signal' | 'log'>,
  ): Promise<OpenedSource> {
    if ('inline' in input.source) return openInline(input.source.inline, from, limits.maxBytes);
    return openUrl(input.source.url, from, validator, { limits, signal }).catch((err: unknown) => {
      // The tenant is told which rule it broke; where its URL led stays in the worker's log (the
      // address only: the URL is part of the input, which logs never carry).
      const refused = forbidden(err);
      if (refused) log.debug({ address: refused.address, range: refused.range }, 'dataset URL refused');
      throw err;
    });
  }

  async function profile(input: DatasetProfileInput, ctx: AnalysisContext) {
    const started = Date.now();
    let saved = savedProfile(ctx.restored);
    ctx.progress(0, 'fetching', saved ? `resuming at byte ${saved.offset}` : 'opening the dataset');
    const source = await open(input, saved?.offset ?? 0, saved?.validator, ctx);
    if (saved && source.offset !== saved.offset) {
      ctx.log.warn({ offset: saved.offset }, 'the dataset changed or cannot be resumed; profiling it from the start');
      saved = undefined;
    }
    const restored = saved
      ? (JSON.parse(gunzipSync(Buffer.from(saved.state, 'base64')).toString('utf8')) as ProfilerState)
      : undefined;
    const priorMs = saved?.elapsedMs ?? 0;
    const { total } = source;
    const percentOf = (bytes: number) => (total ? Math.min(97, (bytes / total) * 97) : 0);

    // Checkpoint writes are chained so they land in order, and never block the byte pump.
    let checkpoints: Promise<void> = Promise.resolve();
    const thread = startProfileThread(
      {
        options: { ...input, formatHint: source.formatHint },
        restored,
        checkpointMs: limits.checkpointMs,
      },
      {
        progress: (bytes, rows) => ctx.progress(percentOf(bytes), 'aggregating', describe(rows, bytes, total)),
        checkpoint: ({ offset, rows, state }) => {
          const entry: SavedProfile = {
            v: 1,
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
      ctx.progress(percentOf(source.offset), 'parsing', describe(restored?.rows ?? 0, source.offset, total));
      for await (const chunk of source.chunks) {
        ctx.signal.throwIfAborted();
        await thread.write(chunk);
      }
      const summary = await thread.end();
      await checkpoints;
      ctx.progress(100, 'finalizing', `${summary.rowCount.toLocaleString('en-US')} rows profiled`);
      return {
        ...summary,
        resumedFrom: source.offset,
        attempts: ctx.attempt,
        durationMs: priorMs + Date.now() - started,
      };
    } catch (err) {
      ctx.signal.throwIfAborted();
      throw err;
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      void thread.terminate(new Error('finished'));
    }
  }

  return defineAnalysis({
    ...analyses['dataset-profile'],
    async run(input, ctx) {
      try {
        return await profile(input, ctx);
      } catch (err) {
        if (err instanceof DatasetError) throw new PermanentError(err.message, 'invalid_input');
        throw err;
      }
    },
  });
}

/** `dataset-profile` with the default limits; `main.ts` builds the configured one. */
export const datasetProfile = createDatasetProfile();
