import { analyses, type DatasetProfilePartInput } from '@longhaul/shared';
import { defineAnalysis } from '../define-analysis.ts';
import { PermanentError } from '../errors/permanent-error.ts';
import { DatasetError } from './dataset-profile/dataset-error.ts';
import { type OpenedSource, openRange } from './dataset-profile/dataset-source.ts';
import { partStart } from './dataset-profile/profile-parts.ts';
import { streamProfile } from './dataset-profile/profile-stream.ts';
import { createProfileThreads, type ProfileThreads } from './dataset-profile/profile-thread-client.ts';
import { DATASET_DEFAULTS, type DatasetProfileOptions } from './dataset-profile.ts';

/**
 * `dataset-profile-part`: one byte range of a parallel `dataset-profile`, a child job of it. It
 * reads `[start, end)` with a Range request (the same address guard, size cap and timeouts as a
 * whole profile; the answer held to that range), profiles it from the state one pass would have
 * at `start` (see `partStart`), checkpointing as it goes, and returns its packed state for the
 * parent to merge. A dataset that changed since the parent split it, or a server that stops
 * answering ranges, fails the part for good: the parent then reads the dataset in one pass.
 */
export function createDatasetProfilePart(
  options: Partial<DatasetProfileOptions> = {},
  threads: ProfileThreads = createProfileThreads(),
) {
  const limits = { ...DATASET_DEFAULTS, ...options };

  async function open(input: DatasetProfilePartInput, from: number, signal: AbortSignal): Promise<OpenedSource> {
    const opened = await openRange(input.url, from, input.end, input.validator, { limits, signal });
    if (!opened.ranged) {
      throw new DatasetError(`cannot read bytes ${from} to ${input.end} of the dataset: ${opened.reason}`);
    }
    return { offset: from, total: input.end, formatHint: undefined, validator: input.validator, chunks: opened.chunks };
  }

  return defineAnalysis({
    ...analyses['dataset-profile-part'],
    async run(input, ctx) {
      const { format, dialect, names } = input;
      try {
        const result = await streamProfile(
          {
            options: {
              format,
              encoding: input.encoding,
              columns: input.columns,
              nullValues: input.nullValues,
              maxErrors: input.maxErrors,
              topK: 0,
              bins: 1,
            },
            open: (from) => open(input, from, ctx.signal),
            start: input.start,
            initial: partStart({ format, dialect, names }, input.start),
            keepState: true,
            checkpointMs: limits.checkpointMs,
            threads,
          },
          ctx,
        );
        return {
          state: result.state as string,
          endsInQuote: result.endsInQuote,
          rows: result.rows,
          bytes: input.end - input.start,
          durationMs: result.durationMs,
        };
      } catch (err) {
        if (err instanceof DatasetError) throw new PermanentError(err.message, 'invalid_input');
        throw err;
      }
    },
  });
}

/** `dataset-profile-part` with the default limits; `main.ts` builds the configured one. */
export const datasetProfilePart = createDatasetProfilePart();
