import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { trackChild } from './child-registry.ts';
import { freePort } from './ports.ts';
import { redisUrl } from './redis.ts';
import { waitFor, withTimeout } from './wait.ts';

/** The repository root: the apps are started from here so `--import tsx` resolves. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Environment for a child; `undefined` leaves a variable unset. */
export type ProcessEnv = Record<string, string | undefined>;

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  /**
   * How long to wait for `GET /healthz` (and the API's `GET /readyz`) to answer 200: generous,
   * since it only bounds a failure. Default 60 s.
   */
  readyTimeoutMs?: number;
  /** The API only: wait until it is ready, not only healthy (see {@link startApi}). Default `true`. */
  ready?: boolean;
  /**
   * Run the production bundle (`node apps/<app>/dist/main.js`, built by `pnpm build`) instead of
   * the sources through tsx. The benchmark does; tests run the sources. Default `false`.
   */
  built?: boolean;
  /** Extra Node flags, before the entry (e.g. `--cpu-prof`). Default none. */
  nodeArgs?: string[];
}

export interface AppProcess {
  readonly name: 'api' | 'worker';
  /** `http://127.0.0.1:<port>`: the API, or the worker's health/metrics port. */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** The environment the process was started with (after defaults). */
  readonly env: Readonly<Record<string, string>>;
  /** Resolves when the process exits, however it exits. */
  readonly exited: Promise<ProcessExit>;
  /** Everything written to stdout and stderr so far, interleaved in arrival order. */
  logs(): string;
  /** The output lines that parse as JSON objects (pino lines with `LOG_PRETTY=false`). */
  jsonLogs(): Record<string, unknown>[];
  /** Resolves once the output matches `pattern`; rejects with the output on timeout (default 10 s). */
  waitForLog(pattern: string | RegExp, timeoutMs?: number): Promise<void>;
  signal(sig: NodeJS.Signals): void;
  /**
   * SIGTERM and wait for the exit; resolves with the exit code (`null` if ended by a signal).
   * After `timeoutMs` (default 20 s) it SIGKILLs the process and rejects: a clean shutdown that
   * hangs is a bug the test should see.
   */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL (a crash, an OOM kill) and wait for the exit. */
  kill(): Promise<ProcessExit>;
}

/**
 * Only these variables are inherited from the test process, so a developer's own `API_KEYS`,
 * `REDIS_URL` or `QUEUE_PREFIX` never leaks into a test.
 */
const INHERITED = ['PATH', 'HOME', 'TMPDIR', 'TMP', 'TEMP', 'LANG', 'LC_ALL', 'TZ', 'SYSTEMROOT', 'CI'];

const ENTRY = { api: 'apps/api/src/main.ts', worker: 'apps/worker/src/main.ts' } as const;
const BUILT_ENTRY = { api: 'apps/api/dist/main.js', worker: 'apps/worker/dist/main.js' } as const;
const PORT_VAR = { api: 'PORT', worker: 'WORKER_PORT' } as const;

/** `true` when GET `<url>/healthz` answers 200 within a second. */
async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

function buildEnv(name: 'api' | 'worker', given: ProcessEnv, port: number): Record<string, string> {
  const merged: ProcessEnv = {};
  for (const key of INHERITED) if (process.env[key] !== undefined) merged[key] = process.env[key];
  Object.assign(merged, { LOG_PRETTY: 'false', LOG_LEVEL: 'info', NODE_ENV: 'test' }, given);
  if (!('REDIS_URL' in given)) merged.REDIS_URL = redisUrl();
  merged[PORT_VAR[name]] = String(port);
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(merged)) if (value !== undefined) env[key] = value;
  return env;
}

