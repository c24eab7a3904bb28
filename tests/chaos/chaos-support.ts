import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { trackDir } from '../support/child-registry.ts';
import type { ApiClient } from '../support/http.ts';
import { type AppProcess, REPO_ROOT, startApi, startWorker } from '../support/processes.ts';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';

/**
 * `pnpm test` runs every chaos test in its short form; `pnpm test:chaos` (vitest.chaos.config.ts)
 * sets LONGHAUL_CHAOS_FULL=1 for the long one. Both are real tests: only sizes change.
 */
export const FULL = process.env.LONGHAUL_CHAOS_FULL === '1';

/** `ci` in `pnpm test`, `full` in `pnpm test:chaos`. */
export function size<T>(ci: T, full: T): T {
  return FULL ? full : ci;
}

/** Per fault test: generous, since a fault test's length is mostly waiting for recovery. */
export const FAULT_TIMEOUT = size(120_000, 1_200_000);

/** Keys and passwords the suite's processes are given; none may ever show up in their logs. */
export const SECRETS = {
  keyA: 'chaos-tenant-a-key-9f3c1d7e',
  keyB: 'chaos-tenant-b-key-4a8b2c6d',
  adminPassword: 'chaos-admin-pw-71b9e02f',
  metricsToken: 'chaos-metrics-token-5d2e8c1a',
  /** Put into job inputs and headers: customer data that must never be logged. */
  inputMarker: 'CHAOS-INPUT-MARKER-c0ffee42',
} as const;

/** Environment shared by one test file's processes: a private prefix, two tenants, Bull Board credentials. */
export function chaosEnv(redisUrl: string, prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    API_KEYS: `a:${SECRETS.keyA},b:${SECRETS.keyB}`,
    ADMIN_USER: 'chaos-admin',
    ADMIN_PASSWORD: SECRETS.adminPassword,
    METRICS_TOKEN: SECRETS.metricsToken,
    RATE_LIMIT_PER_MINUTE: '0',
    LOG_LEVEL: 'info',
    ...extra,
  };
}

/** A fresh, empty execution log file (SIMULATE_EXECUTION_LOG), removed when the test process exits. */
export function executionLogFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lh-chaos-'));
  trackDir(dir);
  const file = join(dir, 'executions.jsonl');
  writeFileSync(file, '');
  return file;
}

export interface Execution {
  event: 'start' | 'finish';
  jobId: string;
  attempt: number;
  pid: number;
  at: number;
}

/** The lines `simulate` appended to its execution log. */
export function readExecutions(file: string): Execution[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Execution);
}

/** Starts per job id, and the jobs started more than once. */
export function executionCounts(executions: Execution[]) {
  const starts = new Map<string, number>();
  const finishes = new Map<string, number>();
  for (const e of executions) {
    // A durable run also logs its steps; only starts and finishes count here.
    if (e.event !== 'start' && e.event !== 'finish') continue;
    const map = e.event === 'start' ? starts : finishes;
    map.set(e.jobId, (map.get(e.jobId) ?? 0) + 1);
  }
  const reExecuted = [...starts].filter(([, n]) => n > 1).map(([id]) => id);
  return { starts, finishes, reExecuted, extraStarts: [...starts.values()].reduce((a, n) => a + n - 1, 0) };
}

/** Jobs a process had started and not finished when it died: its in-flight jobs at that moment. */
export function inFlightOf(executions: Execution[], pid: number): string[] {
  const open = new Set<string>();
  for (const e of executions) {
    if (e.pid !== pid) continue;
    if (e.event === 'start') open.add(e.jobId);
    else if (e.event === 'finish') open.delete(e.jobId);
  }
  return [...open];
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  });
  await Promise.all(lanes);
  return results;
}

/** Submissions answered 503 (Redis slower than the API's command timeout) and sent again, as a client does. */
export const retried503 = { count: 0 };

/**
 * Submits `count` simulate jobs; every one must end accepted (202). A 503 with Retry-After is
 * the API failing fast because Redis was slow to answer (the test machine's 2 cores are shared):
 * it is retried with the same Idempotency-Key, as a well-behaved client does, and counted in
 * {@link retried503}. Without the key, a retry of a submission Redis stored anyway would add a
 * second job (seen once under heavy load: 1,016 jobs completed for 1,000 ids).
 */
export async function submitJobs(client: ApiClient, count: number, input: Record<string, unknown>): Promise<string[]> {
  return mapLimit(Array.from({ length: count }), 16, async () => {
    // A 503 may come after Redis stored the job (it held the commands past the API's patience):
    // retried with the same Idempotency-Key, as a client should, it answers with that job.
    const headers = { 'idempotency-key': randomUUID() };
    for (let attempt = 1; ; attempt++) {
      const res = await client.post('/v1/jobs', { type: 'simulate', input }, { headers });
      // 200: a retry that found the job its first attempt stored.
      if (res.status === 202 || (res.status === 200 && attempt > 1)) return res.body.id as string;
      if (res.status !== 503 || !res.headers['retry-after'] || attempt >= 5) {
        throw new Error(`submit answered ${res.status}: ${JSON.stringify(res.body)}`);
      }
      retried503.count++;
      await sleep(200 * attempt);
    }
  });
}

/** Status of each job id, read through the API. */
export async function statuses(client: ApiClient, ids: string[]): Promise<Map<string, string>> {
  const entries = await mapLimit(ids, 16, async (id) => {
    const res = await client.get(`/v1/jobs/${id}`);
    return [id, res.status === 200 ? (res.body.status as string) : `http_${res.status}`] as const;
  });
  return new Map(entries);
}

