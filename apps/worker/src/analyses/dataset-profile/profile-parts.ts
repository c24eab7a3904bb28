import { DATASET_MAX_COLUMNS } from '@longhaul/shared/analyses/dataset-profile-limits';
import { ColumnStats } from './column-stats.ts';
import {
  type DatasetFormat,
  type ProfileOptions,
  Profiler,
  type ProfilerState,
  type ProfileSummary,
  SNIFF_BYTES,
} from './profiler.ts';
import type { CsvDialect } from './sniff.ts';

/** What every part of one dataset shares: found once, from the dataset's first bytes. */
export interface PartLayout {
  format: DatasetFormat;
  /** The CSV dialect (given or sniffed from the first bytes); null for NDJSON. */
  dialect: CsvDialect | null;
  /** CSV: the field names, from the header or `column_N`; null for NDJSON. */
  names: string[] | null;
}

/** A part's profile: its aggregation state, and whether its bytes ended inside a quoted field. */
export interface PartProfile {
  state: ProfilerState;
  endsInQuote: boolean;
}

const LF = 0x0a;

/**
 * The format, dialect and field names of a dataset whose first {@link SNIFF_BYTES} bytes are
 * `head`, found the way one pass finds them (a profiler is run over `head` and thrown away), or
 * null when `head` cannot tell: a shorter dataset, or a CSV whose first record does not end
 * within it. Throws what one pass would throw on these bytes (UTF-16, an unknown column, …).
 */
export function layoutOf(head: Uint8Array, options: ProfileOptions): PartLayout | null {
  if (head.length < SNIFF_BYTES) return null;
  const probe = new Profiler(options);
  probe.write(head.subarray(0, SNIFF_BYTES));
  const { format, dialect, names } = probe.state();
  if (format === 'csv' && names === null) return null;
  return { format, dialect, names };
}

/** Where a CSV scan is: outside quotes, inside a quoted field, or inside just after a quote. */
const OUTSIDE = 0;
const INSIDE = 1;
const AFTER_QUOTE = 2;

/**
 * A record boundary in `window`, whose byte 0 is the one just before the wanted split point:
 * the index just past a record-ending newline at or after index 1, or -1 when there is none.
 *
 * NDJSON: the first newline. CSV: whether a newline ends a record depends on whether the scan is
 * inside quotes, which the bytes before the window decide. So the window is scanned three times
 * at once, from each state the split point can be in (outside quotes, inside a quoted field, or
 * inside just after a quote, which a next quote would make a doubled one), by the rules the
 * record batcher applies. Once the three agree they stay together, and the next newline read
 * outside quotes ends a record whatever came before. If they never agree (no quote in the
 * window), the first newline is taken: the likely case, since a quoted field that has not closed
 * within the window is rare. The parts check it either way (see {@link mergeParts}).
 */
export function recordBoundary(window: Uint8Array, quote: number | null, delimiter: number): number {
  if (quote === null) {
    const nl = window.indexOf(LF, 1);
    return nl === -1 ? -1 : nl + 1;
  }
  const states = [OUTSIDE, INSIDE, AFTER_QUOTE];
  let converged = false;
  let firstNewline = -1;
  for (let i = 1; i < window.length; i++) {
    const b = window[i] as number;
    const before = window[i - 1] as number;
    for (let h = 0; h < states.length; h++) {
      let state = states[h] as number;
      if (state === AFTER_QUOTE) state = b === quote ? INSIDE : OUTSIDE;
      else if (state === INSIDE) state = b === quote ? AFTER_QUOTE : INSIDE;
      else if (b === quote && (before === LF || before === delimiter)) state = INSIDE;
      // A quote just read after another (AFTER_QUOTE → INSIDE) is consumed: no state reads it twice.
      states[h] = state;
    }
    if (b === LF) {
      if (firstNewline === -1 && states[0] === OUTSIDE) firstNewline = i + 1;
      if (converged && states[0] === OUTSIDE) return i + 1;
    }
    if (!converged && states[0] === states[1] && states[1] === states[2]) converged = true;
  }
  return converged ? -1 : firstNewline;
}