async function startOnce(name: 'api' | 'worker', given: ProcessEnv, port: number, opts: StartOptions) {
  const env = buildEnv(name, given, port);
  const args = opts.built ? [BUILT_ENTRY[name]] : ['--import', 'tsx', ENTRY[name]];
  const child: ChildProcess = spawn(process.execPath, [...(opts.nodeArgs ?? []), ...args], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  let output = '';
  const echo = process.env.LH_TEST_LOGS === '1';
  const append = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    output += text;
    if (echo) process.stderr.write(text.replace(/^(?=.)/gm, `[${name}:${child.pid}] `));
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', (err) => {
      output += `\n[harness] ${err.message}\n`;
      resolve({ code: null, signal: null });
    });
  });
  let exit: ProcessExit | undefined;
  void exited.then((e) => {
    exit = e;
  });

  const url = `http://127.0.0.1:${port}`;
  const timeoutMs = opts.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let ready = false;
  while (!exit && Date.now() < deadline) {
    if (await healthy(url)) {
      ready = true;
      break;
    }
    await withTimeout(exited, 100);
  }
  if (!ready) {
    if (!exit) {
      child.kill('SIGKILL');
      await exited;
    }
    const why = exit ? `exited (code ${exit.code}, signal ${exit.signal})` : `not healthy after ${timeoutMs} ms`;
    return { ok: false as const, error: `${name} on port ${port} ${why}; its output:\n${output}`, output };
  }

  const handle: AppProcess = {
    name,
    url,
    port,
    pid: child.pid ?? -1,
    env,
    exited,
    logs: () => output,
    jsonLogs: () =>
      output.split('\n').flatMap((line) => {
        if (!line.startsWith('{')) return [];
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    async waitForLog(pattern, ms = 10_000) {
      const matches = () => (typeof pattern === 'string' ? output.includes(pattern) : pattern.test(output));
      await waitFor(matches, { timeoutMs: ms, intervalMs: 50, what: `${name} log ${String(pattern)}` }).catch(
        (err: Error) => {
          throw new Error(`${err.message}; ${name} output:\n${output}`);
        },
      );
    },
    signal(sig) {
      if (exit) throw new Error(`${name} (pid ${child.pid}) has already exited`);
      child.kill(sig);
    },
    async stop(ms = 20_000) {
      if (!exit) child.kill('SIGTERM');
      const done = await withTimeout(exited, ms);
      if (done) return done.code;
      child.kill('SIGKILL');
      await exited;
      throw new Error(`${name} (pid ${child.pid}) did not exit within ${ms} ms of SIGTERM; its output:\n${output}`);
    },
    async kill() {
      if (!exit) child.kill('SIGKILL');
      return exited;
    },
  };
  return { ok: true as const, handle };
}

async function start(name: 'api' | 'worker', given: ProcessEnv, opts: StartOptions): Promise<AppProcess> {
  if (!given.QUEUE_PREFIX) {
    throw new Error(
      `start${name === 'api' ? 'Api' : 'Worker'}: give QUEUE_PREFIX (uniquePrefix()) so test files never share queues`,
    );
  }
  const fixed = given[PORT_VAR[name]];
  for (let attempt = 1; ; attempt++) {
    const port = fixed ? Number(fixed) : await freePort();
    const result = await startOnce(name, given, port, opts);
    if (result.ok) return result.handle;
    // Someone took the free port between freePort() and listen(): try another one.
    if (fixed || attempt >= 3 || !/EADDRINUSE/.test(result.output)) throw new Error(result.error);
  }
}

/**
 * Spawns the real API (`node --import tsx apps/api/src/main.ts`) on a free `PORT` and resolves once
 * it is ready: `GET /readyz` answers 200 (it reaches Redis; a cluster has its slots). Healthy is not
 * ready: until its Redis connection is up, a submit answers 503, and on a loaded machine a test's
 * first request can meet that. `ready: false` resolves once `GET /healthz` answers 200, for an API
 * started while Redis is down. Defaults: `LOG_PRETTY=false`, `LOG_LEVEL=info`, `NODE_ENV=test`,
 * `REDIS_URL` = the test run's Redis. `QUEUE_PREFIX` is required; `API_KEYS` is up to the test.
 * Set `LH_TEST_LOGS=1` to echo the child's output while debugging.
 */
export async function startApi(env: ProcessEnv, opts: StartOptions = {}): Promise<AppProcess> {
  const app = await start('api', env, opts);
  if (opts.ready === false) return app;
  try {
    await waitFor(async () => (await fetch(`${app.url}/readyz`).catch(() => null))?.status === 200, {
      timeoutMs: opts.readyTimeoutMs ?? 60_000,
      what: 'the API to be ready (GET /readyz 200)',
    });
  } catch (err) {
    await app.stop();
    throw err;
  }
  return app;
}

/** Spawns a real worker on a free `WORKER_PORT`, like {@link startApi}. */
export function startWorker(env: ProcessEnv, opts: StartOptions = {}): Promise<AppProcess> {
  return start('worker', env, opts);
}
