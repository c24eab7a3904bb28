/**
 * A synthetic CSV for the dataset-profile benchmarks: mixed columns the way exports look.
 * Deterministic (row `i` depends only on `i`), about 100 bytes a row, written to a file under
 * /tmp (never committed), reused by later runs while its size matches.
 *
 * Columns: id (unique integer), user (2M distinct strings: HyperLogLog), amount (decimals, skewed:
 * sketch), qty (small integers, 10% empty), active (boolean), created_at (ISO date-times),
 * category (50 strings, some quoted), score (decimals, 5% empty, some `NA`), note (quoted text,
 * with embedded commas, doubled quotes, and every 997th row an embedded newline).
 */
import { closeSync, existsSync, openSync, statSync, writeSync } from 'node:fs';

export const CSV_HEADER = 'id,user,amount,qty,active,created_at,category,score,note\n';

export function csvRow(i: number): string {
  const amount = ((i * 2654435761) % 1_000_003) / 100;
  const qty = i % 10 === 3 ? '' : String((i * 31) % 97);
  const day = String(1 + (i % 28)).padStart(2, '0');
  const minute = String(i % 60).padStart(2, '0');
  const category = i % 4 === 0 ? `"cat ${i % 50}"` : `cat${i % 50}`;
  const score = i % 20 === 7 ? '' : i % 101 === 0 ? 'NA' : ((i * 7919) % 100_000) / 1000;
  const note =
    i % 997 === 0 ? `"line one\nline two, ${i}"` : i % 3 === 0 ? `"said ""hi"", ${i % 1000}"` : `plain ${i % 5000}`;
  return `${i},u${(i * 7919) % 2_000_000},${amount},${qty},${i % 7 === 0},2024-03-${day}T12:${minute}:00Z,${category},${score},${note}\n`;
}

/** A generated CSV: its header line, and row `i` (ending in a newline). */
export interface CsvShape {
  header: string;
  row: (i: number) => string;
}

/** The mixed columns above. */
export const MIXED_CSV: CsvShape = { header: CSV_HEADER, row: csvRow };

const WIDE_COLUMNS = 100;

/**
 * The slowest shape known per byte (docs/dataset-profile.md#by-shape-of-data): 100 short numeric
 * columns, every third a 2-decimal number, each with about 10,000 distinct values, so every column
 * passes its exact limit and each value goes through the sketch, the HyperLogLog and the
 * Misra–Gries summary. About 520 bytes a row.
 */
export const WIDE_NUMERIC_CSV: CsvShape = {
  header: `${Array.from({ length: WIDE_COLUMNS }, (_, c) => `c${c}`).join(',')}\n`,
  row: (i) => {
    const values: string[] = [];
    for (let c = 0; c < WIDE_COLUMNS; c++) {
      const v = Math.imul(i + 1, 2654435761 + c * 40503) >>> 0;
      values.push(c % 3 === 0 ? ((v % 10_000) / 100).toFixed(2) : String(v % 10_000));
    }
    return `${values.join(',')}\n`;
  },
};

/** Writes (or reuses) a CSV of `shape` of at least `bytes` bytes at `path`; returns its size and row count. */
export function ensureCsv(path: string, bytes: number, shape: CsvShape = MIXED_CSV): { bytes: number; rows: number } {
  const { header, row: rowOf } = shape;
  const rowsFor = (size: number) => {
    // Rows are found again by regenerating: cheap next to profiling, and no sidecar file to trust.
    let at = header.length;
    let i = 0;
    while (at < size) at += Buffer.byteLength(rowOf(i++));
    return i;
  };
  if (existsSync(path)) {
    const size = statSync(path).size;
    if (size >= bytes && size < bytes + 1_000_000) return { bytes: size, rows: rowsFor(size) };
  }
  const fd = openSync(path, 'w');
  let written = writeSync(fd, header);
  let i = 0;
  try {
    while (written < bytes) {
      const parts: string[] = [];
      for (let n = 0; n < 5000 && written < bytes; n++) {
        const row = rowOf(i++);
        parts.push(row);
        written += Buffer.byteLength(row);
      }
      writeSync(fd, parts.join(''));
    }
  } finally {
    closeSync(fd);
  }
  return { bytes: written, rows: i };
}