/**
 * The state a part starts from, as if a single pass had just reached `start` (a record boundary)
 * with nothing counted yet. Part 0 starts at byte 0 and reads the header itself, exactly as one
 * pass does; the others are given the field names. A CSV's column-cap note is left to part 0.
 */
export function partStart(layout: PartLayout, start: number): ProfilerState {
  return {
    v: 2,
    format: layout.format,
    dialect: layout.dialect,
    names: start === 0 ? null : layout.names,
    offset: start,
    lines: 0,
    rows: 0,
    errors: { count: 0, first: [] },
    columns: [],
    capNoted: layout.format === 'csv' && start > 0,
    longRecords: 0,
  };
}

/**
 * Merges the profiles of consecutive byte ranges, in order, into the profile one pass over the
 * whole dataset gives (`total` bytes): row, line and error counts add up, parse errors keep their
 * order with line numbers shifted by the lines before their range, and columns merge as
 * `ColumnStats.merge` describes, in the order one pass first met them.
 *
 * It answers `unsafe` instead when the split was not at record boundaries, which only the parts
 * can tell: part k is read from a record boundary (part 0 from byte 0; the others by induction),
 * so if it ends outside quotes its end, where part k + 1 starts, is a record boundary too, and if
 * it ends inside a quoted field, a quoted newline was cut there. Also `unsafe`: a record over the
 * 4 MiB record limit (where one pass drops it depends on how the bytes arrived), and NDJSON with
 * more than 500 keys (which 500 one pass keeps depends on the order it met them), and a part
 * profiled by an earlier version of the worker, during a rolling deploy (its hashes differ).
 */
export function mergeParts(
  options: ProfileOptions,
  parts: { start: number; profile: PartProfile }[],
  total: number,
): { summary: ProfileSummary } | { unsafe: string } {
  const first = parts[0]?.profile.state;
  if (!first) throw new Error('no parts to merge');
  for (let k = 0; k + 1 < parts.length; k++) {
    if (parts[k]?.profile.endsInQuote) {
      return {
        unsafe: `a quoted field holds a newline across byte ${parts[k + 1]?.start}, where the dataset was split`,
      };
    }
  }
  if (parts.some((p) => p.profile.state.v !== 2)) {
    return { unsafe: 'a part was profiled by an earlier version of the worker' };
  }
  if (parts.some((p) => (p.profile.state.longRecords ?? 0) > 0)) {
    return { unsafe: 'a record is longer than the 4 MiB record limit' };
  }
  if (first.format === 'ndjson') {
    const keys = new Set(parts.flatMap((p) => p.profile.state.columns.map((c) => c.name)));
    if (keys.size > DATASET_MAX_COLUMNS || parts.some((p) => p.profile.state.capNoted)) {
      return { unsafe: `the NDJSON has more than ${DATASET_MAX_COLUMNS} keys` };
    }
  }

  const columns = new Map<string, ColumnStats>();
  const errors: ProfilerState['errors'] = { count: 0, first: [] };
  let lines = 0;
  let rows = 0;
  for (const { profile } of parts) {
    const { state } = profile;
    for (const e of state.errors.first) {
      if (errors.first.length < options.maxErrors) errors.first.push({ line: lines + e.line, message: e.message });
    }
    errors.count += state.errors.count;
    for (const c of state.columns) {
      const stats = ColumnStats.fromState(c);
      const known = columns.get(c.name);
      if (known) known.merge(stats);
      else columns.set(c.name, stats);
    }
    lines += state.lines;
    rows += state.rows;
  }
  const merged: ProfilerState = {
    v: 2,
    format: first.format,
    dialect: first.dialect,
    names: first.names,
    offset: total,
    lines,
    rows,
    errors,
    columns: [...columns.values()].map((c) => c.toState()),
    capNoted: first.capNoted ?? false,
    longRecords: 0,
  };
  return { summary: new Profiler(options, merged).summary() };
}
