import type { DatasetProfileInput } from '@longhaul/shared/analyses/dataset-profile';
import { DATASET_PART_BYTES } from '@longhaul/shared/analyses/dataset-profile-limits';
import { type OpenedRange, openRange, type SourceLimits, type SourceValidator } from './dataset-source.ts';
import { layoutOf, type PartLayout, recordBoundary } from './profile-parts.ts';
import { SNIFF_BYTES } from './profiler.ts';

/** The smallest part worth a child job: below it a dataset is not split further. */
export const MIN_PART_BYTES = 256 * 1024;
/** Bytes read after each split point to find the record boundary after it; then a longer look. */
const WINDOWS = [64 * 1024, 1024 * 1024];
/** Split points probed at once. */
const PROBES_AT_ONCE = 8;
/** Field names larger than this (as JSON) are not handed to every part: the dataset is read in one pass. */
const MAX_NAMES_BYTES = 64 * 1024;

/** A byte range `[start, end)` of the dataset. */
export interface PartRange {
  start: number;
  end: number;
}

/** How a dataset is profiled: in parts, or in one pass and why. Plain JSON (a durable step stores it). */
export type SplitPlan =
  | { parts: null; reason: string }
  | {
      parts: PartRange[];
      total: number;
      validator: SourceValidator & { length: number };
      layout: PartLayout;
      /** When the plan was made (epoch ms): a parallel profile's duration counts from here. */
      plannedAt: number;
    };

async function readAll(opened: OpenedRange & { ranged: true }): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of opened.chunks) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const onePass = (reason: string): SplitPlan => ({ parts: null, reason });

/**
 * Plans a parallel profile of a URL dataset, with Range requests only:
 *
 * 1. The first 64 KiB: the server must answer a range with the dataset's size; the format,
 *    dialect and header come from these bytes, as one pass finds them (see `layoutOf`).
 * 2. The number of parts: `parallelism`, or one per 64 MiB; at most one per 256 KiB.
 * 3. Each split point, at an equal share of the bytes, moves to the record boundary after it,
 *    found in a small window read there (see `recordBoundary`); a point with none nearby is dropped.
 *
 * Anything that rules a split out (no Range support, no size, too small, parallelism 1, a header
 * longer than the first 64 KiB) gives a one-pass plan with the reason. Errors one pass would hit on
 * the same bytes (a refused URL, HTTP 404, UTF-16) are thrown as they would be there.
 */
export async function planSplit(
  url: string,
  input: DatasetProfileInput,
  { limits, signal }: { limits: SourceLimits; signal: AbortSignal },
): Promise<SplitPlan> {
  if (input.parallelism === 1) return onePass('parallelism is 1');
  const head = await openRange(url, 0, SNIFF_BYTES, undefined, { limits, signal });
  if (!head.ranged) return onePass(`the dataset cannot be split: ${head.reason}`);
  const { total, formatHint } = head;
  const validator = { ...head.validator, length: total };
  const headBytes = await readAll(head);

  const wanted = input.parallelism ?? Math.max(1, Math.ceil(total / DATASET_PART_BYTES));
  if (wanted <= 1) return onePass(`the dataset is smaller than ${DATASET_PART_BYTES / 1024 ** 2} MiB`);
  const count = Math.min(wanted, Math.floor(total / MIN_PART_BYTES));
  if (count <= 1) {
    return onePass(`the dataset is too small to split (${total} bytes; a part needs ${MIN_PART_BYTES} at least)`);
  }
  const layout = layoutOf(headBytes, { ...input, formatHint });
  if (!layout) return onePass(`its first record does not end within the first ${SNIFF_BYTES} bytes`);
  if (Buffer.byteLength(JSON.stringify(layout.names)) > MAX_NAMES_BYTES) {
    return onePass('its header is too large to hand to every part');
  }

  const quote = layout.dialect ? Buffer.from(layout.dialect.quote, input.encoding)[0] : undefined;
  const delimiter = layout.dialect ? Buffer.from(layout.dialect.delimiter, input.encoding).at(-1) : undefined;
  const targets = Array.from({ length: count - 1 }, (_, k) => Math.floor(((k + 1) * total) / count));
  const boundaries: (number | null)[] = [];
  let refused: string | null = null;
  for (let at = 0; at < targets.length && refused === null; at += PROBES_AT_ONCE) {
    const found = await Promise.all(
      targets.slice(at, at + PROBES_AT_ONCE).map(async (target) => {
        for (const size of WINDOWS) {
          const from = target - 1;
          const window = await openRange(url, from, Math.min(total, from + size), validator, { limits, signal });
          if (!window.ranged) {
            refused = window.reason;
            return null;
          }
          const bytes = await readAll(window);
          const boundary = recordBoundary(bytes, quote ?? null, delimiter ?? 0);
          if (boundary > 0) return from + boundary;
          if (from + size >= total) return null;
        }
        return null;
      }),
    );
    boundaries.push(...found);
  }
  if (refused !== null) return onePass(`the dataset cannot be split: ${refused}`);
  const starts = [0];
  for (const b of boundaries) if (b !== null && b > (starts.at(-1) as number) && b < total) starts.push(b);
  if (starts.length <= 1) return onePass('no record boundary was found near the split points');
  return {
    parts: starts.map((start, k) => ({ start, end: starts[k + 1] ?? total })),
    total,
    validator,
    layout,
    plannedAt: Date.now(),
  };
}
