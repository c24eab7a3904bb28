/**
 * dataset-profile throughput on two CSVs of BENCH_PROFILE_CSV_MB megabytes each (default 150;
 * generated once under /tmp by bench/csv-dataset.ts): mixed columns as exports hold them, and the
 * slowest shape known, 100 high-cardinality numeric columns. On the production build: the worker is built with tsup
 * and its profile thread (`apps/worker/dist/dataset-profile-thread.js`) is fed the file by
 * bench/dataset-profile-run.mjs exactly as the worker feeds it. Python's `csv` module reads the
 * same file as a reference point (rows counted, nothing profiled).
 *
 * `BENCH_PROFILE_CSV=<path>` profiles that file instead (any CSV or TSV; its rows are not checked
 * against a generator), to see what the profiler does on data shaped like yours.
 *
 * Run alone with `pnpm bench:csv`; `pnpm bench` includes it in bench/results.md. The figures are
 * megabytes per second of wall time, and per CPU second of the profile thread (what one worker
 * core delivers when it is not shared with other work) and of the whole process (the thread that
 * reads the file too).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { datasetProfileInput } from '@longhaul/shared/analyses/dataset-profile';
import { ensureCsv, WIDE_NUMERIC_CSV } from './csv-dataset.ts';
import { fmt, type Row } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MB = Number(process.env.BENCH_PROFILE_CSV_MB ?? 150);
const OWN_FILE = process.env.BENCH_PROFILE_CSV;

interface RunResult {
  seconds: number;
  cpuSeconds: number;
  threadCpuSeconds: number | null;
  bytes: number;
  rows: number;
  parseErrors: number;
  peakRssBytes: number;
  columns: unknown[];
}

/** The Python reference: csv.reader over the file, rows counted; seconds and peak RSS (bytes). */
const PYTHON = `
import csv, resource, sys, time
t = time.perf_counter()
c = time.process_time()
n = 0
with open(sys.argv[1], newline='', encoding='utf-8') as f:
    for _ in csv.reader(f):
        n += 1
print(n, time.perf_counter() - t, time.process_time() - c, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
`;

function python(path: string): { rows: number; seconds: number; cpuSeconds: number; peakRssBytes: number } | null {
  const run = spawnSync('python3', ['-c', PYTHON, path], { encoding: 'utf8', timeout: 600_000 });
  if (run.status !== 0) return null;
  const [rows, seconds, cpuSeconds, rss] = run.stdout.trim().split(/\s+/).map(Number);
  return { rows: rows ?? 0, seconds: seconds ?? 0, cpuSeconds: cpuSeconds ?? 0, peakRssBytes: rss ?? 0 };
}

/** Profiles the CSV at `path` as the worker's thread does, and Python reads it; one row of the table. */
function measure(path: string, file: { rows: number } | null, label: string): Row {
  const options = { ...datasetProfileInput.parse({ source: { inline: 'x' } }), source: undefined };
  const out = execFileSync(
    process.execPath,
    [
      'bench/dataset-profile-run.mjs',
      'apps/worker/dist/dataset-profile-thread.js',
      path,
      JSON.stringify({ ...options, formatHint: 'csv' }),
    ],
    { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  const ours = JSON.parse(out) as RunResult;
  if (file && (ours.rows !== file.rows || ours.parseErrors !== 0)) {
    throw new Error(`the profile counted ${ours.rows} rows and ${ours.parseErrors} errors; the file has ${file.rows}`);
  }
  const py = python(path);
  const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds;
  const mib = (bytes: number) => `${fmt(bytes / 1024 ** 2)} MiB`;
  const perCore = mbps(ours.bytes, ours.threadCpuSeconds ?? ours.cpuSeconds);
  return {
    comparison: `${label}CSV of ${fmt(ours.bytes / 1e6)} MB (${fmt(ours.rows)} rows, ${ours.columns.length} columns${ours.parseErrors ? `, ${fmt(ours.parseErrors)} malformed rows skipped` : ''}), production build`,
    longhaul: `${fmt(mbps(ours.bytes, ours.seconds), 1)} MB/s wall, ${fmt(perCore, 1)} MB/s per CPU second of the profile thread (${fmt(mbps(ours.bytes, ours.cpuSeconds), 1)} of the process), peak RSS ${mib(ours.peakRssBytes)}`,
    raw: py
      ? `Python csv.reader (rows only): ${fmt(mbps(ours.bytes, py.seconds), 1)} MB/s wall, ${fmt(mbps(ours.bytes, py.cpuSeconds), 1)} per CPU second, peak RSS ${mib(py.peakRssBytes)}`
      : 'python3 not found',
    ratio: py ? py.cpuSeconds / ours.cpuSeconds : 0,
    goal: '≥ 40 MB/s per core',
    met: perCore >= 40,
  };
}

export async function benchDatasetProfileCsv(): Promise<{ rows: Row[]; notes: string[] }> {
  const dir = '/tmp/longhaul-bench';
  mkdirSync(dir, { recursive: true });
  execFileSync('pnpm', ['--filter', '@longhaul/worker', 'build'], { cwd: ROOT, stdio: 'ignore' });
  const rows: Row[] = [];
  if (OWN_FILE) rows.push(measure(OWN_FILE, null, `7. dataset-profile, ${OWN_FILE}, `));
  else {
    const mixed = `${dir}/profile-${MB}mb.csv`;
    rows.push(measure(mixed, ensureCsv(mixed, MB * 1e6), '7. dataset-profile, '));
    const wide = `${dir}/profile-wide-numeric-${MB}mb.csv`;
    rows.push(
      measure(
        wide,
        ensureCsv(wide, MB * 1e6, WIDE_NUMERIC_CSV),
        '7b. dataset-profile, the slowest shape known: 100 numeric columns of ~10,000 distinct values each, ',
      ),
    );
  }
  return {
    rows,
    notes: [
      `dataset-profile: the ratio is Python's CPU time over the profile thread's (above 1: faster than Python's C csv module merely splitting the rows); before this work the same thread ran at about 5 MB/s. Where the time goes: docs/dataset-profile.md#performance. The speed depends on the data's shape (many distinct numbers and date-times cost the most per byte; row 7b is the slowest shape measured), see docs/dataset-profile.md#by-shape-of-data; BENCH_PROFILE_CSV=<path> pnpm bench:csv measures your own file.`,
    ],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { rows, notes } = await benchDatasetProfileCsv();
  for (const r of rows)
    console.log(`${r.met ? 'ok  ' : 'MISS'} ${r.comparison}\n  longhaul: ${r.longhaul}\n  ${r.raw}`);
  for (const n of notes) console.log(n);
}
