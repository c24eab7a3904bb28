import { z } from 'zod';
import { defineContract } from '../analysis.ts';
import { DATASET_MAX_COLUMNS, DATASET_MAX_PARALLELISM, DATASET_QUANTILES } from './dataset-profile-limits.ts';

const single = (what: string) => z.string().length(1, `${what} must be one character`);

const inlineSource = z
  .object({
    inline: z
      .string()
      .min(1, 'the inline dataset is empty')
      .describe('The dataset itself, as text (bounded by the API body limit).'),
  })
  .strict();

/** A dataset URL: http(s), at most 4 KiB. */
export const datasetUrl = z.url({ protocol: /^https?$/, error: 'must be an http or https URL' }).max(4096);

const urlSource = z
  .object({
    url: datasetUrl.describe(
      'An http(s) URL the worker streams the dataset from: size, time and redirects bounded; private addresses refused unless the deployment allows them.',
    ),
  })
  .strict();

const csvOptions = z
  .object({
    delimiter: single('delimiter')
      .optional()
      .describe('Field delimiter. Detected from the first lines when omitted (, ; tab |).'),
    quote: single('quote').optional().describe('Quote character. Detected when omitted (" unless only \' is used).'),
    header: z
      .boolean()
      .optional()
      .describe(
        'Whether the first record names the columns. Detected when omitted: the first record is a header when none of its values is empty, numeric, boolean or a date and no name repeats, or when none is numeric, boolean or a date and some column below a name holds only such values (a blank name over an index column, as pandas writes it).',
      ),
  })
  .strict();

export const datasetProfileInput = z
  .object({
    source: z
      .union([inlineSource, urlSource])
      .describe('Where the dataset is: `{ "inline": "a,b\\n1,2" }` or `{ "url": "https://…" }`.'),
    format: z
      .enum(['csv', 'ndjson'])
      .optional()
      .describe(
        'csv or ndjson (one JSON object per line). Detected when omitted: from the URL extension or Content-Type, else from the first byte (`{` means ndjson).',
      ),
    encoding: z
      .enum(['utf-8', 'latin1'])
      .default('utf-8')
      .describe('Text encoding. Invalid UTF-8 fails with the byte offset of the first bad byte.'),
    csv: csvOptions.optional().describe('CSV dialect; anything omitted is detected.'),
    columns: z
      .array(z.string().min(1).max(256))
      .min(1)
      .max(DATASET_MAX_COLUMNS)
      .optional()
      .describe('Profile only these columns (by name; `column_1`… when the CSV has no header). Default: all.'),
    topK: z.number().int().min(0).max(100).default(10).describe('How many most frequent values to report per column.'),
    bins: z.number().int().min(1).max(100).default(10).describe('Histogram bins for numeric and date/time columns.'),
    nullValues: z
      .array(z.string().max(64))
      .max(50)
      .default(['', 'null', 'NULL', 'NA', 'N/A', 'NaN'])
      .describe('Values counted as nulls (compared after trimming spaces). JSON null and missing keys always are.'),
    maxErrors: z
      .number()
      .int()
      .min(0)
      .max(1000)
      .default(20)
      .describe('How many parse errors to list (all are counted); malformed rows are skipped, not fatal.'),
    parallelism: z
      .number()
      .int()
      .min(1)
      .max(DATASET_MAX_PARALLELISM)
      .optional()
      .describe(
        'A URL dataset of known size whose server answers Range requests is split into this many byte ranges, profiled as child jobs on whatever workers are free and merged. Default: one part per 64 MiB (1 below that). 1 reads it in one pass.',
      ),
  })
  .strict();

export const COLUMN_TYPES = ['integer', 'number', 'boolean', 'datetime', 'string', 'empty'] as const;

const scalar = z.union([z.number(), z.string()]).nullable();

