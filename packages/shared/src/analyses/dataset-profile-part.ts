import { z } from 'zod';
import { defineContract } from '../analysis.ts';
import { datasetProfileInput, datasetUrl } from './dataset-profile.ts';
import { DATASET_MAX_COLUMNS } from './dataset-profile-limits.ts';

const offset = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const datasetProfilePartInput = z
  .object({
    url: datasetUrl.describe('The dataset URL, as the parent profile was given it.'),
    start: offset.describe('The first byte of the range: 0, or just after a record-ending newline.'),
    end: offset.describe('Just past the last byte of the range: the next part’s start, or the dataset’s size.'),
    validator: z
      .object({ etag: z.string().max(1024).optional(), length: offset })
      .strict()
      .describe('The size (and ETag) the parent saw: a part of a dataset that changed since fails.'),
    format: z.enum(['csv', 'ndjson']),
    dialect: z
      .object({ delimiter: z.string().min(1).max(4), quote: z.string().min(1).max(4), header: z.boolean() })
      .strict()
      .nullable()
      .describe('The CSV dialect, found once by the parent; null for NDJSON.'),
    names: z
      .array(z.string().max(65_536))
      .max(100_000)
      .nullable()
      .describe(
        'The CSV field names, read once from the header by the parent; null for part 0 (which reads the header itself) and NDJSON.',
      ),
    encoding: datasetProfileInput.shape.encoding,
    columns: z.array(z.string().min(1).max(256)).min(1).max(DATASET_MAX_COLUMNS).optional(),
    nullValues: z.array(z.string().max(64)).max(50),
    maxErrors: z.number().int().min(0).max(1000),
  })
  .strict()
  .refine((p) => p.start < p.end && p.end <= p.validator.length, {
    message: 'a part is a non-empty range within the dataset',
    path: ['end'],
  });

export const datasetProfilePartResult = z.object({
  /** The part's aggregation state: JSON, gzipped, base64 (the format of a profile's checkpoint). */
  state: z.string(),
  /** Whether the range ended inside a quoted field: then its end was no record boundary. */
  endsInQuote: z.boolean(),
  rows: z.number().int(),
  bytes: z.number().int(),
  durationMs: z.number(),
});

export type DatasetProfilePartInput = z.output<typeof datasetProfilePartInput>;
export type DatasetProfilePartResult = z.input<typeof datasetProfilePartResult>;

/**
 * One byte range of a parallel `dataset-profile`, started by the parent as a child job: it reads
 * `[start, end)` of the URL with a Range request, under the same limits as a whole profile, and
 * returns its partial state for the parent to merge. Internal: the parent builds its input; there
 * is no reason to submit one by hand. See docs/dataset-profile.md#parallel-profiles.
 */
export const datasetProfilePart = defineContract({
  name: 'dataset-profile-part',
  summary: 'Internal: one byte range of a parallel dataset-profile, started by the parent job.',
  input: datasetProfilePartInput,
  result: datasetProfilePartResult,
  steps: ['fetching', 'parsing', 'aggregating', 'finalizing'],
  defaults: { attempts: 3, backoffMs: 2_000, timeoutMs: 6 * 3_600_000 },
});