/** Waits until every job is final; resolves with the statuses. */
export async function waitAllFinal(client: ApiClient, ids: string[], timeoutMs: number): Promise<Map<string, string>> {
  let last = new Map<string, string>();
  let pending = ids;
  await waitFor(
    async () => {
      const now = await statuses(client, pending);
      for (const [id, s] of now) last.set(id, s);
      pending = pending.filter((id) => !['completed', 'failed', 'cancelled'].includes(last.get(id) ?? ''));
      return pending.length === 0;
    },
    { timeoutMs, intervalMs: 250, what: `${ids.length} jobs to finish` },
  ).catch((err: Error) => {
    const counts: Record<string, number> = {};
    for (const s of last.values()) counts[s] = (counts[s] ?? 0) + 1;
    throw new Error(`${err.message}; statuses: ${JSON.stringify(counts)}`);
  });
  last = new Map(ids.map((id) => [id, last.get(id) ?? 'unknown']));
  return last;
}

export function countBy(values: Iterable<string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

/** Starts `n` workers in parallel. */
export function startWorkers(n: number, env: Record<string, string>): Promise<AppProcess[]> {
  return Promise.all(Array.from({ length: n }, () => startWorker(env)));
}

/**
 * Records a guarantee's figures for docs/guarantees.md: `.test-results/figures/<id>.json`, and
 * the merged `.test-results/figures.json`. Also printed, so a CI log shows them.
 */
export function recordFigures(id: string, figures: Record<string, unknown>): void {
  const dir = join(REPO_ROOT, '.test-results', 'figures');
  mkdirSync(dir, { recursive: true });
  const entry = { ...figures, mode: FULL ? 'full' : 'ci', at: new Date().toISOString() };
  writeFileSync(join(dir, `${id}.json`), `${JSON.stringify(entry, null, 2)}\n`);
  const mergedPath = join(REPO_ROOT, '.test-results', 'figures.json');
  let merged: Record<string, unknown> = {};
  try {
    merged = JSON.parse(readFileSync(mergedPath, 'utf8')) as Record<string, unknown>;
  } catch {
    // first figure of the run
  }
  merged[id] = entry;
  const tmp = `${mergedPath}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(merged, null, 2)}\n`);
  renameSync(tmp, mergedPath);
  process.stdout.write(`[figures] ${id} ${JSON.stringify(entry)}\n`);
}

/**
 * G12 helper: every secret of {@link SECRETS} that appears in the logs of `processes`, with the
 * process it leaked from. Empty when the logs are clean.
 */
export function leakedSecrets(processes: { name: string; pid: number; logs(): string }[]): string[] {
  const leaks: string[] = [];
  for (const p of processes) {
    const logs = p.logs();
    for (const [name, secret] of Object.entries(SECRETS)) {
      if (logs.includes(secret)) leaks.push(`${name} in the logs of ${p.name} (pid ${p.pid})`);
    }
  }
  return leaks;
}

/** Reads a process' resident set size (kB) from /proc, Linux only. */
export function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  return match ? Number(match[1]) : Number.NaN;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One API and `workers` worker processes for a describe block, started before and stopped after it. */
export interface Fleet {
  /** The fleet's own QUEUE_PREFIX. */
  readonly prefix: string;
  /** The file `simulate` appends its executions to (SIMULATE_EXECUTION_LOG). */
  readonly log: string;
  /** The environment every process of the fleet starts with. */
  readonly env: Record<string, string>;
  readonly api: AppProcess;
  /** The workers started with the fleet, then any a test adds with {@link Fleet.track}. */
  readonly workers: AppProcess[];
  /** Every process the fleet ever ran: what the afterAll stops and the secrets scan reads. */
  readonly all: AppProcess[];
  /** Adds a process started by a test, so it is stopped and scanned with the rest. */
  track(process: AppProcess): AppProcess;
}

export interface FleetOptions {
  /** Worker processes to start. @defaultValue 3 */
  workers?: number;
  /** Run in afterAll before the processes stop (e.g. end a supervisor). */
  beforeStop?: () => Promise<unknown> | unknown;
}

/**
 * Registers the beforeAll/afterAll of a fault test: a fresh prefix and execution log, an API and
 * workers on the chaos environment (2 s locks, 1 s stalled checks, executions logged) plus `extra`;
 * afterwards `beforeStop`, then stop everything and delete the prefix's keys.
 */
export function useFleet(extra: Record<string, string> = {}, { workers = 3, beforeStop }: FleetOptions = {}): Fleet {
  const prefix = uniquePrefix();
  const log = executionLogFile();
  const env = chaosEnv(redisUrl(), prefix, {
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
    SIMULATE_EXECUTION_LOG: log,
    ...extra,
  });
  const all: AppProcess[] = [];
  const started: AppProcess[] = [];
  let apiProcess: AppProcess | undefined;
  beforeAll(async () => {
    const [a, ws] = await Promise.all([startApi(env), startWorkers(workers, env)]);
    apiProcess = a;
    started.push(...ws);
    all.push(a, ...ws);
  });
  afterAll(async () => {
    await beforeStop?.();
    await Promise.all(all.map((p) => p.stop().catch(() => undefined)));
    await cleanupPrefix(redisUrl(), prefix);
  });
  return {
    prefix,
    log,
    env,
    get api() {
      if (!apiProcess) throw new Error('the fleet has not started');
      return apiProcess;
    },
    workers: started,
    all,
    track(process) {
      all.push(process);
      return process;
    },
  };
}