const columnProfile = z.object({
  name: z.string(),
  type: z.enum(COLUMN_TYPES),
  /** Non-null values. count + nulls = the dataset's rowCount. */
  count: z.number().int(),
  nulls: z.number().int(),
  typeCounts: z.object({
    integer: z.number().int(),
    number: z.number().int(),
    boolean: z.number().int(),
    datetime: z.number().int(),
    string: z.number().int(),
  }),
  distinct: z.object({ value: z.number().int(), estimated: z.boolean() }),
  min: scalar,
  max: scalar,
  mean: scalar,
  stdDev: z.number().nullable(),
  quantiles: z.record(z.enum(DATASET_QUANTILES), scalar).nullable(),
  quantilesEstimated: z.boolean(),
  topK: z.array(z.object({ value: z.string(), count: z.number().int() })),
  topKEstimated: z.boolean(),
  histogram: z
    .object({
      estimated: z.boolean(),
      bins: z.array(z.object({ lower: scalar, upper: scalar, count: z.number().int() })),
    })
    .nullable(),
});

export const datasetProfileResult = z.object({
  format: z.enum(['csv', 'ndjson']),
  dialect: z
    .object({ delimiter: z.string(), quote: z.string(), header: z.boolean() })
    .nullable()
    .describe('The CSV dialect used (given or detected); null for ndjson.'),
  rowCount: z.number().int(),
  bytes: z.number().int(),
  columns: z.array(columnProfile),
  parseErrors: z.object({
    count: z.number().int(),
    first: z.array(z.object({ line: z.number().int(), message: z.string() })),
  }),
  parallel: z
    .boolean()
    .describe('Whether the dataset was profiled in byte-range parts by child jobs and merged (see `parts`).'),
  parts: z.number().int().min(1).describe('How many byte ranges were profiled: 1 for one pass.'),
  reason: z
    .string()
    .optional()
    .describe(
      'Why the dataset was read in one pass (when `parallel` is false): an inline dataset, parallelism 1, no Range support, a quoted newline across a split, …',
    ),
  /** Byte offset this attempt resumed from (0 when it started from the beginning). */
  resumedFrom: z.number().int(),
  attempts: z.number().int(),
  durationMs: z.number(),
});

export type DatasetProfileInput = z.output<typeof datasetProfileInput>;
export type DatasetProfileResult = z.input<typeof datasetProfileResult>;
export type ColumnProfile = z.input<typeof columnProfile>;

/**
 * Profiles a CSV or NDJSON dataset the way a data team does before an analysis: per column the
 * inferred type, nulls, distinct values, min/max/mean/stdDev, quantiles, top values and a histogram.
 * See docs/dataset-profile.md.
 */
export const datasetProfile = defineContract({
  name: 'dataset-profile',
  summary: 'Profiles a CSV or NDJSON dataset (inline or by URL): types, nulls, distinct, quantiles, top-k, histograms.',
  input: datasetProfileInput,
  result: datasetProfileResult,
  steps: ['fetching', 'parsing', 'aggregating', 'finalizing'],
  defaults: { attempts: 3, backoffMs: 2_000, timeoutMs: 6 * 3_600_000 },
});

/**
 * The part of a profile that one pass and a parallel profile (merged from byte-range parts) must
 * agree on: every statistic, the stdDev up to rounding (12 digits); past the exact limit, the
 * top-k, quantiles and histogram are estimates within their stated error and are left out. The
 * HyperLogLog distinct estimate stays: it merges exactly. How the run went (`parallel`, `parts`,
 * `reason`, `durationMs`, `attempts`) is left out too. See docs/dataset-profile.md#parallel-profiles.
 */
export function comparableStatistics<C extends { stdDev: number | null; distinct: { estimated: boolean } }>(
  result: { columns: readonly C[] } & Record<string, unknown>,
) {
  const { parallel: _p, parts: _n, reason: _r, durationMs: _d, attempts: _a, ...rest } = result;
  return {
    ...rest,
    columns: result.columns.map((c) => ({
      ...c,
      stdDev: c.stdDev === null ? null : Number(c.stdDev.toPrecision(12)),
      ...(c.distinct.estimated ? { topK: [], quantiles: null, histogram: null } : {}),
    })),
  };
}
