import {
  analyses,
  type Config,
  type DatasetProfileInput,
  type DatasetProfilePartInput,
  datasetProfilePartResult,
} from '@longhaul/shared';
import { type AnalysisContext, defineAnalysis } from '../define-analysis.ts';
import { PermanentError } from '../errors/permanent-error.ts';
import type { SpawnOutcome } from '../spawn.ts';
import { DatasetError } from './dataset-profile/dataset-error.ts';
import { forbidden, openInline, openUrl, type SourceValidator } from './dataset-profile/dataset-source.ts';
import { mergeParts, type PartProfile } from './dataset-profile/profile-parts.ts';
import { streamProfile, unpackState } from './dataset-profile/profile-stream.ts';
import { createProfileThreads, type ProfileThreads } from './dataset-profile/profile-thread-client.ts';
import { planSplit } from './dataset-profile/split-plan.ts';

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

/** A part's profile unpacked from its outcome (`ctx.spawn` with `continueOnFailure`), or why there is none. */
function partProfile(outcome: SpawnOutcome): PartProfile | string {
  if (outcome.status !== 'completed') return `${outcome.status}: ${outcome.error.message}`;
  const parsed = datasetProfilePartResult.safeParse(outcome.result);
  if (!parsed.success) return 'its result is not a part profile';
  return { state: unpackState(parsed.data.state), endsInQuote: parsed.data.endsInQuote };
}

/**
 * `dataset-profile`: streams a CSV or NDJSON dataset (inline or from a URL) into a worker thread
 * that parses and aggregates it, checkpointing its state so a retry resumes where the last
 * checkpoint was. A large URL dataset whose server answers Range requests is split into byte-range
 * parts instead, each a `dataset-profile-part` child job, and their profiles are merged; a split
 * the parts find unsafe (a quoted newline across it) is read in one pass after all. See
 * docs/dataset-profile.md.
 */
export function createDatasetProfile(
  options: Partial<DatasetProfileOptions> = {},
  threads: ProfileThreads = createProfileThreads(),
) {
  const limits = { ...DATASET_DEFAULTS, ...options };

  /**
   * The tenant is told which rule its URL broke; where the URL led stays in the worker's log (the
   * address only: the URL is part of the input, which logs never carry).
   */
  const logRefused = (err: unknown, ctx: AnalysisContext) => {
    const refused = forbidden(err);
    if (refused) ctx.log.debug({ address: refused.address, range: refused.range }, 'dataset URL refused');
    throw err;
  };

  function open(
    input: DatasetProfileInput,
    from: number,
    validator: SourceValidator | undefined,
    ctx: AnalysisContext,
  ) {
    if ('inline' in input.source) return Promise.resolve(openInline(input.source.inline, from, limits.maxBytes));
    return openUrl(input.source.url, from, validator, { limits, signal: ctx.signal }).catch((err: unknown) =>
      logRefused(err, ctx),
    );
  }

  /** One pass over the whole dataset, in this job. */
  async function onePass(input: DatasetProfileInput, ctx: AnalysisContext, reason: string) {
    const result = await streamProfile(
      {
        options: input,
        open: (from, validator) => open(input, from, validator, ctx),
        start: 0,
        checkpointMs: limits.checkpointMs,
        threads,
      },
      ctx,
    );
    if (!result.summary) throw new Error('the profile thread returned no summary');
    return {
      ...result.summary,
      parallel: false,
      parts: 1,
      reason,
      resumedFrom: result.resumedFrom,
      attempts: ctx.attempt,
      durationMs: result.durationMs,
    };
  }

  /**
   * Splits a URL dataset into parts run as child jobs, and merges their profiles. The plan is a
   * durable step, so a re-run (the job is re-run from the top once its children are done) gets the
   * very parts `spawn` started; `spawn` itself is memoized the same way.
   */
  async function inParts(url: string, input: DatasetProfileInput, ctx: AnalysisContext) {
    ctx.progress(0, 'fetching', 'finding where to split the dataset');
    const plan = await ctx.step('split', () =>
      planSplit(url, input, { limits, signal: ctx.signal }).catch((err: unknown) => logRefused(err, ctx)),
    );
    if (plan.parts === null) return onePass(input, ctx, plan.reason);
    const { layout, validator, parts } = plan;
    ctx.progress(1, 'parsing', `profiling ${parts.length} parts in parallel`);
    const children = parts.map(({ start, end }) => ({
      type: 'dataset-profile-part' as const,
      input: {
        url,
        start,
        end,
        validator,
        format: layout.format,
        dialect: layout.dialect,
        names: start === 0 ? null : layout.names,
        encoding: input.encoding,
        columns: input.columns,
        nullValues: input.nullValues,
        maxErrors: input.maxErrors,
      } satisfies DatasetProfilePartInput,
    }));
    // The parts run on any free worker; this job waits for them without holding one (ctx.spawn).
    const profiles = (await ctx.spawn(children, { continueOnFailure: true })).map(partProfile);
    const failed = profiles.findIndex((p) => typeof p === 'string');
    let merged: ReturnType<typeof mergeParts>;
    if (failed >= 0) {
      merged = { unsafe: `part ${failed + 1} of ${parts.length} ${profiles[failed]}` };
    } else {
      ctx.progress(98, 'finalizing', `merging ${parts.length} parts`);
      const options = { ...input, formatHint: layout.format };
      merged = mergeParts(
        options,
        parts.map(({ start }, k) => ({ start, profile: profiles[k] as PartProfile })),
        plan.total,
      );
    }
    if ('unsafe' in merged) {
      // Not the reason itself: a part's error may quote the data (a column name). The result has it.
      ctx.log.info(
        { parts: parts.length, failedPart: failed + 1 || undefined },
        'parts set aside; reading the dataset in one pass',
      );
      return onePass(input, ctx, `${merged.unsafe}; the dataset was read in one pass instead`);
    }
    ctx.progress(100, 'finalizing', `${merged.summary.rowCount.toLocaleString('en-US')} rows profiled`);
    return {
      ...merged.summary,
      parallel: true,
      parts: parts.length,
      resumedFrom: 0,
      attempts: ctx.attempt,
      durationMs: Date.now() - plan.plannedAt,
    };
  }

  async function profile(input: DatasetProfileInput, ctx: AnalysisContext) {
    if ('inline' in input.source) return onePass(input, ctx, 'an inline dataset is read in one pass');
    return inParts(input.source.url, input, ctx);
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
